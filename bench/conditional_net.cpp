// The scaling benchmark of issue 38: a network of stacked block-gated layers, conditional against dense, as the
// width grows (the paper's O(MN + alpha N^2) cost of a gated layer, Sec. 5, measured end to end).
//
//   BM_ConditionalNet/<path>/<N>/<M>/<k>/<depth>/<batch>/<density_permille>/<threads>/<mode>
//
// The network: depth x (an N -> N GatedLayer whose gater is Linear(N, M) -> Tanh -> Linear(M, N / k) -> gate,
// one gate per block of k expert units), then a 10-way linear head; the input is `N x batch`, uniform in [0, 1).
// Above the first layer, the gater's first Linear and the head skip the zero inputs (Linear::set_zero_skipping):
// the output of a gated layer is mostly zeros (the block kernels of the next layer read only its non-zero inputs
// by themselves).
//
// <path>     0 = every expert unit computed (GatedLayer::set_path(ExpertPath::dense)); 1 = the layer's own
//            choice (ExpertPath::automatic); 2 = a plain dense MLP of the same widths without gaters, depth x
//            (Linear(N, N) -> Rectifier) and the same head: a rectifier because the gated layer is the paper's
//            analogue of one (a linear expert times a gate, App. A). Path 2 has no gater, block or density: its
//            <M>/<k>/<density_permille> are 0, and it has no <mode> 2 (without gates, that is mode 1's step).
// <mode>     0 = forward in Mode::eval: each layer's gate opens exactly round(density * N / k * batch)
//            (block, example) pairs at random positions (bench/exact_density.hpp), other ones at each forward,
//            whatever its input, after the gater's products ran (as in BM_BlockGatedForward). 1 = one training
//            step (forward, softmax cross-entropy, backward, Sgd::step with lr 1e-5, so that the density stays
//            where it starts; Sgd::set_fused_steps(true): the gated layers of paths 0 and 1 apply the step to their
//            expert weights inside backward, the Linear layers of path 2 and the gaters in Sgd::step) with stoch::StochasticBinary gates (SBN: no dL/dh, so training skips the closed
//            blocks); 2 = the same with stoch::StraightThrough gates (closed gates take dL/dh = dy H: training
//            computes every H). In training the gates are random: each gater's last bias is shifted so that the
//            mean open probability sigm(a) over the timed batch is the density.
// <threads>  stoch::set_threads for the run (restored after it). Times are wall-clock (UseRealTime): the CPU
//            time of the main thread does not count the others.
//
// Counters of paths 0 and 1 (path 2: `weight_MB`, and `density` = 1):
//   density          open (block, example) pairs, mean over the layers and the timed iterations
//   mac_bound        multiply-adds of path 0 over those of the conditional computation, gaters included
//                    (mac_counts below); mac_bound_plain: path 2's over the conditional ones
//   weight_MB        weight bytes (biases aside) the forward of the row's path read per batch, in 10^6 bytes: the
//                    gaters' (the first product's columns at the non-zero inputs when it skips zeros), the
//                    experts' (all, or the rows of the blocks open in at least one example, of the columns at
//                    the non-zero inputs when the block kernels skip zeros) and the head's
//   sparse           fraction of the gated layers whose last batch took the block kernels
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "exact_density.hpp"
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/core/threads.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"

namespace {

using stoch::Index;
using stoch::Linear;
using stoch::Matrix;
using T = float;
constexpr Index kClasses = 10;

/// A row's arguments, in the order of the benchmark's name.
struct Row {
  std::int64_t path, n, m, k, depth, batch, permille, threads, mode;

  explicit Row(const benchmark::State& state)
      : path(state.range(0)), n(state.range(1)), m(state.range(2)), k(state.range(3)), depth(state.range(4)),
        batch(state.range(5)), permille(state.range(6)), threads(state.range(7)), mode(state.range(8)) {}
  double density() const { return static_cast<double>(permille) / 1000.0; }
  Index blocks() const { return n / k; }
};

/// The gate of mode 0, whatever the gater computed: `blocks x batch` masks with exactly round(density * blocks *
/// batch) ones each (bench/exact_density.hpp, from the layer's own stream), a new one at each forward, in a
/// cycle of kMaskExamples / batch masks. As a stream of inputs would, the forwards open other blocks each time:
/// one fixed mask would keep the same few weights in cache, which the dense path cannot do. Evaluation only.
class ExactMaskGate {
 public:
  using Scalar = T;
  static constexpr bool needs_output_gradient = false;
  static constexpr bool closed_gate_needs_gradient = false;
  /// Examples in a cycle: at 2 % density, 1 - 0.98^256 = 99.4 % of the blocks open somewhere in it.
  static constexpr Index kMaskExamples = 256;

