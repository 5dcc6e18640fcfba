// Training and evaluating one gater variant of Sec. 5: the network of App. A, the epoch loop with
// checkpoints, the per-epoch diagnostics, and the final evaluation (test error, gate rules, timings).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <stoch/conditional/gated_layer.hpp>
#include <stoch/core/samples.hpp>
#include <stoch/gates/anneal.hpp>
#include <stoch/gates/threshold.hpp>
#include <stoch/graph/sequential.hpp>
#include <stoch/io/serialization.hpp>
#include <stoch/layers/dropout.hpp>
#include <stoch/layers/linear.hpp>
#include <stoch/layers/softmax_cross_entropy.hpp>
#include <stoch/layers/tanh.hpp>
#include <stoch/optim/parameter_average.hpp>
#include <stoch/optim/sgd.hpp>

#include "experiment.hpp"

namespace mnist {

using stoch::Index;
using stoch::Matrix;

/// What differs between variants besides the gate itself.
struct VariantConfig {
  Index units = 2000;                      ///< gate units = expert units (200 for the sigmoid baselines)
  double gater_learning_rate_scale = 1.0;  ///< App. A.4: 0.01 for SBN (0.001 vs 0.1)
  double momentum = 0.0;                   ///< App. A.4: momentum for STS (ours: straight-through too)
  double max_norm = 0.0;                   ///< bound on every unit's incoming weight norm
  double weight_decay = 0.0;               ///< L2 weight decay of every weight matrix (not in the paper); 0: none
  double input_dropout = 0.0;              ///< dropout rate of the input pixels in training (not in the paper); 0: none
  double gate_init_norm = 0.0;             ///< initial norm of every gate unit's incoming weights; 0: Glorot draw
  T gate_bias = 0;                         ///< initial bias of the gate pre-activations (gater.gate.b)
  bool calibrate = false;                  ///< App. A.3: threshold calibrated to the target density on valid
  T half_threshold = 0;                    ///< the threshold meaning "P(gate open) > 0.5" (the p > 0.5 rule)
  /// Gate probability from what the gate exposes (its score, or its output for the sigmoid baselines), for
  /// the decisiveness diagnostic; empty when it is not defined (the noise-free rectifier).
  std::function<double(double)> probability;
  /// Samples per example in training (K tiled copies of the batch, core/samples.hpp), for the gates that
  /// learn from the K losses of each example (ReinforceLoo, DisArm); 1: one sample, as every gate of the paper.
  Index samples = 1;
  bool antithetic = false;  ///< the K = 2 samples are antithetic pairs (one uniform u, and 1 - u: DisArm)
  /// The gate's temperature as a function of the training step (GumbelSigmoid); empty: the gate's own.
  std::optional<stoch::Anneal<T>> temperature;
  std::vector<std::pair<std::string, std::string>> settings;
};

/// Random streams of a variant (Generator(seed, stream), the streams Generator::with_stream gives): one per purpose, so that e.g. evaluating does not move
/// the training noise and the results do not depend on which variants run or on how many threads.
inline std::uint64_t stream_of(int variant, int purpose) { return 16 * static_cast<std::uint64_t>(variant) + purpose; }
enum StreamPurpose { kInitStream = 1, kTrainStream = 2, kEvalStream = 3 };
inline constexpr std::uint64_t kShuffleStream = 0;  // same example order for every variant

template <class G>
using Gater = stoch::Sequential<stoch::Linear<T>, stoch::Tanh<T>, stoch::Linear<T>, G>;
template <class G>
using Net = stoch::Sequential<stoch::Dropout<T>, stoch::GatedLayer<Gater<G>>, stoch::Linear<T>>;

template <class G>
class Trainer {
 public:
  Trainer(const VariantSpec& spec, const Settings& settings, VariantConfig config, G gate,
          const stoch::Mnist<T>& data, const Progress& progress)
      : spec_(spec),
        s_(settings),
        config_(std::move(config)),
        data_(data),
        progress_(progress),
        init_rng_(settings.seed, stream_of(spec.id, kInitStream)),
        train_rng_(settings.seed, stream_of(spec.id, kTrainStream)),
        net_(build(std::move(gate), config_.units, config_.input_dropout, init_rng_)),
        sgd_(net_.parameters(), {.learning_rate = static_cast<T>(settings.learning_rate),
                                 .momentum = static_cast<T>(config_.momentum)}) {
    net_.set_input_gradient(false);  // dL/dpixels is never read: the parameter gradients are the same
    // The output layer reads only the open units' outgoing weights in evaluation (Sec. 5: a closed unit's
    // output is 0); training keeps the dense product and its rounding.
    output_layer().set_zero_skipping(stoch::ZeroSkipping::evaluation);
    layer().gater().template get<2>().bias().value.setConstant(config_.gate_bias);
    if (config_.gate_init_norm > 0)  // every gate unit starts at this norm (README.md, "Choices")
      stoch::set_unit_norms(layer().gater().template get<2>().weight(), static_cast<T>(config_.gate_init_norm));
    stoch::set_max_norm(net_.parameters(), static_cast<T>(config_.max_norm));
    stoch::set_weight_decay(net_.parameters(), static_cast<T>(config_.weight_decay));
    stoch::set_learning_rate_scale(layer().gater().parameters(), static_cast<T>(config_.gater_learning_rate_scale));
    for (stoch::Parameter<T>* p : net_.parameters()) {
      stoch::Parameter<T> copy;
      copy.name = "best/" + p->name;
      copy.value = p->value;
      copy.trainable = false;
      best_.push_back(std::move(copy));
    }
    if (s_.average_decay > 0)
      average_.emplace(net_.parameters(), static_cast<T>(s_.average_decay), static_cast<std::uint64_t>(s_.average_every));
    xb_.resize(stoch::kMnistPixels, s_.batch);
    yb_.resize(static_cast<std::size_t>(s_.batch));
  }

