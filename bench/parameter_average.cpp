// The cost of evaluating the moving average of the parameters (stoch::ParameterAverage), per training step,
// on the parameters of the paper's MNIST network (784 -> gater 400 -> 2000 gates, expert 784 -> 2000,
// output 2000 -> 10: 2,706,010 floats):
//
//   BM_ParameterAverage/<every>: one update() call, i.e. one training step's share of the averaging; every
//   <every>-th call passes over all the parameters (memory-bound), the others only count.
//
// Compare with BM_MnistStep/<gate>/1 (a whole training step) in the same run: the MNIST example samples
// every 16 steps by default because every step cost straight-through a noticeable share of its epoch.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "mnist_parameters.hpp"
#include "stoch/optim/parameter_average.hpp"

namespace {

using T = float;

void BM_ParameterAverage(benchmark::State& state) {
  stoch::bench::MnistParameters<T> parameters;
  const stoch::ParameterList<T>& params = parameters.list;
  const auto every = static_cast<std::uint64_t>(state.range(0));
  stoch::ParameterAverage<T> average(params, T(0.9998), every);
  for (auto _ : state) {
    average.update();
    benchmark::ClobberMemory();
  }
  state.counters["parameters"] = static_cast<double>(parameters.values);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ParameterAverage)->Arg(1)->Arg(16)->Unit(benchmark::kMicrosecond);

}  // namespace
