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
#include <memory>
#include <vector>

#include "stoch/core/distributions.hpp"
#include "stoch/optim/parameter_average.hpp"

namespace {

using T = float;

void BM_ParameterAverage(benchmark::State& state) {
  const struct { const char* name; stoch::Index rows, cols; } shapes[] = {
      {"gater1.weight", 400, 784},   {"gater1.bias", 400, 1},   {"gater2.weight", 2000, 400},
      {"gater2.bias", 2000, 1},      {"expert.weight", 2000, 784}, {"expert.bias", 2000, 1},
      {"output.weight", 10, 2000},   {"output.bias", 10, 1}};
  stoch::Generator rng(2013);
  std::vector<std::unique_ptr<stoch::Parameter<T>>> storage;
  stoch::ParameterList<T> params;
  std::int64_t values = 0;
  for (const auto& s : shapes) {
    storage.push_back(std::make_unique<stoch::Parameter<T>>(s.name, s.rows, s.cols));
    stoch::fill_uniform<T>(rng, storage.back()->value);
    params.push_back(storage.back().get());
    values += s.rows * s.cols;
  }
  const auto every = static_cast<std::uint64_t>(state.range(0));
  stoch::ParameterAverage<T> average(params, T(0.9998), every);
  for (auto _ : state) {
    average.update();
    benchmark::ClobberMemory();
  }
  state.counters["parameters"] = static_cast<double>(values);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ParameterAverage)->Arg(1)->Arg(16)->Unit(benchmark::kMicrosecond);

}  // namespace
