// The gated conditional layer (Sec. 5): the expert computed densely (the full Eigen product, then the
// mask) against the layer's own choice and against the sparse kernels forced, at exact gate densities.
//
//   BM_GatedForward/<path>/<units>/<in>/<batch>/<density_permille>    forward, Mode::eval
//   BM_GatedTrainStep/<path>/<units>/<in>/<batch>/<density_permille>  forward + backward, Mode::train
//   BM_SparseForwardKernel/<units>/<in>/<batch>/<density_permille>/<order>  the sparse forward kernel alone
//     (<order>: 0 = by-unit lists, VisitOrder::natural; 1 = by-unit lists, VisitOrder::by_leading_examples;
//     2 = by-example lists, each input column loaded once per packet for the example's open units, whose
//     weight columns are then the operands read once per FMA)
//   BM_DenseProduct/<rows>/<in>/<batch>  Eigen's product W x alone (W `rows x in`): the dense expert and
//     the gater's two products of the MNIST evaluation, per SIMD FMA, beside the sparse kernel's
//   BM_BlockGatedForward/<N>/<M>/<k>/<batch>/<density_permille>/<path>  forward, Mode::eval, of one N -> N
//     gated layer with gates on blocks of k units and a real gater, N -> M tanh -> N / k (its products are
//     timed; its gate is a fixed mask of exact density); <path> 0 = ExpertPath::dense (every expert unit
//     computed), 1 = ExpertPath::automatic. Counters: `mac_bound`, the multiply-adds of path 0 over those of
//     the conditional computation (gater included in both), `mac_bound_plain`, those of a plain N -> N layer
//     without a gater over the conditional ones, and `weight_bytes`, the weight bytes the run read per batch
//     (the gater's, and the expert's rows of the blocks open in at least one example, or all of them)
//
// <path>: 0 = ExpertPath::dense, 1 = ExpertPath::automatic (the layer as a user gets it),
// 2 = ExpertPath::sparse. Entries that differ only in <path> are a same-run comparison. The gater is a
// fixed mask (its own cost is not measured) whose estimator allows the skip (closed gates need no dL/dh).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "exact_density.hpp"
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/core/threads.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/tanh.hpp"

namespace {

using stoch::Index;
using T = float;

/// A gate that outputs a fixed `units x batch` mask with exactly round(density * units * batch) ones at
/// random positions (fixed seed), whatever its input; rectifier-like traits (the skip is allowed).
class FixedMaskGate {
 public:
  using Scalar = T;
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;

  FixedMaskGate(Index in, Index units, Index batch, double density)
      : in_(in), mask_(mask(units, batch, density)), input_gradient_(stoch::Matrix<T>::Zero(in, batch)) {}
  Index input_size() const { return in_; }
  Index output_size() const { return mask_.rows(); }
  const stoch::Matrix<T>& forward(const stoch::MatrixCRef<T>&, stoch::Context<T>&) { return mask_; }
  const stoch::Matrix<T>& backward(const stoch::MatrixCRef<T>&, stoch::Context<T>&) { return input_gradient_; }
  stoch::ParameterList<T> parameters() { return {}; }

 private:
  static stoch::Matrix<T> mask(Index units, Index batch, double density) {
    stoch::Generator rng(2013, 5);
    return stoch::bench::exact_density<T>(units, batch, density, rng, [] { return T(1); });
  }

  Index in_;
  stoch::Matrix<T> mask_, input_gradient_;
};
static_assert(stoch::Gate<FixedMaskGate>);

// Every benchmark of stoch_bench runs on one thread unless it sets its own count (BM_ConditionalNet's
// <threads>): the default would be every core.
const bool context_added = [] {
  stoch::set_threads(1);
  benchmark::AddCustomContext("threads", "1 (stoch kernels and Eigen single-threaded) unless a row names its own");
  return true;
}();

constexpr stoch::ExpertPath kPaths[] = {stoch::ExpertPath::dense, stoch::ExpertPath::automatic,
                                         stoch::ExpertPath::sparse};

stoch::GatedLayer<FixedMaskGate> make_layer(const benchmark::State& state) {
  const Index units = state.range(1), in = state.range(2), batch = state.range(3);
  const double density = static_cast<double>(state.range(4)) / 1000.0;
  stoch::Generator rng(1);
  stoch::GatedLayer<FixedMaskGate> layer(FixedMaskGate(in, units, batch, density), stoch::Linear<T>(in, units, rng));
  layer.set_path(kPaths[state.range(0)]);
  return layer;
}

void report(benchmark::State& state, const stoch::GatedLayer<FixedMaskGate>& layer) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(3));
  state.counters["density"] = layer.density();
  state.counters["sparse"] = layer.last_batch_sparse() ? 1 : 0;
}

void BM_GatedForward(benchmark::State& state) {
  auto layer = make_layer(state);
  const stoch::Matrix<T> x = stoch::Matrix<T>::Random(state.range(2), state.range(3));
  stoch::Generator rng(2);
  stoch::Context<T> ctx(stoch::Mode::eval, rng);
  for (auto _ : state) benchmark::DoNotOptimize(layer.forward(x, ctx).data());
  report(state, layer);
}