  ExactMaskGate(Index blocks, Index batch, double density, std::uint64_t layer) {
    stoch::Generator rng(2013, 38 + layer);
    masks_.resize(static_cast<std::size_t>(std::max<Index>(1, kMaskExamples / batch)));
    for (Matrix<T>& mask : masks_)
      mask = stoch::bench::exact_density<T>(blocks, batch, density, rng, [] { return T(1); });
  }
  Index input_size() const { return masks_[0].rows(); }
  Index output_size() const { return masks_[0].rows(); }
  const Matrix<T>& forward(const stoch::MatrixCRef<T>&, stoch::Context<T>&) {
    next_ = (next_ + 1) % masks_.size();
    return masks_[next_];
  }
  const Matrix<T>& backward(const stoch::MatrixCRef<T>&, stoch::Context<T>&) {
    stoch::internal::fail("ExactMaskGate: evaluation only (BM_ConditionalNet mode 0)");
  }
  stoch::ParameterList<T> parameters() { return {}; }

 private:
  std::vector<Matrix<T>> masks_;
  std::size_t next_ = 0;
};
static_assert(stoch::Gate<ExactMaskGate>);

template <class Gate>
using Gater = stoch::Sequential<Linear<T>, stoch::Tanh<T>, Linear<T>, Gate>;
template <class Gate>
using Gated = stoch::GatedLayer<Gater<Gate>>;

template <class Gate>
Gate make_gate(const Row& row, std::size_t layer) {
  const std::string name = "gate" + std::to_string(layer);
  if constexpr (std::is_same_v<Gate, ExactMaskGate>)
    return ExactMaskGate(row.blocks(), row.batch, row.density(), layer);
  else
    return Gate(row.blocks(), {}, name);
}

/// Layer `layer` (from 0) of the conditional network, its weights from the layer's own stream: paths 0 and 1
/// hold the same network.
template <class Gate>
Gated<Gate> gated_layer(const Row& row, std::size_t layer) {
  stoch::Generator rng(2013, layer);
  const std::string name = "layer" + std::to_string(layer);
  Linear<T> first(row.n, row.m, rng, name + ".gater1");
  if (layer > 0) first.set_zero_skipping(stoch::ZeroSkipping::always);
  Linear<T> second(row.m, row.blocks(), rng, name + ".gater2");
  Gater<Gate> gater(std::move(first), stoch::Tanh<T>(row.m), std::move(second), make_gate<Gate>(row, layer));
  Gated<Gate> gated(std::move(gater), Linear<T>(row.n, row.n, rng, name + ".expert"), row.k, name);
  gated.set_path(row.path == 0 ? stoch::ExpertPath::dense : stoch::ExpertPath::automatic);
  return gated;
}

Linear<T> head(const Row& row, bool skip_zeros) {
  stoch::Generator rng(2013, 1000);
  Linear<T> out(row.n, kClasses, rng, "head");
  if (skip_zeros) out.set_zero_skipping(stoch::ZeroSkipping::always);
  return out;
}

template <class Gate, std::size_t... I>
auto conditional_net(const Row& row, std::index_sequence<I...>) {
  return stoch::Sequential(gated_layer<Gate>(row, I)..., head(row, true));
}

template <std::size_t... I>
auto plain_net(const Row& row, std::index_sequence<I...>) {
  auto layer = [&](std::size_t i) {
    stoch::Generator rng(2013, i);
    return stoch::Sequential(Linear<T>(row.n, row.n, rng, "layer" + std::to_string(i)), stoch::Rectifier<T>(row.n));
  };
  return stoch::Sequential(layer(I)..., head(row, false));
}

/// Shifts each gater's last bias so that the mean of sigm(a) over the timed input `x` is the row's density, layer
/// by layer (a layer's input: the sampled output of the calibrated layers below it).
template <class Network, std::size_t... I>
void calibrate(Network& network, const Row& row, const Matrix<T>& x, std::index_sequence<I...>) {
  stoch::Generator rng(2013, 2000);
  stoch::Context<T> eval(stoch::Mode::eval, rng), train(stoch::Mode::train, rng);
  const Matrix<T>* input = &x;
  auto one = [&](auto& layer) {
    auto& gater = layer.gater();
    const Matrix<T>& a = gater.template get<2>().forward(
        gater.template get<1>().forward(gater.template get<0>().forward(*input, eval), eval), eval);
    auto open = [&](double shift) {
      return (T(1) / (T(1) + (-(a.array() + static_cast<T>(shift))).exp())).template cast<double>().mean();
    };
    double low = -30, high = 30;  // sigm(-30) and sigm(30) round to 0 and 1 in float: every density is reached
    for (int step = 0; step < 60; ++step) {
      const double middle = (low + high) / 2;
      if (open(middle) < row.density()) low = middle;
      else high = middle;
    }
    gater.template get<2>().bias().value.array() += static_cast<T>((low + high) / 2);
    input = &layer.forward(*input, train);
  };
  (one(network.template get<I>()), ...);
}

/// What the counters need of one gated layer: `density`, the mean over the timed iterations; the rest from one
/// forward after them.
struct LayerStats {
  double density = 0, input_entries = 1, input_rows = 1, active_units = 1;
  bool sparse = false, dense_expert = true, sparse_input = false;
};

double nonzero_fraction(const Matrix<T>& x) {
  return static_cast<double>((x.array() != T(0)).count()) / static_cast<double>(x.size());
}
/// Fraction of the rows of `x` with a non-zero entry: the columns of W a zero-skipping product reads.
double nonzero_row_fraction(const Matrix<T>& x) {
  return static_cast<double>((x.array() != T(0)).rowwise().any().count()) / static_cast<double>(x.rows());
}

/// Whether a Linear that skips zeros (`skipping`) does so on an input with this fraction of non-zero entries.
bool linear_skips(bool skipping, double entries) { return skipping && entries <= Linear<T>::kZeroSkippingCrossover; }

struct Macs {
  double dense, conditional, plain;
};

/// Multiply-adds of one batch of path 0 (`dense`), of the conditional computation at the measured densities
/// (`conditional`) and of path 2 (`plain`). A product W x costs its forward; in training also dW, and dL/dx above
/// the first layer (whose input is data). The conditional expert computes the open pairs at their non-zero inputs
/// only: above a gated layer it costs alpha_in * alpha_out of its N^2. The gaters are the same in both paths: the
/// first product skips the zero inputs above the first layer, the backward is dense (Linear::backward).
/// Straight-through training computes every expert unit in the forward, and dL/dx at every input.
Macs mac_counts(const Row& row, const std::vector<LayerStats>& layers) {
  const auto n = static_cast<double>(row.n), m = static_cast<double>(row.m), b = static_cast<double>(row.batch);
  const auto blocks = static_cast<double>(row.blocks());
  const bool training = row.mode != 0;
  Macs macs{0, 0, 0};
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const double alpha = layers[l].density, entries = l == 0 ? 1.0 : layers[l - 1].density;  // of its input
    const double g1 = n * m * b, g2 = m * blocks * b, expert = n * n * b, open = alpha * entries * expert;
    const double g1_forward = linear_skips(l > 0, entries) ? entries * g1 : g1;
    const double backward = l == 0 ? 1 : 2;  // dW, and dL/dx above the first layer
    const double gater = training ? g1_forward + backward * g1 + 3 * g2 : g1_forward + g2;
    macs.dense += gater + (training ? 1 + backward : 1) * expert;
    if (!training) macs.conditional += gater + open;
    else if (row.mode == 1) macs.conditional += gater + (1 + backward) * open;
    else macs.conditional += gater + expert + open + (l == 0 ? 0 : alpha * expert);
    macs.plain += (training ? 1 + backward : 1) * expert;
  }
  const double head = static_cast<double>(kClasses) * n * b, last = layers.back().density;
  const double head_forward = linear_skips(true, last) ? last * head : head;
  macs.dense += head_forward + (training ? 2 * head : 0);
  macs.conditional += head_forward + (training ? 2 * head : 0);
  macs.plain += (training ? 3 : 1) * head;
  return macs;
}

