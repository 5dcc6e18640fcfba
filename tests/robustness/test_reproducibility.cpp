// Reproducibility: the same seed (and thread count) gives bit-identical training; the noise does not depend
// on how many threads draw it; a model's outputs with 1 and 2 threads agree to floating-point tolerance.
#include <cstring>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"

#include "support/catch.hpp"

using namespace stoch;

namespace {

template <class Gate>
Gate make_gate(Index units) {
  if constexpr (std::is_same_v<Gate, StochasticTimesSmooth<float>>)
    return Gate(units, {.beta_noise = BetaNoise<float>{}});  // the Beta noise draws too (App. A.2)
  else
    return Gate(units);
}

/// The paper's conditional network in miniature: x -> gater [tanh -> Gate] x expert -> softmax.
template <class Gate>
auto make_model(Generator& rng) {
  auto gater = Sequential(Linear<float>(12, 8, rng), Tanh<float>(8), Linear<float>(8, 10, rng), make_gate<Gate>(10));
  return Sequential(GatedLayer<decltype(gater)>(std::move(gater), Linear<float>(12, 10, rng)),
                    Linear<float>(10, 4, rng));
}

Matrix<float> inputs(Index batch, std::uint64_t seed) {
  Generator rng(seed);
  Matrix<float> x(12, batch);
  fill_uniform<float>(rng, x);
  return x;
}

/// Every parameter's value (and optimiser state) after a few momentum-SGD steps from `seed`, as raw bytes.
template <class Gate>
std::vector<unsigned char> train(std::uint64_t seed) {
  Generator rng(seed);
  auto model = make_model<Gate>(rng);
  SoftmaxCrossEntropy<float> loss(4);
  Sgd<float> sgd(model.parameters(), {.learning_rate = 0.1f, .momentum = 0.9f});
  Context<float> ctx(Mode::train, rng);
  const Matrix<float> x = inputs(16, 99);
  std::vector<int> labels(16);
  for (int j = 0; j < 16; ++j) labels[static_cast<std::size_t>(j)] = j % 4;
  for (int step = 0; step < 5; ++step) {
    loss.forward(model.forward(x, ctx), labels, ctx);
    model.backward(loss.backward(), ctx);
    sgd.step();
  }
  std::vector<unsigned char> bytes;
  for (const Parameter<float>* p : model.parameters())
    for (const Matrix<float>* m : {&p->value, &p->velocity}) {
      const auto* begin = reinterpret_cast<const unsigned char*>(m->data());
      bytes.insert(bytes.end(), begin, begin + sizeof(float) * static_cast<std::size_t>(m->size()));
    }
  return bytes;
}

}  // namespace

TEMPLATE_TEST_CASE("Training with the same seed is bit-identical; another seed differs", "[reproducibility]",
                   StraightThrough<float>, StochasticTimesSmooth<float>, NoisyRectifier<float>,
                   StochasticBinary<float>) {
  const auto first = train<TestType>(2013);
  const auto again = train<TestType>(2013);
  const auto other = train<TestType>(2014);
  REQUIRE(first.size() == again.size());
  CHECK(std::memcmp(first.data(), again.data(), first.size()) == 0);
  REQUIRE(first.size() == other.size());
  CHECK(std::memcmp(first.data(), other.data(), first.size()) != 0);
}

TEST_CASE("Noise drawn by 2 threads is bit-identical to noise drawn by 1, for every sampler",
          "[reproducibility]") {
  using Fill = std::function<void(Generator&, MatrixRef<float>)>;
  const std::vector<std::pair<const char*, Fill>> samplers = {
      {"uniform", [](Generator& g, MatrixRef<float> m) { fill_uniform<float>(g, m); }},
      {"gaussian", [](Generator& g, MatrixRef<float> m) { fill_gaussian<float>(g, m, 2.0f); }},
      {"logistic", [](Generator& g, MatrixRef<float> m) { fill_logistic<float>(g, m); }},
      {"bernoulli", [](Generator& g, MatrixRef<float> m) { fill_bernoulli<float>(g, 0.3f, m); }},
      {"beta", [](Generator& g, MatrixRef<float> m) { fill_beta<float>(g, m, 5.344f, 40.1f); }},
  };
  for (const auto& sampler : samplers) {
    INFO(sampler.first);
    const Fill& fill = sampler.second;  // (clang 14 cannot capture structured bindings)
    // 37 x 41: odd sizes, so that neither half is a whole number of SIMD groups or Philox blocks.
    Generator one(77, 3);
    one.discard(5);
    Matrix<float> serial(37, 41);
    fill(one, serial);

    // Two threads: each takes a copy of the generator moved to where its columns' words start.
    Generator start(77, 3);
    start.discard(5);
    Generator probe = start;
    Matrix<float> scratch(37, 20);
    fill(probe, scratch);
    const std::uint64_t words_first_half = probe.position() - start.position();
    Matrix<float> parallel(37, 41);
    Generator g0 = start, g1 = start;
    g1.discard(words_first_half);
    std::thread t0([&] { fill(g0, parallel.leftCols(20)); });
    std::thread t1([&] { fill(g1, parallel.rightCols(21)); });
    t0.join();
    t1.join();
    CHECK(std::memcmp(serial.data(), parallel.data(), sizeof(float) * static_cast<std::size_t>(serial.size())) == 0);
    CHECK(g1.position() == one.position());  // together they consumed exactly the serial words
  }
}

TEST_CASE("A model's evaluation outputs with 1 and 2 threads agree to floating-point tolerance",
          "[reproducibility]") {
  // Layers own their buffers, so each thread runs its own copy of the model (built from the same seed).
  Generator rng_a(5), rng_b(5), rng_c(5);
  auto serial_model = make_model<StraightThrough<float>>(rng_a);
  auto left_model = make_model<StraightThrough<float>>(rng_b);
  auto right_model = make_model<StraightThrough<float>>(rng_c);
  const Matrix<float> x = inputs(64, 7);

  Context<float> ctx(Mode::eval, rng_a);
  const Matrix<float> serial = serial_model.forward(x, ctx);
  Matrix<float> parallel(serial.rows(), serial.cols());
  std::thread t0([&] {
    Context<float> c(Mode::eval, rng_b);
    parallel.leftCols(32) = left_model.forward(x.leftCols(32), c);
  });
  std::thread t1([&] {
    Context<float> c(Mode::eval, rng_c);
    parallel.rightCols(32) = right_model.forward(x.rightCols(32), c);
  });
  t0.join();
  t1.join();
  REQUIRE(serial.allFinite());
  CHECK((parallel - serial).cwiseAbs().maxCoeff() <= 1e-5f * (1.0f + serial.cwiseAbs().maxCoeff()));
}
