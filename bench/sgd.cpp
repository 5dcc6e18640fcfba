// One SGD step on the parameters of the paper's MNIST network (2.7 M floats, which do not fit in L2),
// learning rate 0.1, no max-norm (it is the same in both):
//
//   BM_SgdStep/<impl>/<momentum_permille>: <impl> 0 = the update as three whole-matrix statements per parameter
//   (velocity = momentum * velocity - rate * grad; value += velocity; grad = 0: three passes over memory),
//   1 = Sgd::step (the same statements chunk by chunk, the chunk staying in L1: one pass; identical results).
//   Entries that differ only in <impl> are a same-run comparison; compare with BM_MnistStep (a whole step).
#include <benchmark/benchmark.h>

#include "mnist_parameters.hpp"
#include "stoch/optim/sgd.hpp"

namespace {

using T = float;

void whole_matrix_step(const stoch::ParameterList<T>& list, T learning_rate, T momentum) {
  for (stoch::Parameter<T>* p : list) {
    p->velocity = momentum * p->velocity - learning_rate * p->grad;
    p->value += p->velocity;
    p->grad.setZero();
  }
}

void BM_SgdStep(benchmark::State& state) {
  stoch::bench::MnistParameters<T> parameters;
  const T momentum = static_cast<T>(state.range(1)) / T(1000);
  stoch::Sgd<T> sgd(parameters.list, {.learning_rate = T(0.1), .momentum = momentum});  // sizes the velocities
  const bool library = state.range(0) == 1;
  for (auto _ : state) {
    if (library) sgd.step();
    else whole_matrix_step(parameters.list, T(0.1), momentum);
    benchmark::ClobberMemory();
  }
  state.counters["parameters"] = static_cast<double>(parameters.values);
}
BENCHMARK(BM_SgdStep)->ArgsProduct({{0, 1}, {0, 900}})->Unit(benchmark::kMicrosecond);

}  // namespace