  VariantResult run() {
    const auto checkpoint = s_.out / "checkpoints" / (spec_.name + ".stoch");
    if (s_.resume && std::filesystem::exists(checkpoint)) restore(checkpoint);
    for (int epoch = static_cast<int>(curve_.size()) + 1; epoch <= s_.epochs; ++epoch) {
      EpochRecord record;
      record.epoch = epoch;
      train_epoch(record);
      {
        // Validation, and the copy kept for early stopping, see the parameters that are evaluated: the
        // averaged ones when --average-decay is set; the checkpoint keeps the trained ones.
        const stoch::ScopedAverage<T> evaluated(average_ ? &*average_ : nullptr);
        validate(record);
        curve_.push_back(record);
        if (best_epoch_ == 0 || record.valid_error < curve_[static_cast<std::size_t>(best_epoch_ - 1)].valid_error) {
          best_epoch_ = epoch;
          auto params = net_.parameters();
          for (std::size_t k = 0; k < params.size(); ++k) best_[k].value = params[k]->value;
        }
      }
      save(checkpoint);
      progress_.line(epoch_line(record));
    }
    return finish();
  }

  /// Evaluation of the test set with skipping (sparse kernels) and without (dense product), best of R;
  /// called after run(), on the best epoch's parameters.
  void time_evaluation(VariantResult& result) {
    // Without skipping, every product is dense: the expert's and the output layer's.
    auto time_path = [&](stoch::ExpertPath path) {
      layer().set_path(path);
      output_layer().set_zero_skipping(path == stoch::ExpertPath::dense ? stoch::ZeroSkipping::off
                                                                        : stoch::ZeroSkipping::evaluation);
      const auto start = Clock::now();
      evaluate_logits_only(data_.test);
      return seconds(start, Clock::now());
    };
    // Every gate closed (a threshold above any score): the skipping path with nothing left to compute in
    // the expert, i.e. what a free expert would leave. dense / closed is the measured bound on the speed-up.
    auto time_closed = [&]() -> double {
      if constexpr (stoch::Thresholded<G>) {
        const T calibrated = gate().threshold();
        gate().set_threshold(std::numeric_limits<T>::max());
        const double closed = time_path(stoch::ExpertPath::sparse);
        gate().set_threshold(calibrated);
        return closed;
      } else {
        return 0.0;  // the sigmoid baselines never close a gate
      }
    };
    // Alternating passes, best of each: a fair comparison on a machine whose load changes.
    result.eval_seconds_dense = result.eval_seconds_sparse = result.eval_seconds_closed = 1e30;
    for (int k = 0; k < std::max(1, s_.timing_repeats); ++k) {
      result.eval_seconds_dense = std::min(result.eval_seconds_dense, time_path(stoch::ExpertPath::dense));
      result.eval_seconds_sparse = std::min(result.eval_seconds_sparse, time_path(stoch::ExpertPath::sparse));
      result.eval_seconds_closed = std::min(result.eval_seconds_closed, time_closed());
    }
    layer().set_path(stoch::ExpertPath::automatic);
    output_layer().set_zero_skipping(stoch::ZeroSkipping::evaluation);
  }

