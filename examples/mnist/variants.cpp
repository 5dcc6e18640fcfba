// The seven gaters of Figure 2 with the settings of App. A (see README.md for every choice the paper
// leaves open), and three gaters not in the paper (issue 40: DisARM and REINFORCE leave-one-out in the SBN
// variant's place, the straight-through Gumbel-sigmoid in straight-through's). Each variant is one row of
// the table kVariants below, and one instantiation of Trainer<Gate>.
#include <cmath>
#include <string>

#include <stoch/core/error.hpp>
#include <stoch/core/math.hpp>
#include <stoch/gates/anneal.hpp>
#include <stoch/gates/arm.hpp>
#include <stoch/gates/gumbel_sigmoid.hpp>
#include <stoch/gates/noisy_rectifier.hpp>
#include <stoch/gates/noisy_sigmoid.hpp>
#include <stoch/gates/reinforce_loo.hpp>
#include <stoch/gates/stochastic_binary.hpp>
#include <stoch/gates/stochastic_times_smooth.hpp>
#include <stoch/gates/straight_through.hpp>
#include <stoch/gates/threshold.hpp>
#include <stoch/regularizers/kl_sparsity.hpp>
#include <stoch/regularizers/l1_sparsity.hpp>

#include "experiment.hpp"
#include "trainer.hpp"