/// Weight bytes (biases aside) one forward of path 0 or 1 read, in 10^6 bytes (see the file comment);
/// `head_input`: the head's input.
double weight_megabytes(const Row& row, const std::vector<LayerStats>& layers, const Matrix<T>& head_input) {
  const auto n = static_cast<double>(row.n), m = static_cast<double>(row.m);
  double floats = 0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const LayerStats& s = layers[l];
    floats += n * m * (linear_skips(l > 0, s.input_entries) ? s.input_rows : 1.0);
    floats += m * static_cast<double>(row.blocks());
    floats += n * n * (s.dense_expert ? 1.0 : s.active_units * (s.sparse_input ? s.input_rows : 1.0));
  }
  const bool head_skips = linear_skips(true, nonzero_fraction(head_input));
  floats += static_cast<double>(kClasses) * n * (head_skips ? nonzero_row_fraction(head_input) : 1.0);
  return floats * sizeof(T) / 1e6;
}

/// Sets the thread count for one run and restores the previous one after it (the other benchmarks of the
/// binary run on the count they set).
class ThreadCount {
 public:
  explicit ThreadCount(std::int64_t count) : saved_(stoch::threads()) { stoch::set_threads(static_cast<int>(count)); }
  ~ThreadCount() { stoch::set_threads(saved_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int saved_;
};

/// The timed input, `N x batch`, uniform in [0, 1).
Matrix<T> timed_input(const Row& row) {
  stoch::Generator rng(2013, 3000);
  Matrix<T> x(row.n, row.batch);
  stoch::fill_uniform<T>(rng, x);
  return x;
}

/// Times the row's mode on `network` with input `x`; `after_iteration(network)` runs inside the timed loop
/// (it must be trivial).
template <class Network, class Observe>
void time_mode(benchmark::State& state, const Row& row, Network& network, const Matrix<T>& x, Observe after_iteration) {
  stoch::Generator rng(2013, 4000);
  if (row.mode == 0) {
    stoch::Context<T> ctx(stoch::Mode::eval, rng);
    for (auto _ : state) {
      benchmark::DoNotOptimize(network.forward(x, ctx).data());
      after_iteration(network);
    }
    return;
  }
  network.set_input_gradient(false);  // the input is data, as in the examples
  stoch::SoftmaxCrossEntropy<T> loss(kClasses);
  stoch::Sgd<T> sgd(network.parameters(), {.learning_rate = T(1e-5)});
  sgd.set_fused_steps(true);  // the gated layers (paths 0 and 1) step their expert in backward; Linear cannot
  std::vector<int> labels(static_cast<std::size_t>(row.batch));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % kClasses);
  stoch::Context<T> ctx(stoch::Mode::train, rng);
  for (auto _ : state) {
    const Matrix<T>& logits = network.forward(x, ctx);
    benchmark::DoNotOptimize(loss.forward(logits, labels, ctx));
    network.backward(loss.backward(), ctx);
    sgd.step();
    after_iteration(network);
  }
}

template <class Gate, std::size_t Depth>
void run_conditional(benchmark::State& state, const Row& row) {
  constexpr auto layers = std::make_index_sequence<Depth>{};
  auto network = conditional_net<Gate>(row, layers);
  const Matrix<T> x = timed_input(row);
  if constexpr (!std::is_same_v<Gate, ExactMaskGate>) calibrate(network, row, x, layers);
  std::array<double, Depth> density_sums{};
  time_mode(state, row, network, x, [&](auto& net) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((density_sums[I] += net.template get<I>().density()), ...);
    }(layers);
  });

  // One more forward, layer by layer, for what each layer read.
  std::vector<LayerStats> stats(Depth);
  stoch::Generator rng(2013, 5000);
  stoch::Context<T> ctx(row.mode == 0 ? stoch::Mode::eval : stoch::Mode::train, rng);
  const Matrix<T>* input = &x;
  const auto iterations = static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
  auto observe = [&](auto& layer, LayerStats& s, double density_sum) {
    s.input_entries = nonzero_fraction(*input);
    s.input_rows = nonzero_row_fraction(*input);
    input = &layer.forward(*input, ctx);
    s.density = density_sum / iterations;
    s.active_units = layer.active_unit_fraction();
    s.sparse = layer.last_batch_sparse();
    s.dense_expert = layer.last_forward_dense();
    s.sparse_input = layer.last_input_sparse();
  };
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (observe(network.template get<I>(), stats[I], density_sums[I]), ...);
  }(layers);

  const Macs macs = mac_counts(row, stats);
  double density = 0, sparse = 0;
  for (const LayerStats& s : stats) {
    density += s.density / Depth;
    sparse += (s.sparse ? 1.0 : 0.0) / Depth;
  }
  state.counters["density"] = density;
  state.counters["mac_bound"] = macs.dense / macs.conditional;
  state.counters["mac_bound_plain"] = macs.plain / macs.conditional;
  state.counters["weight_MB"] = weight_megabytes(row, stats, *input);
  state.counters["sparse"] = sparse;
}

