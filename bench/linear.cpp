// The affine layer's forward with and without skipping the zero entries of its input
// (Linear::set_zero_skipping), on inputs with an exact fraction of non-zero entries at random positions:
//
//   BM_LinearForward/<skip>/<out>/<in>/<batch>/<density_permille>   one Linear::forward, Mode::eval
//
// <skip>: 0 = ZeroSkipping::off (the dense product, the default), 1 = ZeroSkipping::always (which runs the dense product itself above
// Linear::kZeroSkippingCrossover). Entries that differ only in <skip> are a same-run comparison. (10, 2000, 32)
// is the MNIST network's output layer, fed by the gated layer; (400, 784, 32) a wider layer.
#include <benchmark/benchmark.h>

#include "exact_density.hpp"
#include "stoch/layers/linear.hpp"

namespace {

using stoch::Index;
using T = float;

void BM_LinearForward(benchmark::State& state) {
  const Index out = state.range(1), in = state.range(2), batch = state.range(3);
  stoch::Generator init(7);
  stoch::Linear<T> layer(in, out, init);
  layer.set_zero_skipping(state.range(0) != 0 ? stoch::ZeroSkipping::always : stoch::ZeroSkipping::off);
  stoch::Generator rng(2013, 11);
  const stoch::Matrix<T> x = stoch::bench::exact_density<T>(in, batch, static_cast<double>(state.range(4)) / 1000.0,
                                                            rng, [&] { return T(0.5) + static_cast<T>(rng.next() % 1024) / T(1024); });
  stoch::Context<T> ctx(stoch::Mode::eval, rng);
  for (auto _ : state) {
    const stoch::Matrix<T>& y = layer.forward(x, ctx);
    benchmark::DoNotOptimize(y.data());
  }
}
BENCHMARK(BM_LinearForward)
    ->ArgsProduct({{0, 1}, {10}, {2000}, {32}, {50, 100, 250, 500}})
    ->ArgsProduct({{0, 1}, {400}, {784}, {32}, {100, 250}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
