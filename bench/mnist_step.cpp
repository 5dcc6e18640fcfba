// One whole training step of the paper's MNIST network (Sec. 5, App. A), batch 32, for each gate type,
// with the gated layer's expert dense (path 0) and as the layer chooses (path 1):
//
//   784 -> GatedLayer( gater: Linear(784, 400) -> Tanh -> Linear(400, 2000) -> Gate(2000),
//                      expert: Linear(784, 2000) ) -> Linear(2000, 10) -> softmax cross-entropy
//
//   BM_MnistStep/<gate>/<path>: forward, loss, backward, SGD step (learning rate 1e-5 so that the gate
//   density stays where it starts during the measurement), without dL/dx of the input (as the example).
//   BM_MnistStepInputGradient/<impl>/<path>: straight-through with (0) and without (1) that dL/dx.
//   Inputs are uniform [0, 1] "pixels", labels fixed. The gater's output bias is set so that about 10% of
//   the gates open (the paper's target density).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/noisy_sigmoid.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"

namespace {

using stoch::Index;
using T = float;
constexpr Index kBatch = 32;

/// One training step per iteration; `path` 0 = dense expert, 1 = the layer's choice; `input_gradient`:
/// whether the network computes dL/dx of its input (the pixels), which no one reads. The MNIST example
/// turns it off (Sequential::set_input_gradient(false)), and so do the BM_MnistStep entries.
template <class Gate>
void mnist_step(benchmark::State& state, Gate gate, T gate_bias, std::int64_t path, bool input_gradient) {
  using stoch::Linear;
  using Gater = stoch::Sequential<Linear<T>, stoch::Tanh<T>, Linear<T>, Gate>;
  stoch::Generator rng(2013);
  Gater gater(Linear<T>(784, 400, rng, "gater1"), stoch::Tanh<T>(400), Linear<T>(400, 2000, rng, "gater2"),
              std::move(gate));
  gater.template get<2>().bias().value.setConstant(gate_bias);
  stoch::GatedLayer<Gater> gated(std::move(gater), Linear<T>(784, 2000, rng));
  gated.set_path(path == 0 ? stoch::ExpertPath::dense : stoch::ExpertPath::automatic);
  stoch::Sequential network(std::move(gated), Linear<T>(2000, 10, rng, "output"));
  network.set_input_gradient(input_gradient);
  stoch::SoftmaxCrossEntropy<T> loss(10);
  stoch::Sgd<T> sgd(network.parameters(), {.learning_rate = T(1e-5)});

  stoch::Matrix<T> x(784, kBatch);
  stoch::fill_uniform<T>(rng, x);
  std::vector<int> labels(kBatch);
  for (Index b = 0; b < kBatch; ++b) labels[static_cast<std::size_t>(b)] = static_cast<int>(b % 10);
  stoch::Context<T> ctx(stoch::Mode::train, rng);

  for (auto _ : state) {
    const stoch::Matrix<T>& logits = network.forward(x, ctx);
    benchmark::DoNotOptimize(loss.forward(logits, labels, ctx));
    network.backward(loss.backward(), ctx);
    sgd.step();
  }
  const auto& layer = network.template get<0>();
  state.counters["density"] = layer.density();
  state.counters["sparse"] = layer.last_batch_sparse() ? 1 : 0;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kBatch);
}

template <class MakeGate>
void register_network(const std::string& name, MakeGate make, T gate_bias) {
  benchmark::RegisterBenchmark(("BM_MnistStep/" + name).c_str(), [=](benchmark::State& state) {
    mnist_step(state, make(), gate_bias, state.range(0), false);
  })->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
}

/// BM_MnistStepInputGradient/<impl>/<path>, straight-through: <impl> 0 = the input's dL/dx computed (as
/// every step did before set_input_gradient), 1 = skipped. A same-run comparison; the parameter gradients,
/// hence the training, are identical.
void BM_MnistStepInputGradient(benchmark::State& state) {
  mnist_step(state, stoch::StraightThrough<T>(2000), T(-2.2), state.range(1), state.range(0) == 0);
}
BENCHMARK(BM_MnistStepInputGradient)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond);

// Gater output biases for ~10% open gates (the gater's pre-activations have a standard deviation of
// about 0.3 at initialisation): noisy rectifier P(a + z > 0) with z ~ N(0, 1); sigm(a) = 0.1 for the
// binary gates; sqrt(sigm(a)) = 0.1 for STS. The noisy sigmoid never closes a gate: its path 1 stays dense.
const bool registered = [] {
  register_network("noisy_rectifier", [] { return stoch::NoisyRectifier<T>(2000); }, T(-1.3));
  register_network("stochastic_times_smooth", [] { return stoch::StochasticTimesSmooth<T>(2000); }, T(-4.6));
  register_network("stochastic_binary", [] { return stoch::StochasticBinary<T>(2000); }, T(-2.2));
  register_network("straight_through", [] { return stoch::StraightThrough<T>(2000); }, T(-2.2));
  register_network("noisy_sigmoid", [] { return stoch::NoisySigmoid<T>(2000, {.noise_std = T(1)}); }, T(0));
  return true;
}();

}  // namespace