template <std::size_t Depth>
void run_plain(benchmark::State& state, const Row& row) {
  auto network = plain_net(row, std::make_index_sequence<Depth>{});
  time_mode(state, row, network, timed_input(row), [](auto&) {});
  const auto n = static_cast<double>(row.n);
  state.counters["density"] = 1;
  const double floats = static_cast<double>(Depth) * n * n + static_cast<double>(kClasses) * n;
  state.counters["weight_MB"] = floats * sizeof(T) / 1e6;
}

template <std::size_t Depth>
void run_depth(benchmark::State& state, const Row& row) {
  if (row.path == 2) run_plain<Depth>(state, row);
  else if (row.mode == 0) run_conditional<ExactMaskGate, Depth>(state, row);
  else if (row.mode == 1) run_conditional<stoch::StochasticBinary<T>, Depth>(state, row);
  else run_conditional<stoch::StraightThrough<T>, Depth>(state, row);
}

void BM_ConditionalNet(benchmark::State& state) {
  const Row row(state);
  const ThreadCount threads(row.threads);
  if (row.depth == 1) run_depth<1>(state, row);
  else if (row.depth == 3) run_depth<3>(state, row);
  else state.SkipWithError("BM_ConditionalNet: depth 1 or 3 (the depth is a template argument)");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * row.batch);
}

