// The networks of examples/conditional_mlp, their training and their evaluation: the dense MLP
// 784 -> N -> N -> 10 and the same MLP with each hidden layer gated by blocks of k units (issue 38, item 5).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <stoch/conditional/gated_layer.hpp>
#include <stoch/core/math.hpp>
#include <stoch/data/mnist.hpp>
#include <stoch/gates/stochastic_binary.hpp>
#include <stoch/gates/straight_through.hpp>
#include <stoch/gates/threshold.hpp>
#include <stoch/graph/sequential.hpp>
#include <stoch/layers/linear.hpp>
#include <stoch/layers/rectifier.hpp>
#include <stoch/layers/softmax_cross_entropy.hpp>
#include <stoch/layers/tanh.hpp>
#include <stoch/optim/sgd.hpp>
#include <stoch/regularizers/kl_sparsity.hpp>

namespace conditional_mlp {

using T = float;
using stoch::Index;
using stoch::Matrix;

/// Settings of a run (command line; defaults in main.cpp's option descriptions).
struct Settings {
  Index units = 4096;             ///< width of each hidden layer
  Index block = 16;               ///< expert units per gate
  Index bottleneck = 64;          ///< M: each gater maps its input through M tanh units to units / block gates
  double target_density = 0.1;    ///< fraction of open gates (App. A.1): KL target and test-time calibration
  int epochs = 3;
  Index batch = 32;               ///< App. A: mini-batches of 32
  double dense_learning_rate = 0.2;  ///< chosen on validation (README.md; App. A.4 has 0.1)
  double sbn_learning_rate = 0.1;    ///< App. A.4's rate; 0.2 diverged (README.md)
  double st_learning_rate = 0.2;     ///< chosen on validation (README.md)
  double max_norm = 4.0;          ///< bound on every unit's incoming weight norm, every network (README.md)
  double sbn_gater_learning_rate = 0.03;  ///< App. A.4's "100 times smaller" is 0.001; see README.md
  double st_gater_learning_rate = 0.03;
  double gate_init_norm = 4.0;    ///< initial norm of every gate unit's incoming weights (0: the Glorot draw)
  double sbn_kl_strength = 0.03;  ///< lambda of Eq. 14
  double st_kl_strength = 0.003;
  int st_deterministic_from = 2;  ///< straight-through trains with thresholded gates from this epoch (0: never)
  std::uint64_t seed = 1;
  Index train_limit = 0;          ///< first N training images only (0: all 50,000)
  Index eval_limit = 0;           ///< first N validation and test images only (0: all 10,000)
  Index eval_batch = 100;         ///< batch of the validation and test passes (not of the timing)
  Index timing_examples = 1000;   ///< batch-1 timing: this many test images, one at a time
  int timing_repeats = 3;         ///< timing: interleaved repetitions, median reported
};

/// One epoch of one network.
struct EpochRecord {
  int epoch = 0;
  double train_loss = 0;        ///< mean cross-entropy of the epoch's training batches
  double seconds = 0;           ///< wall time of the epoch's training (forward, backward, step; no evaluation)
  double valid_error = 0;       ///< deterministic network (calibrated thresholds for the gated ones)
  double train_density[2] = {0, 0};  ///< mean fraction of open gates per gated layer in training batches
  double valid_density[2] = {0, 0};  ///< the same on validation, deterministic
};

/// What the test pass measured (fractions).
struct TestRecord {
  double error = 0;
  double gate_density[2] = {0, 0};    ///< open (block, example) pairs of each gated layer
  double active_fraction[2] = {0, 0}; ///< non-zero outputs of each hidden layer (after the rectifier)
};

/// Inference time of one network (or one path of it) per example, median of the repetitions.
struct Timing {
  std::string network;  ///< e.g. "dense", "sbn", "sbn (every expert unit computed)"
  double batch1_seconds = 0, batch64_seconds = 0;
  std::vector<double> batch1_repeats, batch64_repeats;
};

template <class G>
using Gater = stoch::Sequential<stoch::Linear<T>, stoch::Tanh<T>, stoch::Linear<T>, G>;
template <class G>
using GatedNet = stoch::Sequential<stoch::GatedLayer<Gater<G>>, stoch::Rectifier<T>, stoch::GatedLayer<Gater<G>>,
                                   stoch::Rectifier<T>, stoch::Linear<T>>;
using DenseNet = stoch::Sequential<stoch::Linear<T>, stoch::Rectifier<T>, stoch::Linear<T>, stoch::Rectifier<T>,
                                   stoch::Linear<T>>;

inline DenseNet dense_net(const Settings& s, stoch::Generator& init) {
  return DenseNet(stoch::Linear<T>(stoch::kMnistPixels, s.units, init, "hidden1"), stoch::Rectifier<T>(s.units),
                  stoch::Linear<T>(s.units, s.units, init, "hidden2"), stoch::Rectifier<T>(s.units),
                  stoch::Linear<T>(s.units, 10, init, "output"));
}

/// A gated layer in -> units whose gater is in -> M tanh -> units / k gates (Sec. 5's gater with a bottleneck
/// M << units, so that it costs O(M N) against the expert's O(N^2)); the gate biases start at
/// logit(target), where the KL penalty (Eq. 14) is zero, so that the gates need not first be pulled down from
/// p = 1/2.
template <class G>
stoch::GatedLayer<Gater<G>> gated_layer(const Settings& s, Index in, G gate, stoch::Generator& init,
                                        const std::string& name) {
  const Index gates = s.units / s.block;
  Gater<G> gater(stoch::Linear<T>(in, s.bottleneck, init, name + ".gater.hidden"), stoch::Tanh<T>(s.bottleneck),
                 stoch::Linear<T>(s.bottleneck, gates, init, name + ".gater.gate"), std::move(gate));
  gater.template get<2>().bias().value.setConstant(static_cast<T>(stoch::logit(s.target_density)));
  // Gates that depend on the input from the start: with the Glorot draw every gate's p stays near the target
  // for every example, and the sampled gates are a 90 % dropout of the hidden units that learns slowly.
  if (s.gate_init_norm > 0)
    stoch::set_unit_norms(gater.template get<2>().weight(), static_cast<T>(s.gate_init_norm));
  return stoch::GatedLayer<Gater<G>>(std::move(gater), stoch::Linear<T>(in, s.units, init, name), s.block, name);
}

/// Inputs mostly zero (the rectified output of a gated layer): the second gater's first product and the output
/// layer read only the non-zero inputs' weights, in training too (Sec. 5; the outputs are the dense
/// product's up to rounding). The second expert does the same by itself (GatedLayer, block gates).
template <class G>
GatedNet<G> gated_net(const Settings& s, G gate1, G gate2, stoch::Generator& init) {
  GatedNet<G> net(gated_layer(s, stoch::kMnistPixels, std::move(gate1), init, "hidden1"),
                  stoch::Rectifier<T>(s.units), gated_layer(s, s.units, std::move(gate2), init, "hidden2"),
                  stoch::Rectifier<T>(s.units), stoch::Linear<T>(s.units, 10, init, "output"));
  // Initial scale: a layer above a gated layer sums over about target * N non-zero inputs instead of the
  // dense MLP's N / 2 (rectifier), so its Glorot-uniform weights would shrink the signal by sqrt(target) per
  // gated layer, and the gradients with it (measured: 62 steps of SBN left the loss at log 10, where the dense
  // MLP reached 18 % error). The second expert and the output layer start at 1 / sqrt(target) times their draw.
  const auto scale = static_cast<T>(1 / std::sqrt(s.target_density));
  net.template get<2>().expert_weight().value *= scale;
  net.template get<4>().weight().value *= scale;
  net.template get<2>().gater().template get<0>().set_zero_skipping(stoch::ZeroSkipping::always);
  net.template get<4>().set_zero_skipping(stoch::ZeroSkipping::always);
  return net;
}

template <class Net>
inline constexpr bool kGated = !std::is_same_v<Net, DenseNet>;

/// One network with its optimiser, trained epoch by epoch. Not movable (Sgd holds pointers into the network):
/// build it in place.
template <class Net>
class Model {
 public:
  /// `gater_learning_rate`: the gaters' rate (App. A.4 gives the SBN gater its own), ignored for the dense net;
  /// `learning_rate`: every other parameter's.
  Model(std::string name, std::string label, Net net, const Settings& s, double learning_rate,
        double gater_learning_rate, std::uint64_t train_stream)
      : name_(std::move(name)),
        label_(std::move(label)),
        s_(s),
        net_(std::move(net)),
        sgd_(net_.parameters(), {.learning_rate = static_cast<T>(learning_rate), .momentum = T(0)}),
        train_rng_(s.seed, train_stream) {
    net_.set_input_gradient(false);  // dL/dpixels is never read
    stoch::set_max_norm(net_.parameters(), static_cast<T>(s.max_norm));
    // The gated layers' experts take their SGD step inside backward, block by block (the same bits as
    // backward then step(); their gradient never passes through memory). The Linear layers step in step().
    sgd_.set_fused_steps(true);
    if constexpr (kGated<Net>) {
      const auto scale = static_cast<T>(gater_learning_rate / learning_rate);
      stoch::set_learning_rate_scale(layer<0>().gater().parameters(), scale);
      stoch::set_learning_rate_scale(layer<2>().gater().parameters(), scale);
    }
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const std::string& name() const { return name_; }
  const std::string& label() const { return label_; }
  Net& net() { return net_; }
  const std::vector<EpochRecord>& curve() const { return curve_; }

  /// One epoch over `train` in the given example order, then the thresholds and the validation error.
  void train_epoch(const stoch::LabeledImages<T>& train, const std::vector<Index>& order,
                   const stoch::LabeledImages<T>& valid) {
    EpochRecord r;
    r.epoch = static_cast<int>(curve_.size()) + 1;
    const Index batch = std::min(s_.batch, train.size()), batches = train.size() / batch;
    Matrix<T> x(stoch::kMnistPixels, batch);
    std::vector<int> y(static_cast<std::size_t>(batch));
    stoch::Context<T> ctx(stoch::Mode::train, train_rng_);
    double loss_sum = 0;
    const auto start = Clock::now();
    for (Index b = 0; b < batches; ++b) {
      for (Index j = 0; j < batch; ++j) {
        const Index example = order[static_cast<std::size_t>(b * batch + j)];
        x.col(j) = train.images.col(example);
        y[static_cast<std::size_t>(j)] = train.labels[static_cast<std::size_t>(example)];
      }
      // The loss layer writes the per-example losses into ctx, which the SBN gates read in backward (Sec. 3).
      loss_sum += loss_.forward(net_.forward(x, ctx), y, ctx);
      if constexpr (kGated<Net>) {
        r.train_density[0] += layer<0>().density();
        r.train_density[1] += layer<2>().density();
      }
      net_.backward(loss_.backward(), ctx);
      sgd_.step();
    }
    r.seconds = seconds_since(start);
    const auto n = static_cast<double>(batches);
    r.train_loss = loss_sum / n;
    for (double& d : r.train_density) d /= n;
    calibrate(valid);
    const Pass pass = evaluate(valid);
    r.valid_error = pass.error();
    for (int l = 0; l < 2; ++l) r.valid_density[l] = pass.gate_density(l);
    curve_.push_back(r);
  }

  /// The test pass with the last epoch's parameters and thresholds.
  TestRecord test(const stoch::LabeledImages<T>& set) {
    const Pass pass = evaluate(set);
    TestRecord t;
    t.error = pass.error();
    for (int l = 0; l < 2; ++l) {
      t.gate_density[l] = pass.gate_density(l);
      t.active_fraction[l] = pass.active[l] / (pass.examples * static_cast<double>(s_.units));
    }
    return t;
  }

  /// Every expert unit computed (the gates still multiply), and every product dense: the reference path of
  /// issue 38 (path 0), for the timing; false restores the skipping network.
  void set_dense_path(bool dense) {
    if constexpr (kGated<Net>) {
      const stoch::ExpertPath path = dense ? stoch::ExpertPath::dense : stoch::ExpertPath::automatic;
      const stoch::ZeroSkipping skipping = dense ? stoch::ZeroSkipping::off : stoch::ZeroSkipping::always;
      layer<0>().set_path(path);
      layer<2>().set_path(path);
      layer<2>().gater().template get<0>().set_zero_skipping(skipping);
      net_.template get<4>().set_zero_skipping(skipping);
    }
  }

  /// Seconds per example of the evaluation forward over the first `examples` images of `set`, `batch` at a
  /// time (whole batches only).
  double time_forward(const stoch::LabeledImages<T>& set, Index batch, Index examples) {
    stoch::Context<T> ctx(stoch::Mode::eval);
    const Index batches = std::min(examples, set.size()) / batch;
    Index errors = 0;
    const auto start = Clock::now();
    for (Index b = 0; b < batches; ++b) {
      const Matrix<T>& logits = net_.forward(set.images.middleCols(b * batch, batch), ctx);
      errors += stoch::count_errors<T>(logits, std::span<const int>(set.labels).subspan(
                                                   static_cast<std::size_t>(b * batch), static_cast<std::size_t>(batch)));
    }
    const double elapsed = seconds_since(start);
    sink_ += errors;  // keeps the work observable
    return elapsed / static_cast<double>(batches * batch);
  }

  /// The multiply-adds of one evaluation forward per example, from the densities the test pass measured:
  /// the gaters (their first product reads only non-zero inputs in the second layer), the open blocks of the
  /// experts (the second reads only non-zero inputs) and the output layer over the non-zero inputs.
  double conditional_macs(const TestRecord& t) const {
    const double n = static_cast<double>(s_.units), m = static_cast<double>(s_.bottleneck);
    const double gates = n / static_cast<double>(s_.block), pixels = stoch::kMnistPixels;
    const double gater1 = pixels * m + m * gates, gater2 = t.active_fraction[0] * n * m + m * gates;
    const double expert1 = t.gate_density[0] * pixels * n, expert2 = t.gate_density[1] * t.active_fraction[0] * n * n;
    return gater1 + expert1 + gater2 + expert2 + t.active_fraction[1] * n * 10;
  }
  /// The dense MLP's multiply-adds per example.
  double dense_macs() const {
    const double n = static_cast<double>(s_.units);
    return stoch::kMnistPixels * n + n * n + n * 10;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  template <std::size_t I>
  auto& layer() {
    return net_.template get<I>();
  }

  struct Pass {
    double errors = 0, examples = 0, open[2] = {0, 0}, gates[2] = {0, 0}, active[2] = {0, 0};
    double error() const { return errors / examples; }
    double gate_density(int l) const { return gates[l] > 0 ? open[l] / gates[l] : 0; }
  };

  Pass evaluate(const stoch::LabeledImages<T>& set) {
    stoch::Context<T> ctx(stoch::Mode::eval);
    Pass pass;
    for (Index first = 0; first < set.size(); first += s_.eval_batch) {
      const Index count = std::min(s_.eval_batch, set.size() - first);
      // Layer by layer (what Sequential::forward does) to count the hidden layers' non-zero outputs.
      const Matrix<T>& hidden1 = layer<1>().forward(layer<0>().forward(set.images.middleCols(first, count), ctx), ctx);
      pass.active[0] += static_cast<double>((hidden1.array() != T(0)).count());
      const Matrix<T>& hidden2 = layer<3>().forward(layer<2>().forward(hidden1, ctx), ctx);
      pass.active[1] += static_cast<double>((hidden2.array() != T(0)).count());
      const Matrix<T>& logits = layer<4>().forward(hidden2, ctx);
      pass.errors += static_cast<double>(stoch::count_errors<T>(
          logits, std::span<const int>(set.labels).subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(count))));
      pass.examples += static_cast<double>(count);
      if constexpr (kGated<Net>) {
        const auto gates = static_cast<double>(count * s_.units / s_.block);
        pass.open[0] += layer<0>().density() * gates;
        pass.open[1] += layer<2>().density() * gates;
        pass.gates[0] += gates;
        pass.gates[1] += gates;
      }
    }
    return pass;
  }

  /// App. A.3: each gate's test-time threshold is set so that `target_density` of the validation set's gates
  /// open. Layer 1 first: layer 2's input depends on layer 1's gates.
  void calibrate(const stoch::LabeledImages<T>& valid) {
    if constexpr (kGated<Net>) {
      stoch::Context<T> ctx(stoch::Mode::eval);
      std::vector<T> scores;
      auto gate_scores = [&](auto& gated, const Matrix<T>& input) {
        gated.gater().forward(input, ctx);
        const Matrix<T>& sc = gated.gater().last().scores();
        scores.insert(scores.end(), sc.data(), sc.data() + sc.size());
      };
      auto set_threshold = [&](auto& gated) {
        gated.gater().last().set_threshold(stoch::calibrate_threshold(std::span<const T>(scores),
                                                                      static_cast<T>(s_.target_density)));
        scores.clear();
      };
      for (Index first = 0; first < valid.size(); first += s_.eval_batch) {
        const Index count = std::min(s_.eval_batch, valid.size() - first);
        gate_scores(layer<0>(), valid.images.middleCols(first, count));
      }
      set_threshold(layer<0>());
      for (Index first = 0; first < valid.size(); first += s_.eval_batch) {
        const Index count = std::min(s_.eval_batch, valid.size() - first);
        const Matrix<T> hidden =
            layer<1>().forward(layer<0>().forward(valid.images.middleCols(first, count), ctx), ctx);
        gate_scores(layer<2>(), hidden);
      }
      set_threshold(layer<2>());
    }
  }

  std::string name_, label_;
  Settings s_;
  Net net_;
  stoch::Sgd<T> sgd_;
  stoch::Generator train_rng_;
  stoch::SoftmaxCrossEntropy<T> loss_{10};
  std::vector<EpochRecord> curve_;
  Index sink_ = 0;
};

}  // namespace conditional_mlp