void BM_GatedTrainStep(benchmark::State& state) {
  auto layer = make_layer(state);
  const stoch::Matrix<T> x = stoch::Matrix<T>::Random(state.range(2), state.range(3));
  const stoch::Matrix<T> dy = stoch::Matrix<T>::Random(state.range(1), state.range(3));
  stoch::Generator rng(2);
  stoch::Context<T> ctx(stoch::Mode::train, rng);
  for (auto _ : state) {
    benchmark::DoNotOptimize(layer.forward(x, ctx).data());
    benchmark::DoNotOptimize(layer.backward(dy, ctx).data());
  }
  report(state, layer);
}

/// Shapes (units, in, batch) of the issue: the paper's expert at two batch sizes, and a large layer whose
/// weights (64 MB) do not fit in cache. Path varies fastest, so that compared entries run back to back.
void shapes(benchmark::internal::Benchmark* b) {
  const std::vector<std::vector<std::int64_t>> layers = {{2000, 784, 32}, {2000, 784, 128}, {4096, 4096, 256}};
  for (const auto& layer : layers)
    for (const std::int64_t permille : {10, 20, 50, 100, 250, 500, 1000})
      for (const std::int64_t path : {0, 1, 2}) b->Args({path, layer[0], layer[1], layer[2], permille});
}

/// SIMD packets per column of `rows` values (the last one partial): FMAs per dot product.
Index packets_per_column(Index rows) {
  return (rows + stoch::internal::kPacketSize<T> - 1) / stoch::internal::kPacketSize<T>;
}

/// The inputs of a sparse forward kernel run, from the arguments <units>/<in>/<batch>/<density_permille>/
/// <order>: by-unit lists of a fixed random mask, random weights (`in x units`, transposed) and inputs with
/// the layer's padded stride.
struct KernelRun {
  stoch::internal::ActiveSet active;
  stoch::Matrix<T> weights_t, padded;
  std::vector<T> sums;

  explicit KernelRun(const benchmark::State& state)
      : weights_t(stoch::Matrix<T>::Random(state.range(1), state.range(0))),
        padded(stoch::Matrix<T>::Random(stoch::internal::padded_stride<T>(state.range(1)), state.range(2))) {
    FixedMaskGate gate(state.range(1), state.range(0), state.range(2), static_cast<double>(state.range(3)) / 1000.0);
    stoch::Generator rng(3);
    stoch::Context<T> ctx(stoch::Mode::eval, rng);
    const stoch::Matrix<T>& mask = gate.forward(stoch::Matrix<T>(), ctx);
    active.count<T>(mask);
    active.build_lists<T>(mask, state.range(4) == 2 ? stoch::ListLayout::by_example : stoch::ListLayout::by_unit,
                          state.range(4) == 1 ? stoch::VisitOrder::by_leading_examples : stoch::VisitOrder::natural);
    sums.resize(static_cast<std::size_t>(active.nonzeros()));
  }
  stoch::MatrixCRef<T> x() const { return padded.topRows(weights_t.rows()); }
  void report(benchmark::State& state) const {
    state.counters["packet_fmas"] = static_cast<double>(active.nonzeros() * packets_per_column(weights_t.rows()));
    state.counters["density"] = active.density();
  }
};

/// The sparse forward kernel alone (internal::sparse_expert_forward, no list building, copy or scatter), to
/// show what bounds it: `packet_fmas` per iteration gives the time per SIMD FMA.
/// (4096, 512, 8) at 1000 permille is the control whose inputs (16 KB) sit in L1; (2000, 784, 32) at 1000
/// permille is the control whose inputs (100 KB) sit in L2 but are read in long streams (32 per unit), each
/// weight packet serving 32 FMAs: what is left of the per-FMA cost is the transfer of x from L2 to L1.
void BM_SparseForwardKernel(benchmark::State& state) {
  KernelRun run(state);
  const stoch::MatrixCRef<T> weights_t = run.weights_t, x = run.x();
  for (auto _ : state) {
    stoch::internal::sparse_expert_forward<T>(run.active, weights_t, x, run.sums.data());
    benchmark::DoNotOptimize(run.sums.data());
  }
  run.report(state);
}