/// A row without its path.
struct Config {
  std::int64_t n, k, depth, batch, permille, threads, mode;
};

/// The rows of issue 38's targets and of its scaling curve. Each configuration gets paths 0 and 1 back to back,
/// then path 2 the first time its (N, depth, batch, threads, mode) comes.
void rows(benchmark::internal::Benchmark* b) {
  std::vector<Config> configs;
  // The scaling curve: k = 16, depth 1, evaluation, batch 1 and 64, density 10 % and 2 %.
  for (const std::int64_t batch : {1, 64})
    for (const std::int64_t permille : {100, 20})
      for (const std::int64_t n : {1024, 2048, 4096, 8192}) configs.push_back({n, 16, 1, batch, permille, 1, 0});
  // N = 8192, block and unit gates, evaluation and SBN training, at 10 % and at 100 % (where the automatic
  // choice must fall back to the dense expert); straight-through training at k = 16, 10 %.
  for (const std::int64_t mode : {0, 1, 2})
    for (const std::int64_t k : {16, 1})
      for (const std::int64_t batch : {1, 64})
        for (const std::int64_t permille : {100, 1000})
          if (mode != 2 || (k == 16 && permille == 100)) configs.push_back({8192, k, 1, batch, permille, 1, mode});
  // Depth 3 at N = 4096.
  for (const std::int64_t permille : {100, 1000}) configs.push_back({4096, 16, 3, 1, permille, 1, 0});
  configs.push_back({4096, 16, 3, 64, 100, 1, 0});
  configs.push_back({4096, 16, 3, 1, 100, 1, 1});
  // Two threads: the batch-64 forward and SBN training step at N = 8192, block and unit gates (their one-thread
  // rows are above).
  for (const std::int64_t k : {16, 1})
    for (const std::int64_t mode : {0, 1}) configs.push_back({8192, k, 1, 64, 100, 2, mode});

  std::vector<std::vector<std::int64_t>> added;
  auto add = [&](std::vector<std::int64_t> args) {
    if (std::find(added.begin(), added.end(), args) != added.end()) return;
    added.push_back(args);
    b->Args(args);
  };
  for (const Config& c : configs) {
    for (const std::int64_t path : {0, 1}) add({path, c.n, 256, c.k, c.depth, c.batch, c.permille, c.threads, c.mode});
    add({2, c.n, 0, 0, c.depth, c.batch, 0, c.threads, std::min<std::int64_t>(c.mode, 1)});
  }
}

}  // namespace

BENCHMARK(BM_ConditionalNet)->Apply(rows)->UseRealTime()->Unit(benchmark::kMicrosecond);