namespace mnist {

namespace {

// Choices where the paper is silent (README.md, "Choices"): the same for every variant they apply to, unless
// validation chose otherwise (named per variant).
constexpr double kStsKlStrength = 0.01;       // lambda of Eq. 14 for each sigmoid gate, chosen on validation
constexpr double kStKlStrength = 0.003;       // errors (README.md, "Choices"; straight-through's and SBN's on
constexpr double kSbnKlStrength = 0.03;       // their own)
constexpr double kL1StartLambda = 1e-3;      // adaptive L1 (Eq. 15): start value, x1.01 per batch
constexpr double kL1AdaptFactor = 1.01;
constexpr double kL1Band = 0.01;             // App. A.1: adapt when outside target +- 0.01
constexpr double kSigmoidNoiseStd = 1.0;     // Baseline Sigmoid+Noise: as the noisy rectifier's (App. A.4)
constexpr T kBetaNoiseBeta = T(40.1);        // App. A.2
constexpr Index kUnits = 2000, kBaselineUnits = 200;
// The variants not in the paper (CHOICES.md, "Variants not in the paper").
constexpr Index kScoreFunctionSamples = 2;    // rloo and disarm: two losses per example (DisARM's pair)
// gumbel-st: Jang et al. (2017)'s schedule tau = max(0.5, exp(-r t)), r = 1e-5, updated every 500 steps;
// 50 epochs of 1,562 steps reach the floor in epoch 45.
constexpr double kGumbelStart = 1.0, kGumbelRate = 1e-5, kGumbelFloor = 0.5;
constexpr std::uint64_t kGumbelEvery = 500;

std::string str(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

double standard_normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

template <class G>
TrainedVariant train(const VariantSpec& spec, const Settings& s, VariantConfig config, G gate,
                    const stoch::Mnist<T>& data, const Progress& progress) {
  config.settings.insert(config.settings.begin(),
                         {{"units", std::to_string(config.units)},
                          {"learning_rate", str(s.learning_rate)},
                          {"gater_learning_rate", str(s.learning_rate * config.gater_learning_rate_scale)},
                          {"momentum", str(config.momentum)},
                          {"max_norm", str(config.max_norm)},
                          {"batch", std::to_string(s.batch)}});
  if (s.learning_rate_decay != 1)  // (only when used: keeps the checkpoints of constant-rate runs resumable)
    config.settings.insert(config.settings.begin() + 2, {"learning_rate_decay_per_epoch", str(s.learning_rate_decay)});
  if (config.weight_decay > 0)  // (only when used, as the rate decay)
    config.settings.push_back({"weight_decay", str(config.weight_decay)});
  if (config.input_dropout > 0) config.settings.push_back({"input_dropout", str(config.input_dropout)});
  if (config.gate_init_norm > 0) config.settings.push_back({"gate_init_norm", str(config.gate_init_norm)});
  if (s.average_decay > 0) {
    config.settings.push_back({"average_decay_per_step", str(s.average_decay)});
    config.settings.push_back({"average_every_steps", std::to_string(s.average_every)});
  }
  // Heap-allocated: the network holds large buffers, and must not move once the optimiser has pointers into it.
  auto trainer = std::make_shared<Trainer<G>>(spec, s, std::move(config), std::move(gate), data, progress);
  VariantResult result = trainer->run();
  return {std::move(result), [trainer](VariantResult& r) { trainer->time_evaluation(r); }};
}

stoch::AdaptiveL1<T> adaptive_l1(const Settings& s) {
  return stoch::AdaptiveL1<T>(static_cast<T>(s.target_density), static_cast<T>(kL1StartLambda),
                              static_cast<T>(kL1AdaptFactor), static_cast<T>(kL1Band), "l1.lambda");
}

/// What every variant starts from: the shared bounds of Settings, which ST and SBN then replace with their own.
VariantConfig shared_config(const Settings& s) {
  VariantConfig config;
  config.max_norm = s.max_norm;
  config.weight_decay = s.weight_decay;
  config.input_dropout = s.input_dropout;
  config.gate_init_norm = s.gate_init_norm;
  return config;
}

/// Eq. 14 with --kl-strength, or the variant's default strength when it is 0.
stoch::KlSparsity<T> kl(const Settings& s, double default_strength) {
  return {.target = static_cast<T>(s.target_density),
          .strength = static_cast<T>(s.kl_strength > 0 ? s.kl_strength : default_strength)};
}

TrainedVariant rectifier(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                        const Progress& progress, double noise) {
  stoch::NoisyRectifierOptions<T> options;
  options.noise_scale = static_cast<T>(noise);
  options.l1 = adaptive_l1(s);
  if (s.firing_rate > 0)  // Sec. 2.1: push up the offset of units firing less than the target
    options.firing_rate = stoch::FiringRateControl<T>{.target = static_cast<T>(s.firing_rate)};
  VariantConfig config = shared_config(s);
  config.units = kUnits;
  config.calibrate = noise > 0;  // App. A.3 thresholds for the stochastic gates; the baseline keeps max(0, .)
  config.half_threshold = 0;     // P(a + c + z > 0) > 1/2  <=>  a + c > 0 (symmetric noise)
  if (noise > 0) config.probability = [noise](double score) { return standard_normal_cdf(score / noise); };
  config.settings = {{"noise_std", str(noise)},
                     {"deterministic_counterpart", "E[max(0, a + c + z)] where a + c > t"},
                     {"firing_rate_control", s.firing_rate > 0 ? "target " + str(s.firing_rate) : "off"},
                     {"sparsity", "adaptive L1, start " + str(kL1StartLambda) + ", x" + str(kL1AdaptFactor) +
                                      " per batch outside target +- " + str(kL1Band)}};
  return train(spec, s, std::move(config), stoch::NoisyRectifier<T>(kUnits, options, "gate"), data, progress);
}

/// Sigmoid gates start at the KL target: p = sigm(b + E[noise]) = s, so the sparsity penalty does not
/// have to pull 2000 units down from p = 1/2 first (the SBN gater learns 100 times slower than the others).
VariantConfig sigmoid_gate_config(const Settings& s, const stoch::KlSparsity<T>& sparsity, double noise_mean = 0) {
  VariantConfig config = shared_config(s);
  config.units = kUnits;
  config.gate_bias = static_cast<T>(stoch::logit(s.target_density) - noise_mean);
  config.calibrate = true;
  config.half_threshold = T(0.5);
  config.probability = [](double p) { return p; };
  config.settings = {{"sparsity", "KL (Eq. 14), lambda " + str(sparsity.strength)},
                     {"gate_bias_init", str(config.gate_bias)}};
  return config;
}

TrainedVariant sigmoid_baseline(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                               const Progress& progress, double noise) {
  VariantConfig config = shared_config(s);
  config.units = kBaselineUnits;
  config.probability = [](double h) { return h; };
  config.settings = {{"noise_std", str(noise)}, {"sparsity", "none"}};
  return train(spec, s, std::move(config),
               stoch::NoisySigmoid<T>(kBaselineUnits, {.noise_std = static_cast<T>(noise)}), data, progress);
}

/// Sec. 2.1: h = max(0, a + c + z), Gaussian noise of std 1 (App. A.4), adaptive L1 (App. A.1).
TrainedVariant noisy_rectifier(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                               const Progress& progress) {
  return rectifier(spec, s, data, progress, 1.0);
}

/// Sec. 4, Eq. 13, with the KL penalty of Eq. 14.
TrainedVariant straight_through(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                const Progress& progress) {
  const stoch::KlSparsity<T> sparsity = kl(s, kStKlStrength);
  std::optional<stoch::BetaNoise<T>> beta;  // App. A.2's noise, off unless --st-beta-noise (README.md)
  if (s.st_beta_noise > 0)
    beta = stoch::BetaNoise<T>{.beta = static_cast<T>(s.st_beta_noise), .target = static_cast<T>(s.target_density)};
  VariantConfig config = sigmoid_gate_config(s, sparsity, beta ? beta->mean() : T(0));
  config.gater_learning_rate_scale = s.st_gater_learning_rate / s.learning_rate;
  config.momentum = s.momentum_st;
  config.max_norm = s.st_max_norm;
  config.gate_init_norm = s.st_gate_init_norm;
  config.input_dropout = s.st_input_dropout;
  config.settings.push_back({"estimator", s.st_sigmoid_derivative ? "dL/da = dL/dh sigm'(a)"
                                                                  : "dL/da = dL/dh (no sigmoid derivative)"});
  config.settings.push_back({"kl_gradient", "exact (through sigm'(a))"});
  if (beta) config.settings.push_back({"beta_noise", "beta " + str(s.st_beta_noise) + ", mode at the target"});
  return train(spec, s, std::move(config),
               stoch::StraightThrough<T>(kUnits,
                                         {.sigmoid_derivative = s.st_sigmoid_derivative,
                                          .kl = sparsity,
                                          .beta_noise = beta},
                                         "gate"),
               data, progress);
}

/// Sec. 2.2, with App. A.2's Beta noise and the KL penalty of Eq. 14.
TrainedVariant smooth_times_stochastic(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                       const Progress& progress) {
  const stoch::BetaNoise<T> beta{.beta = kBetaNoiseBeta, .target = static_cast<T>(s.target_density)};
  const stoch::KlSparsity<T> sparsity = kl(s, kStsKlStrength);
  VariantConfig config = sigmoid_gate_config(s, sparsity, beta.mean());
  config.momentum = s.momentum_sts;
  config.probability = [](double score) { return score * score; };  // score = sqrt(p)
  config.settings.push_back({"beta_noise", "beta " + str(kBetaNoiseBeta) + ", mode at the target"});
  stoch::StochasticTimesSmoothOptions<T> options;
  options.beta_noise = beta;
  options.kl = sparsity;
  return train(spec, s, std::move(config), stoch::StochasticTimesSmooth<T>(kUnits, options, "gate"), data,
               progress);
}

/// Sec. 3, Eq. 10: the stochastic binary neuron, with the KL penalty of Eq. 14.
TrainedVariant stochastic_binary(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                 const Progress& progress) {
  const stoch::KlSparsity<T> sparsity = kl(s, kSbnKlStrength);
  VariantConfig config = sigmoid_gate_config(s, sparsity);
  // App. A.4 gives the SBN gater 0.001; the default was chosen on validation (README.md, "Choices").
  config.gater_learning_rate_scale = s.sbn_gater_learning_rate / s.learning_rate;
  config.max_norm = s.sbn_max_norm;
  config.settings.push_back({"estimator", "(h - p)(L - Lbar), Lbar: Eq. 10 moving averages, rate 0.01"});
  stoch::StochasticBinaryOptions<T> options;
  options.baseline = stoch::SbnBaseline::minimum_variance;
  options.kl = sparsity;
  return train(spec, s, std::move(config), stoch::StochasticBinary<T>(kUnits, options, "gate"), data, progress);
}

/// The noisy rectifier without noise: max(0, a + c).
TrainedVariant baseline_rectifier(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                  const Progress& progress) {
  return rectifier(spec, s, data, progress, 0.0);
}

/// 200 sigmoid units with Gaussian noise on their input, no sparsity.
TrainedVariant baseline_sigmoid_noise(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                      const Progress& progress) {
  return sigmoid_baseline(spec, s, data, progress, kSigmoidNoiseStd);
}

/// 200 sigmoid units, no noise, no sparsity.
TrainedVariant baseline_sigmoid(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                const Progress& progress) {
  return sigmoid_baseline(spec, s, data, progress, 0.0);
}

// ------------------------------------------------------------------ the variants not in the paper

/// SBN's settings (sigmoid_gate_config, the SBN gater's learning rate and max-norm, its KL strength) for a
/// score-function gater that learns from K tiled samples of each example.
VariantConfig score_function_config(const Settings& s, const stoch::KlSparsity<T>& sparsity, bool antithetic) {
  VariantConfig config = sigmoid_gate_config(s, sparsity);
  config.gater_learning_rate_scale = s.sbn_gater_learning_rate / s.learning_rate;
  config.max_norm = s.sbn_max_norm;
  config.samples = kScoreFunctionSamples;
  config.antithetic = antithetic;
  config.settings.push_back({"samples_per_example", std::to_string(kScoreFunctionSamples) +
                                                        (antithetic ? " (antithetic pair: u and 1 - u)"
                                                                    : " (independent)")});
  return config;
}

/// DisARM (Dong, Mnih & Tucker 2020) in SBN's place: the same network and settings, trained on antithetic
/// pairs of samples of every example. The pair must see the same pre-activations, so the input dropout
/// (a sampled layer below the gate) is off whatever --input-dropout says.
TrainedVariant disarm(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                      const Progress& progress) {
  const stoch::KlSparsity<T> sparsity = kl(s, kSbnKlStrength);
  VariantConfig config = score_function_config(s, sparsity, true);
  config.input_dropout = 0;
  config.settings.push_back({"estimator", "DisARM: 1/2 (f(b) - f(b~)) 1[b_i != b~_i] (-1)^b~_i sigm(|a_i|)"});
  return train(spec, s, std::move(config), stoch::DisArm<T>(kUnits, {.kl = sparsity}, "gate"), data, progress);
}

/// REINFORCE with the leave-one-out baseline (Kool et al. 2019) in SBN's place, K = 2 independent samples.
TrainedVariant reinforce_loo(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                             const Progress& progress) {
  const stoch::KlSparsity<T> sparsity = kl(s, kSbnKlStrength);
  VariantConfig config = score_function_config(s, sparsity, false);
  config.settings.push_back({"estimator", "(h - p)(L_k - mean of the example's other samples' L)"});
  return train(spec, s, std::move(config), stoch::ReinforceLoo<T>(kUnits, {.kl = sparsity}, "gate"), data,
               progress);
}

/// The straight-through Gumbel-sigmoid with Eq. 14's KL penalty on p = sigm(a) = P(h = 1), which every
/// other sigmoid gater of the example has and stoch::GumbelSigmoid does not take: its backward adds
/// d(Eq. 14)/da to the gate's dL/da = dL/dh y (1 - y) / tau, and its forward keeps p.
class GumbelStraightThroughKl : public stoch::GumbelSigmoidStraightThrough<T> {
  using Base = stoch::GumbelSigmoidStraightThrough<T>;

 public:
  GumbelStraightThroughKl(Index units, stoch::GumbelSigmoidOptions<T> options, const stoch::KlSparsity<T>& kl,
                          std::string name)
      : Base(units, options, std::move(name)), kl_(kl) {
    kl_.validate();
  }

  const Matrix<T>& forward(const stoch::MatrixCRef<T>& a, stoch::Context<T>& ctx) {
    const Matrix<T>& h = Base::forward(a, ctx);
    if (ctx.training()) {
      p_.resize(a.rows(), a.cols());
      p_.array() = stoch::sigmoid(a.array());
    }
    return h;
  }

  const Matrix<T>& backward(const stoch::MatrixCRef<T>& dh, stoch::Context<T>& ctx) {
    Base::backward(dh, ctx);
    kl_.add_gradient_wrt_pre_activation(p_, this->input_gradient_);
    return this->input_gradient_;
  }

  /// Eq. 14 on the last training forward's p.
  T sparsity_penalty() const { return p_.cols() > 0 ? kl_.value(p_) : T(0); }

 private:
  stoch::KlSparsity<T> kl_;
  Matrix<T> p_;
};

/// The straight-through Gumbel-sigmoid (Jang et al. 2017; Maddison et al. 2017) in straight-through's place:
/// the same network and settings (gater learning rate, momentum, max-norm, gate initial norm, input
/// dropout, KL strength), the hard sample 1[a + l > 0] forward and the relaxed sample's derivative backward,
/// with its temperature annealed.
TrainedVariant gumbel_straight_through(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                                       const Progress& progress) {
  const stoch::KlSparsity<T> sparsity = kl(s, kStKlStrength);
  VariantConfig config = sigmoid_gate_config(s, sparsity);
  config.gater_learning_rate_scale = s.st_gater_learning_rate / s.learning_rate;
  config.momentum = s.momentum_st;
  config.max_norm = s.st_max_norm;
  config.gate_init_norm = s.st_gate_init_norm;
  config.input_dropout = s.st_input_dropout;
  config.temperature = stoch::Anneal<T>::exponential_decay(static_cast<T>(kGumbelStart), static_cast<T>(kGumbelRate),
                                                           static_cast<T>(kGumbelFloor), kGumbelEvery);
  config.settings.push_back({"estimator", "h = 1[a + l > 0] (l logistic), dL/da = dL/dh y (1 - y) / tau, "
                                          "y = sigm((a + l) / tau)"});
  config.settings.push_back({"temperature", "max(" + str(kGumbelFloor) + ", " + str(kGumbelStart) + " exp(-" +
                                                str(kGumbelRate) + " t)), t the training step, updated every " +
                                                std::to_string(kGumbelEvery) + " steps"});
  config.settings.push_back({"kl_gradient", "exact (through sigm'(a))"});
  return train(spec, s, std::move(config),
               GumbelStraightThroughKl(kUnits, {.temperature = static_cast<T>(kGumbelStart)}, sparsity, "gate"),
               data, progress);
}

// Trainer calibrates the test-time threshold (App. A.3) of every stochastic gate; the sigmoid baselines have
// none (they never close a gate) and are evaluated as they are.
static_assert(stoch::Thresholded<stoch::NoisyRectifier<T>> && stoch::Thresholded<stoch::StraightThrough<T>> &&
              stoch::Thresholded<stoch::StochasticTimesSmooth<T>> && stoch::Thresholded<stoch::StochasticBinary<T>>);
static_assert(!stoch::Thresholded<stoch::NoisySigmoid<T>>);
static_assert(stoch::Thresholded<stoch::DisArm<T>> && stoch::Thresholded<stoch::ReinforceLoo<T>> &&
              stoch::Thresholded<GumbelStraightThroughKl> && stoch::Gate<GumbelStraightThroughKl>);

/// One row per gater: those of Figure 2 in the paper's order, then those not in the paper. Command-line name,
/// label, the fixed id that selects the variant's random streams (stream_of in trainer.hpp: a new variant
/// takes a new id, so that the others' streams never move), the paper's numbers (training criterion, valid
/// and test error; none for a variant not in the paper), the rank of its training cost (0: the most
/// expensive), and the function that builds the gate with its settings and trains it.
struct VariantRow {
  VariantSpec spec;
  TrainedVariant (*run)(const VariantSpec&, const Settings&, const stoch::Mnist<T>&, const Progress&);
};

const VariantRow kVariants[] = {
    {{"noisy-rectifier", "Noisy Rectifier", 0, PaperRow{6.7e-4, 0.0152, 0.0187}, 5}, noisy_rectifier},
    {{"straight-through", "Straight-through", 1, PaperRow{3.3e-3, 0.0142, 0.0139}, 3}, straight_through},
    {{"sts", "Smooth Times Stoch.", 2, PaperRow{4.4e-3, 0.0186, 0.0196}, 2}, smooth_times_stochastic},
    {{"sbn", "Stoch. Binary Neuron", 3, PaperRow{9.9e-3, 0.0178, 0.0189}, 4}, stochastic_binary},
    {{"baseline-rectifier", "Baseline Rectifier", 4, PaperRow{6.3e-5, 0.0166, 0.0160}, 6}, baseline_rectifier},
    {{"baseline-sigmoid-noise", "Baseline Sigmoid+Noise", 5, PaperRow{1.8e-3, 0.0188, 0.0187}, 7},
     baseline_sigmoid_noise},
    {{"baseline-sigmoid", "Baseline Sigmoid", 6, PaperRow{3.2e-3, 0.0197, 0.0192}, 8}, baseline_sigmoid},
    // Not in the paper: K = 2 samples per example make disarm and rloo the costliest to train.
    {{"disarm", "DisARM (as SBN)", 7, std::nullopt, 0}, disarm},
    {{"rloo", "REINFORCE LOO, K = 2 (as SBN)", 8, std::nullopt, 1}, reinforce_loo},
    {{"gumbel-st", "Gumbel-sigmoid ST (as ST)", 9, std::nullopt, 3}, gumbel_straight_through},
};

}  // namespace

const std::vector<VariantSpec>& all_variants() {
  static const std::vector<VariantSpec> variants = [] {
    std::vector<VariantSpec> specs;
    for (const VariantRow& row : kVariants) specs.push_back(row.spec);
    return specs;
  }();
  return variants;
}

std::vector<VariantSpec> paper_variants() {
  std::vector<VariantSpec> specs;
  for (const VariantSpec& v : all_variants())
    if (v.in_paper()) specs.push_back(v);
  return specs;
}

TrainedVariant run_variant(const VariantSpec& spec, const Settings& s, const stoch::Mnist<T>& data,
                          const Progress& progress) {
  for (const VariantRow& row : kVariants)
    if (row.spec.id == spec.id) return row.run(spec, s, data, progress);
  throw stoch::Error("unknown variant id " + std::to_string(spec.id));
}

}  // namespace mnist
