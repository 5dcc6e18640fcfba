// NoisySigmoid (the sigmoid baselines of Sec. 5): backward by central differences with frozen noise, the noise
// statistics, evaluation = sigm(a), option checks.
#include <cmath>
#include <cstdio>

#include "stoch/gates/noisy_sigmoid.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<NoisySigmoid<float>> && Gate<NoisySigmoid<double>>);
static_assert(!skips_in_training<NoisySigmoid<double>>);

TEST_CASE("noisy sigmoid backward matches central differences with frozen noise", "[gates]") {
  for (const double std_dev : {0.0, 0.8}) {
    NoisySigmoid<double> gate(6, {.noise_std = std_dev});
    const auto result = test::check_gradients(gate, test::random_matrix<double>(6, 5, 3));
    CHECK(result.finite);
    CHECK(result.max_input_error < 1e-8);
  }
}

TEST_CASE("noisy sigmoid: training adds N(0, std^2) before the sigmoid, evaluation does not", "[gates][statistics]") {
  const Index samples = 100000;
  const double std_dev = 0.8;
  NoisySigmoid<double> gate(1, {.noise_std = std_dev});
  const Matrix<double> a = Matrix<double>::Constant(1, samples, 0.4);
  Generator rng(12);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  const Eigen::ArrayXd z = (h.array().log() - (1 - h.array()).log()).transpose() - 0.4;
  const double mean = z.mean(), variance = (z - mean).square().sum() / (samples - 1);
  const double se_variance = std::sqrt(((z - mean).square().square().mean() - variance * variance) / samples);
  std::printf("noisy sigmoid: noise mean %.5f (exact 0, se %.5f), variance %.5f (exact %.5f, se %.5f)\n", mean,
              std::sqrt(variance / samples), variance, std_dev * std_dev, se_variance);
  CHECK(std::abs(mean) < 5 * std::sqrt(variance / samples));
  CHECK(std::abs(variance - std_dev * std_dev) < 5 * se_variance);

  Context<float> eval;
  eval.mode = Mode::eval;
  NoisySigmoid<float> f(3, {.noise_std = 1.0f});
  const Matrix<float> x = test::random_matrix<float>(3, 4, 13);
  CHECK(f.forward(x, eval) == x.array().logistic().matrix());
  REQUIRE_THROWS_MESSAGE(NoisySigmoid<float>(3, {.noise_std = -0.1f}), "noise_std");
}