/// Eigen's product W x alone, W `rows x in`, x `in x batch` (no bias, mask or check), with `packet_fmas`
/// counted as for the sparse kernel: the per-FMA cost that skipping competes with, and the gater's
/// products, which skipping cannot avoid.
void BM_DenseProduct(benchmark::State& state) {
  const Index rows = state.range(0), in = state.range(1), batch = state.range(2);
  const stoch::Matrix<T> weights = stoch::Matrix<T>::Random(rows, in);
  const stoch::Matrix<T> x = stoch::Matrix<T>::Random(in, batch);
  stoch::Matrix<T> y(rows, batch);
  for (auto _ : state) {
    y.noalias() = weights * x;
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["packet_fmas"] = static_cast<double>(rows * batch * packets_per_column(in));
}

/// The last layer of a real gater, `blocks -> blocks`: a fixed mask of exact density (fixed seed) whatever
/// its input, so that the gater's products run but the density is the row's; rectifier-like traits.
class FixedDensityGate {
 public:
  using Scalar = T;
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;

  FixedDensityGate(Index blocks, Index batch, double density) : mask_(mask(blocks, batch, density)) {}
  Index input_size() const { return mask_.rows(); }
  Index output_size() const { return mask_.rows(); }
  const stoch::Matrix<T>& forward(const stoch::MatrixCRef<T>&, stoch::Context<T>&) { return mask_; }
  const stoch::Matrix<T>& backward(const stoch::MatrixCRef<T>& dy, stoch::Context<T>&) {
    gradient_ = dy;
    return gradient_;
  }
  stoch::ParameterList<T> parameters() { return {}; }

 private:
  static stoch::Matrix<T> mask(Index blocks, Index batch, double density) {
    stoch::Generator rng(2013, 6);
    return stoch::bench::exact_density<T>(blocks, batch, density, rng, [] { return T(1); });
  }
  stoch::Matrix<T> mask_, gradient_;
};
static_assert(stoch::Gate<FixedDensityGate>);

using BlockGater = stoch::Sequential<stoch::Linear<T>, stoch::Tanh<T>, stoch::Linear<T>, FixedDensityGate>;

/// Args <N>/<M>/<k>/<batch>/<density_permille>/<path>.
void BM_BlockGatedForward(benchmark::State& state) {
  const Index n = state.range(0), m = state.range(1), k = state.range(2), batch = state.range(3);
  const double density = static_cast<double>(state.range(4)) / 1000.0;
  stoch::Generator rng(1);
  stoch::Linear<T> first(n, m, rng, "g1");
  stoch::Linear<T> second(m, n / k, rng, "g2");
  stoch::Linear<T> expert(n, n, rng, "expert");
  stoch::GatedLayer<BlockGater> layer(
      BlockGater(first, stoch::Tanh<T>(m), second, FixedDensityGate(n / k, batch, density)), expert, k);
  layer.set_path(state.range(5) == 0 ? stoch::ExpertPath::dense : stoch::ExpertPath::automatic);
  const stoch::Matrix<T> x = stoch::Matrix<T>::Random(n, batch);
  stoch::Context<T> ctx(stoch::Mode::eval, rng);
  for (auto _ : state) benchmark::DoNotOptimize(layer.forward(x, ctx).data());

  const double gater = static_cast<double>(n * m + m * (n / k)) * static_cast<double>(batch);
  const double expert_macs = static_cast<double>(n * n) * static_cast<double>(batch);
  const double conditional = gater + layer.density() * expert_macs;
  state.counters["mac_bound"] = (gater + expert_macs) / conditional;
  state.counters["mac_bound_plain"] = expert_macs / conditional;
  const double read_fraction = layer.last_batch_sparse() ? layer.active_unit_fraction() : 1.0;
  state.counters["weight_bytes"] =
      static_cast<double>(sizeof(T)) * (static_cast<double>(n * m + m * (n / k)) + read_fraction * static_cast<double>(n * n));
  state.counters["density"] = layer.density();
  state.counters["sparse"] = layer.last_batch_sparse() ? 1 : 0;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * batch);
}

/// The rows of issue 38's block-gate targets; path varies fastest, so that compared entries run back to back.
void block_rows(benchmark::internal::Benchmark* b) {
  for (const std::int64_t n : {4096, 8192})
    for (const std::int64_t k : {1, 16})
      for (const std::int64_t batch : {1, 64})
        for (const std::int64_t path : {0, 1}) b->Args({n, 256, k, batch, 100, path});
}

}  // namespace

BENCHMARK(BM_BlockGatedForward)->Apply(block_rows)->Unit(benchmark::kMicrosecond);

// (200, 784, 32): the paper's expert cut to 200 units, whose weights (0.6 MB) stay in a 1 MiB L2 with x;
// (500, 784, 32): cut to 500 units, whose weights (1.5 MB) fit in a 2 MiB L2 but not in 1 MiB; (2000, 784, 256):
// the paper's expert with each weight column used for 8x more examples. All against (2000, 784, 32), whose
// 6 MB of weights come from L3 or memory at every batch.
BENCHMARK(BM_SparseForwardKernel)
    ->Args({2000, 784, 32, 100, 0})
    ->Args({2000, 784, 32, 100, 1})
    ->Args({2000, 784, 32, 100, 2})
    ->Args({2000, 784, 32, 1000, 0})
    ->Args({500, 784, 32, 100, 0})
    ->Args({200, 784, 32, 100, 0})
    ->Args({200, 784, 32, 100, 1})
    ->Args({2000, 784, 256, 100, 0})
    ->Args({4096, 4096, 256, 100, 0})
    ->Args({4096, 512, 8, 1000, 0})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DenseProduct)
    ->ArgsProduct({{2000}, {784}, {32, 256}})
    ->ArgsProduct({{400}, {784}, {32, 256}})
    ->ArgsProduct({{2000}, {400}, {32, 256}})
    ->Args({500, 784, 32})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GatedForward)->Apply(shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GatedTrainStep)->Apply(shapes)->Unit(benchmark::kMicrosecond);
