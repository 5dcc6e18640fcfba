// The finite check every Linear::forward runs on its input (internal::check_finite), on the three inputs
// of the paper's MNIST network at batch 32 (784 pixels, 400 tanh units, 2000 gated units):
//
//   BM_FiniteCheck/<impl>/<rows>: one check of a `rows x 32` float matrix, all finite (the common case).
//   <impl>: 0 = Eigen's allFinite() (entry by entry, early exit), 1 = internal::all_finite (one vectorised
//   sum of x * 0). Entries that differ only in <impl> are a same-run comparison.
#include <benchmark/benchmark.h>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"

namespace {

void BM_FiniteCheck(benchmark::State& state) {
  stoch::Generator rng(7);
  stoch::Matrix<float> x(state.range(1), 32);
  stoch::fill_uniform<float>(rng, x);
  const stoch::MatrixCRef<float> input(x);  // what Linear::forward receives
  const bool vectorised = state.range(0) == 1;
  for (auto _ : state) {
    const bool finite = vectorised ? stoch::internal::all_finite(input) : input.allFinite();
    benchmark::DoNotOptimize(finite);
  }
  state.SetItemsProcessed(state.iterations() * x.size());
}
BENCHMARK(BM_FiniteCheck)->ArgsProduct({{0, 1}, {784, 400, 2000}});

}  // namespace