 private:
  using Layer0 = stoch::GatedLayer<Gater<G>>;

  /// The input dropout comes first and at rate 0 is the identity that draws nothing (the default: every
  /// run without --input-dropout is the same, draw for draw, as before the layer existed).
  static Net<G> build(G gate, Index units, double input_dropout, stoch::Generator& init) {
    Gater<G> gater(stoch::Linear<T>(stoch::kMnistPixels, 400, init, "gater.hidden"), stoch::Tanh<T>(400),
                   stoch::Linear<T>(400, units, init, "gater.gate"), std::move(gate));
    const stoch::Linear<T> expert(stoch::kMnistPixels, units, init, "expert");
    return Net<G>(stoch::Dropout<T>(stoch::kMnistPixels, static_cast<T>(input_dropout)),
                  Layer0(std::move(gater), expert, "expert"), stoch::Linear<T>(units, 10, init, "output"));
  }

  Layer0& layer() { return net_.template get<1>(); }
  stoch::Linear<T>& output_layer() { return net_.template get<2>(); }
  G& gate() { return layer().gater().last(); }

  // ---------------------------------------------------------------- training
  void train_epoch(EpochRecord& r) {
    const Index n = data_.train.size();
    const Index batch = std::min(s_.batch, n);
    const Index batches = n / batch;  // the remainder (< one batch, different examples each epoch) is dropped
    if (batch != xb_.cols()) {
      xb_.resize(stoch::kMnistPixels, batch);
      yb_.resize(static_cast<std::size_t>(batch));
    }
    shuffle(r.epoch, n);
    // A function of the epoch only (not of the budget), so that --epochs N --resume extends a run exactly.
    sgd_.set_learning_rate(static_cast<T>(s_.learning_rate * std::pow(s_.learning_rate_decay, r.epoch - 1)));
    stoch::Context<T> ctx(stoch::Mode::train, train_rng_);
    // K samples per example: the network sees K tiled copies of the batch (K * batch columns) and the loss
    // layer writes one loss per column into ctx.example_loss, which the gate pairs up by example.
    const Index tiles = config_.samples;
    if (tiles > 1) ctx.set_samples(tiles, config_.antithetic);
    const auto start = Clock::now();
    auto last_status = start;
    double loss_sum = 0, penalty_sum = 0, density_sum = 0, units_sum = 0;
    for (Index b = 0; b < batches; ++b) {
      for (Index j = 0; j < batch; ++j) {
        const Index example = order_[static_cast<std::size_t>(b * batch + j)];
        xb_.col(j) = data_.train.images.col(example);
        yb_[static_cast<std::size_t>(j)] = data_.train.labels[static_cast<std::size_t>(example)];
      }
      // A NaN or Inf (refused by a gate as a pre-activation, by the loss layer as a loss) stops training
      // here, naming the epoch and the batch; checkpoints are written only after a whole epoch, so the last
      // good one stays intact.
      if constexpr (requires(G& g) { g.set_temperature(T(1)); })
        if (config_.temperature)  // a function of the step in the whole run, so that --resume follows it
          gate().set_temperature((*config_.temperature)(static_cast<std::uint64_t>((r.epoch - 1) * batches + b)));
      T loss;
      try {
        if (tiles > 1) {
          stoch::tile_samples(xb_, tiles, tiled_x_);
          tiled_labels_ = stoch::tile_labels(yb_, tiles);
          loss = loss_.forward(net_.forward(tiled_x_, ctx), tiled_labels_, ctx);
        } else {
          loss = loss_.forward(net_.forward(xb_, ctx), yb_, ctx);
        }
      } catch (const stoch::Error& e) {
        throw stoch::Error("training stopped at epoch " + std::to_string(r.epoch) + ", batch " +
                           std::to_string(b + 1) + " of " + std::to_string(batches) + ": " + e.what());
      }
      if constexpr (requires(const G& g) { g.sparsity_penalty(); }) penalty_sum += gate().sparsity_penalty();
      density_sum += layer().density();
      units_sum += layer().active_unit_fraction();
      // A NaN or Inf in the gradients (Sgd refuses to step into it) stops training the same way.
      try {
        net_.backward(loss_.backward(), ctx);
        sgd_.step();
        if (average_) average_->update();
      } catch (const stoch::Error& e) {
        throw stoch::Error("training stopped at epoch " + std::to_string(r.epoch) + ", batch " +
                           std::to_string(b + 1) + " of " + std::to_string(batches) + ": " + e.what());
      }
      loss_sum += loss;
      const auto now = Clock::now();
      if (now - last_status > std::chrono::milliseconds(500)) {
        last_status = now;
        const double elapsed = seconds(start, now), done = static_cast<double>(b + 1) / static_cast<double>(batches);
        progress_.status(spec_.name, status_text(r.epoch, done, static_cast<double>((b + 1) * batch) / elapsed,
                                                 elapsed / done - elapsed, loss_sum / static_cast<double>(b + 1),
                                                 density_sum / static_cast<double>(b + 1)));
      }
    }
    const auto nb = static_cast<double>(batches);
    r.train_criterion = loss_sum / nb;
    r.sparsity_penalty = penalty_sum / nb;
    r.train_density = density_sum / nb;
    r.train_batch_unit_fraction = units_sum / nb;
    if constexpr (requires(const G& g) { g.l1(); })
      if (gate().l1()) r.l1_lambda = gate().l1()->lambda();
    if constexpr (requires(const G& g) { g.temperature(); }) r.temperature = gate().temperature();
    r.seconds = seconds(start, Clock::now());
  }

