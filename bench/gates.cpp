// Each stochastic gate of the paper on its own: forward (noise included) and backward, 2000 units (the
// paper's gater output, Sec. 5), batch 32 and 128, float, single thread.
//
//   BM_GateForward/<gate>/<batch>    BM_GateBackward/<gate>/<batch>    BM_GateEvalForward/<gate>/<batch>
//   BM_ExpectedOutput/<impl>/<spread>  the noisy rectifier's evaluation output alone, 2000 x 32 scores
//     (<impl>: 0 = the scalar expected_rectified_gaussian per open score, 1 = thresholded_expected_rectified_gaussian)
//
// Pre-activations are N(mean, 1) with the mean chosen so that about 10% of the gates open (the paper's
// target density); the backward is timed after one forward (the gates' backward is repeatable). The
// evaluation forward (Mode::eval: deterministic, thresholded at the default threshold, App. A.3) is timed on
// N(-1.28, 1) pre-activations, about 10% of which are above 0 (the noisy rectifier's default threshold, and
// the sigmoid gates' p > 1/2).
#include <benchmark/benchmark.h>

#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/noisy_sigmoid.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"

namespace {

using stoch::Index;
using T = float;
constexpr Index kUnits = 2000;

template <class Gate>
void gate_forward(benchmark::State& state, Gate gate, T mean) {
  const Index batch = state.range(0);
  stoch::Generator rng(7);
  stoch::Matrix<T> a(kUnits, batch);
  stoch::fill_gaussian<T>(rng, a);
  a.array() += mean;
  stoch::Context<T> ctx(stoch::Mode::train, rng);
  for (auto _ : state) benchmark::DoNotOptimize(gate.forward(a, ctx).data());
  const stoch::Matrix<T>& h = gate.forward(a, ctx);
  state.counters["density"] = static_cast<double>((h.array() != T(0)).count()) / static_cast<double>(h.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kUnits * batch);
}

template <class Gate>
void gate_eval_forward(benchmark::State& state, Gate gate) {
  const Index batch = state.range(0);
  stoch::Generator rng(7);
  stoch::Matrix<T> a(kUnits, batch);
  stoch::fill_gaussian<T>(rng, a);
  a.array() += T(-1.2816);
  stoch::Context<T> ctx(stoch::Mode::eval, rng);
  for (auto _ : state) benchmark::DoNotOptimize(gate.forward(a, ctx).data());
  const stoch::Matrix<T>& h = gate.forward(a, ctx);
  state.counters["density"] = static_cast<double>((h.array() != T(0)).count()) / static_cast<double>(h.size());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kUnits * batch);
}

template <class Gate>
void gate_backward(benchmark::State& state, Gate gate, T mean) {
  const Index batch = state.range(0);
  stoch::Generator rng(7);
  stoch::Matrix<T> a(kUnits, batch), dh(kUnits, batch);
  stoch::fill_gaussian<T>(rng, a);
  stoch::fill_gaussian<T>(rng, dh);
  a.array() += mean;
  stoch::Context<T> ctx(stoch::Mode::train, rng);
  ctx.example_loss = stoch::RowVector<T>::Ones(batch);  // the score-function gate (SBN) reads it
  gate.forward(a, ctx);
  for (auto _ : state) benchmark::DoNotOptimize(gate.backward(dh, ctx).data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kUnits * batch);
}

/// The noisy rectifier's expected outputs at 10% open gates: scores N(m, spread^2) thresholded at -0.74 (the
/// threshold the MNIST run calibrated), m placing 10% above it; a wider spread puts more open scores where the
/// scalar erfcf is slow (|argument| > 1). Against the scalar loop that the gate ran before.
void BM_ExpectedOutput(benchmark::State& state) {
  const T spread = static_cast<T>(state.range(1)) / T(10), threshold = T(-0.74);
  stoch::Generator rng(7);
  stoch::Matrix<T> mu(kUnits, 32), h(kUnits, 32);
  stoch::fill_gaussian<T>(rng, mu, spread);
  mu.array() += threshold - T(1.2816) * spread;
  stoch::ExpectedOutputScratch scratch;
  for (auto _ : state) {
    if (state.range(0) == 0) {
      for (Index k = 0; k < mu.size(); ++k)
        h.data()[k] = mu.data()[k] > threshold ? stoch::expected_rectified_gaussian(mu.data()[k], T(1)) : T(0);
    } else {
      stoch::thresholded_expected_rectified_gaussian(mu, threshold, T(1), h, scratch);
    }
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["density"] = static_cast<double>((h.array() != T(0)).count()) / static_cast<double>(h.size());
}
BENCHMARK(BM_ExpectedOutput)->ArgsProduct({{0, 1}, {10, 30}})->Unit(benchmark::kMicrosecond);

/// Registers forward, backward and the evaluation forward of one gate type at batch 32 and 128.
template <class MakeGate>
void register_gate(const std::string& name, MakeGate make, T mean) {
  benchmark::RegisterBenchmark(("BM_GateForward/" + name).c_str(),
                               [=](benchmark::State& state) { gate_forward(state, make(), mean); })
      ->Arg(32)->Arg(128)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("BM_GateBackward/" + name).c_str(),
                               [=](benchmark::State& state) { gate_backward(state, make(), mean); })
      ->Arg(32)->Arg(128)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark(("BM_GateEvalForward/" + name).c_str(),
                               [=](benchmark::State& state) { gate_eval_forward(state, make()); })
      ->Arg(32)->Arg(128)->Unit(benchmark::kMicrosecond);
}

// Means giving ~10% open gates: noisy rectifier P(a + z > 0) with z ~ N(0, 1); sigmoid gates sigm(a) = 0.1;
// STS opens with probability sqrt(sigm(a)) = 0.1. The noisy sigmoid never closes (dense by nature).
const bool registered = [] {
  register_gate("noisy_rectifier", [] { return stoch::NoisyRectifier<T>(kUnits); }, T(-1.8));
  register_gate("stochastic_times_smooth", [] { return stoch::StochasticTimesSmooth<T>(kUnits); }, T(-4.6));
  register_gate("stochastic_binary", [] { return stoch::StochasticBinary<T>(kUnits); }, T(-2.2));
  register_gate("straight_through", [] { return stoch::StraightThrough<T>(kUnits); }, T(-2.2));
  register_gate("noisy_sigmoid", [] { return stoch::NoisySigmoid<T>(kUnits, {.noise_std = T(1)}); }, T(0));
  return true;
}();

}  // namespace