  /// The epoch's example order: Fisher-Yates driven by a stateless stream (position = epoch), so that a
  /// resumed run shuffles exactly as an uninterrupted one.
  void shuffle(int epoch, Index n) {
    order_.resize(static_cast<std::size_t>(n));
    std::iota(order_.begin(), order_.end(), Index(0));
    stoch::Generator g(s_.seed, kShuffleStream);
    g.set_position(static_cast<std::uint64_t>(epoch) << 32);
    for (Index i = n - 1; i > 0; --i) {
      const auto j = static_cast<Index>((static_cast<std::uint64_t>(g.next()) * static_cast<std::uint64_t>(i + 1)) >> 32);
      std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(j)]);
    }
  }

  // ---------------------------------------------------------------- evaluation
  struct Pass {
    Index examples = 0, errors = 0;
    double open = 0, gates = 0, unit_fraction_sum = 0, batches = 0;
    Index indecisive = 0, probabilities = 0;
    std::vector<std::int32_t> unit_open;  ///< per unit: examples where the gate was open
    double error() const { return static_cast<double>(errors) / static_cast<double>(examples); }
    double density() const { return open / gates; }
  };

  /// Runs the network over `set` in evaluation batches. Mode::eval: the deterministic network (App. A.3);
  /// Mode::train with `samples` K >= 1: the stochastic network, softmax outputs averaged over K samples
  /// (noise from the variant's evaluation stream, restarted at every pass). A gate trained on tiled samples
  /// (config_.samples = S > 1) samples only in that layout: each stochastic forward runs S tiled copies of
  /// the batch and gives S samples of every example (for DisArm an antithetic pair, each of the two a
  /// sample of the gate's distribution), of which the first K are used.
  Pass evaluate(const stoch::LabeledImages<T>& set, stoch::Mode mode, int samples = 1) {
    stoch::Generator rng(s_.seed, stream_of(spec_.id, kEvalStream));
    stoch::Context<T> ctx(mode, rng);
    const Index tiles = mode == stoch::Mode::train ? config_.samples : 1;
    if (tiles > 1) ctx.set_samples(tiles, config_.antithetic);
    Pass pass;
    pass.unit_open.assign(static_cast<std::size_t>(config_.units), 0);
    const Index n = set.size();
    for (Index first = 0; first < n; first += s_.eval_batch) {
      const Index count = std::min(s_.eval_batch, n - first);
      const auto x = set.images.middleCols(first, count);
      const std::span<const int> labels(set.labels.data() + first, static_cast<std::size_t>(count));
      mean_probabilities_.setZero(10, count);
      if (tiles > 1) {
        for (int k = 0; k < samples; k += static_cast<int>(tiles)) {
          stoch::tile_samples(x, tiles, tiled_x_);
          tiled_labels_ = stoch::tile_labels(labels, tiles);
          eval_loss_.forward(net_.forward(tiled_x_, ctx), tiled_labels_, ctx);
          const Index used = std::min<Index>(tiles, samples - k);
          const Matrix<T>& probabilities = eval_loss_.probabilities();
          for (Index j = 0; j < used; ++j) mean_probabilities_ += probabilities.middleCols(j * count, count);
          gate_statistics(pass, count, false, used * count);
        }
      } else {
        for (int k = 0; k < samples; ++k) {
          eval_loss_.forward(net_.forward(x, ctx), labels, ctx);
          mean_probabilities_ += eval_loss_.probabilities();
          gate_statistics(pass, count, mode == stoch::Mode::eval);
        }
      }
      pass.errors += stoch::count_errors<T>(mean_probabilities_, labels);
      pass.examples += count;
    }
    return pass;
  }

  /// Counts the open gates of the last forward: its first `columns` columns (all when 0: a tiled stochastic
  /// pass counts only the samples it uses), and per unit those of the first `count` (one sample of each example).
  void gate_statistics(Pass& pass, Index count, bool deterministic, Index columns = 0) {
    const Matrix<T>& all = gate().output();
    const auto h = all.leftCols(columns > 0 ? columns : all.cols());
    for (Index j = 0; j < count; ++j)
      for (Index i = 0; i < h.rows(); ++i) pass.unit_open[static_cast<std::size_t>(i)] += h(i, j) != T(0);
    pass.open += static_cast<double>((h.array() != T(0)).count());
    pass.gates += static_cast<double>(h.size());
    pass.unit_fraction_sum += layer().active_unit_fraction();
    pass.batches += 1;
    if (!config_.probability || !deterministic) return;
    const Matrix<T>* signal = &all;  // deterministic passes count every column
    if constexpr (stoch::Thresholded<G>) signal = &gate().scores();
    for (Index k = 0; k < signal->size(); ++k) {
      const double p = config_.probability(signal->data()[k]);
      pass.indecisive += (p > 0.05 && p < 0.95);
    }
    pass.probabilities += signal->size();
  }

  /// App. A.3: the threshold whose fraction of open gates on the validation set is the target density.
  void calibrate() {
    if constexpr (stoch::Thresholded<G>) {
      if (!config_.calibrate) return;
      stoch::Context<T> ctx(stoch::Mode::eval, train_rng_);  // evaluation draws nothing
      scores_.clear();
      const Index n = data_.valid.size();
      for (Index first = 0; first < n; first += s_.eval_batch) {
        const Index count = std::min(s_.eval_batch, n - first);
        layer().gater().forward(data_.valid.images.middleCols(first, count), ctx);
        const Matrix<T>& sc = gate().scores();
        scores_.insert(scores_.end(), sc.data(), sc.data() + sc.size());
      }
      const auto [lo, hi] = std::minmax_element(scores_.begin(), scores_.end());
      const T lower = *lo, upper = *hi > *lo ? *hi : *lo + T(1);
      stoch::ScoreHistogram<T> histogram(lower, upper);
      histogram.add(std::span<const T>(scores_));
      gate().set_threshold(histogram.threshold_for(static_cast<T>(s_.target_density)));
    }
  }

  void validate(EpochRecord& r) {
    const auto start = Clock::now();
    calibrate();
    const Pass deterministic = evaluate(data_.valid, stoch::Mode::eval);
    const Pass stochastic = evaluate(data_.valid, stoch::Mode::train);
    r.valid_error = deterministic.error();
    r.valid_error_stochastic = stochastic.error();
    r.valid_density = deterministic.density();
    r.valid_batch_unit_fraction = deterministic.unit_fraction_sum / deterministic.batches;
    if (deterministic.probabilities > 0)
      r.indecisive = static_cast<double>(deterministic.indecisive) / static_cast<double>(deterministic.probabilities);
    if constexpr (stoch::Thresholded<G>) r.threshold = gate().threshold();
    const auto examples = static_cast<std::int32_t>(deterministic.examples);
    r.dead_units = static_cast<double>(std::count(deterministic.unit_open.begin(), deterministic.unit_open.end(), 0));
    r.always_on_units =
        static_cast<double>(std::count(deterministic.unit_open.begin(), deterministic.unit_open.end(), examples));
    r.eval_seconds = seconds(start, Clock::now());
  }

  // ---------------------------------------------------------------- the end of a run
  VariantResult finish() {
    VariantResult result;
    result.spec = spec_;
    result.units = config_.units;
    result.settings = config_.settings;
    result.curve = curve_;
    result.epochs = static_cast<int>(curve_.size());
    result.best_epoch = best_epoch_;
    if (curve_.empty()) return result;
    auto params = net_.parameters();
    for (std::size_t k = 0; k < params.size(); ++k) params[k]->value = best_[k].value;  // includes the threshold
    const EpochRecord& best = curve_[static_cast<std::size_t>(best_epoch_ - 1)];
    for (const EpochRecord& r : curve_) result.train_seconds += r.seconds + r.eval_seconds;
    result.train_criterion = best.train_criterion;
    result.valid_error = best.valid_error;
    progress_.status(spec_.name, "final evaluation");
    const Pass test = evaluate(data_.test, stoch::Mode::eval);
    result.test_error = test.error();
    result.gate_density = test.density();
    gate_rules(result, test);
    return result;  // the timings come later: time_evaluation
  }

  /// The timed pass: only the network's forward (no diagnostics), in evaluation batches.
  void evaluate_logits_only(const stoch::LabeledImages<T>& set) {
    stoch::Context<T> ctx(stoch::Mode::eval, train_rng_);
    const Index n = set.size();
    Index errors = 0;
    for (Index first = 0; first < n; first += s_.eval_batch) {
      const Index count = std::min(s_.eval_batch, n - first);
      const Matrix<T>& logits = net_.forward(set.images.middleCols(first, count), ctx);
      errors += stoch::count_errors<T>(logits, std::span<const int>(set.labels.data() + first, static_cast<std::size_t>(count)));
    }
    timing_sink_ += errors;  // keeps the work observable
  }

  /// The test-time gate rules (issue 4): the paper's calibrated threshold, p > 0.5, one sample, K samples.
  void gate_rules(VariantResult& result, const Pass& test) {
    const EpochRecord& best = curve_[static_cast<std::size_t>(best_epoch_ - 1)];
    const bool calibrated_rule = stoch::Thresholded<G> && config_.calibrate;
    result.gate_rules.push_back({calibrated_rule ? "calibrated threshold (paper)" : "deterministic",
                                 best.valid_error, test.error(), test.density()});
    if constexpr (stoch::Thresholded<G>) {
      const T calibrated = gate().threshold();
      if (config_.calibrate) {
        gate().set_threshold(config_.half_threshold);
        const Pass valid = evaluate(data_.valid, stoch::Mode::eval), t = evaluate(data_.test, stoch::Mode::eval);
        result.gate_rules.push_back({"p > 0.5", valid.error(), t.error(), t.density()});
        gate().set_threshold(calibrated);
      }
    }
    for (const int k : {1, s_.eval_samples}) {
      if (k < 1) continue;
      const Pass valid = evaluate(data_.valid, stoch::Mode::train, k), t = evaluate(data_.test, stoch::Mode::train, k);
      result.gate_rules.push_back({k == 1 ? "one sample" : "mean of " + std::to_string(k) + " samples",
                                   valid.error(), t.error(), t.density()});
      if (s_.eval_samples == 1) break;
    }
  }

  // ---------------------------------------------------------------- checkpoints
  stoch::ParameterList<T> checkpoint_list() {
    stoch::ParameterList<T> list = net_.parameters();
    for (stoch::Parameter<T>& p : best_) list.push_back(&p);
    if (average_)
      for (stoch::Parameter<T>* p : average_->state()) list.push_back(p);
    return list;
  }

  void save(const std::filesystem::path& path) {
    std::filesystem::create_directories(path.parent_path());
    stoch::ModelFileOptions options;
    options.save_velocities = true;
    auto& ints = options.metadata.integers;
    ints["variant"] = static_cast<std::uint64_t>(spec_.id);
    ints["seed"] = s_.seed;
    ints["train_limit"] = static_cast<std::uint64_t>(s_.train_limit);
    ints["epoch"] = curve_.size();
    ints["best_epoch"] = static_cast<std::uint64_t>(best_epoch_);
    ints["rng.position"] = train_rng_.position();
    if (average_) ints["average.steps"] = average_->steps();
    ints["settings"] = settings_hash();
    for (std::size_t k = 0; k < curve_.size(); ++k) write_record(curve_[k], k, options.metadata);
    stoch::save_model(path, checkpoint_list(), options);
  }

  void restore(const std::filesystem::path& path) {
    const stoch::ModelMetadata meta = stoch::read_model_metadata(path);
    auto get = [&](const std::string& key) {
      const auto it = meta.integers.find(key);
      if (it == meta.integers.end())
        throw stoch::Error(path.string() + ": not a checkpoint of this program (no '" + key + "')");
      return it->second;
    };
    if (get("variant") != static_cast<std::uint64_t>(spec_.id) || get("seed") != s_.seed ||
        get("train_limit") != static_cast<std::uint64_t>(s_.train_limit) || get("settings") != settings_hash())
      throw stoch::Error(path.string() + ": the checkpoint was made with another --seed, --train-limit or "
                         "hyper-parameters; use another --out or drop --resume");
    stoch::load_model(path, checkpoint_list());
    train_rng_.set_position(get("rng.position"));
    if (average_) average_->set_steps(get("average.steps"));
    best_epoch_ = static_cast<int>(get("best_epoch"));
    curve_.clear();
    for (std::size_t k = 0; k < get("epoch"); ++k) curve_.push_back(read_record(k, meta));
    progress_.line(spec_.name + ": resumed after epoch " + std::to_string(curve_.size()) + " from " + path.string());
  }

  /// A hash of the hyper-parameters that change this variant's trajectory, so a resume with other ones is
  /// refused. Only this variant's own: config_.settings holds the values it runs with (rates, momentum,
  /// max-norm, sparsity strength, decay, averaging), so an option read by other variants only (such as
  /// --sts-momentum, or --max-norm for straight-through) leaves its checkpoints resumable.
  std::uint64_t settings_hash() const {
    std::string text = std::to_string(s_.target_density) + "|" + std::to_string(s_.eval_batch);
    if (s_.eval_limit > 0) text += "|eval_limit=" + std::to_string(s_.eval_limit);  // it changes the best epoch
    for (const auto& [k, v] : config_.settings) text += "|" + k + "=" + v;
    return stoch::fnv1a64(text) >> 1;
  }

  using Field = std::pair<const char*, double EpochRecord::*>;
  static constexpr Field kFields[] = {
      {"train_criterion", &EpochRecord::train_criterion},
      {"sparsity_penalty", &EpochRecord::sparsity_penalty},
      {"train_density", &EpochRecord::train_density},
      {"train_batch_unit_fraction", &EpochRecord::train_batch_unit_fraction},
      {"valid_error", &EpochRecord::valid_error},
      {"valid_error_stochastic", &EpochRecord::valid_error_stochastic},
      {"valid_density", &EpochRecord::valid_density},
      {"valid_batch_unit_fraction", &EpochRecord::valid_batch_unit_fraction},
      {"dead_units", &EpochRecord::dead_units},
      {"always_on_units", &EpochRecord::always_on_units},
      {"seconds", &EpochRecord::seconds},
      {"eval_seconds", &EpochRecord::eval_seconds}};
  using OptionalField = std::pair<const char*, std::optional<double> EpochRecord::*>;
  static constexpr OptionalField kOptionalFields[] = {{"indecisive", &EpochRecord::indecisive},
                                                      {"threshold", &EpochRecord::threshold},
                                                      {"l1_lambda", &EpochRecord::l1_lambda},
                                                      {"temperature", &EpochRecord::temperature}};

  static std::string key(std::size_t k, const char* field) {
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "curve.%05zu.", k);
    return prefix + std::string(field);
  }
  static void write_record(const EpochRecord& r, std::size_t k, stoch::ModelMetadata& meta) {
    for (const auto& [name, member] : kFields) meta.reals[key(k, name)] = r.*member;
    for (const auto& [name, member] : kOptionalFields)
      if (r.*member) meta.reals[key(k, name)] = *(r.*member);
  }
  static EpochRecord read_record(std::size_t k, const stoch::ModelMetadata& meta) {
    EpochRecord r;
    r.epoch = static_cast<int>(k) + 1;
    for (const auto& [name, member] : kFields) r.*member = meta.reals.at(key(k, name));
    for (const auto& [name, member] : kOptionalFields)
      if (const auto it = meta.reals.find(key(k, name)); it != meta.reals.end()) r.*member = it->second;
    return r;
  }

  // ---------------------------------------------------------------- progress
  std::string status_text(int epoch, double done, double rate, double eta, double loss, double density) const {
    char text[200];
    std::snprintf(text, sizeof text, "%s e%d/%d %3.0f%% %5.0f ex/s eta %3.0fs loss %.4f dens %.3f",
                  spec_.name.c_str(), epoch, s_.epochs, 100 * done, rate, eta, loss, density);
    return text;
  }

  std::string epoch_line(const EpochRecord& r) const {
    const double per_epoch = (r.seconds + r.eval_seconds);
    const double eta = per_epoch * (s_.epochs - r.epoch);
    char text[400];
    std::snprintf(text, sizeof text,
                  "%-22s epoch %3d/%d  %5.0f ex/s  crit %.2e  valid %.2f%% (stoch %.2f%%)  dens train %.3f "
                  "valid %.3f  indecisive %s  dead %.0f  on %.0f  %.0fs  eta %.0fs%s",
                  spec_.name.c_str(), r.epoch, s_.epochs, static_cast<double>(data_.train.size()) / r.seconds,
                  r.train_criterion, 100 * r.valid_error, 100 * r.valid_error_stochastic, r.train_density,
                  r.valid_density, r.indecisive ? std::to_string(*r.indecisive).substr(0, 5).c_str() : "-",
                  r.dead_units, r.always_on_units, per_epoch, eta, r.epoch == best_epoch_ ? "  *best" : "");
    return text;
  }

  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }

  VariantSpec spec_;
  Settings s_;
  VariantConfig config_;
  const stoch::Mnist<T>& data_;
  const Progress& progress_;
  stoch::Generator init_rng_, train_rng_;
  Net<G> net_;
  stoch::Sgd<T> sgd_;
  std::optional<stoch::ParameterAverage<T>> average_;  ///< --average-decay: what validation and test evaluate
  stoch::SoftmaxCrossEntropy<T> loss_{10}, eval_loss_{10};
  std::vector<stoch::Parameter<T>> best_;
  std::vector<EpochRecord> curve_;
  int best_epoch_ = 0;
  Matrix<T> xb_, mean_probabilities_, tiled_x_;
  std::vector<int> yb_, tiled_labels_;
  std::vector<Index> order_;
  std::vector<T> scores_;
  Index timing_sink_ = 0;
};

}  // namespace mnist
