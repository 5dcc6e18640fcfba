// NoisyRectifier (Sec. 2.1): Proposition 1 by Monte Carlo, backward = indicator, firing-rate mechanism,
// adaptive L1 hook, evaluation mode, reproducibility, option checks.
#include <cmath>
#include <cstdio>
#include <numbers>

#include "stoch/gates/noisy_rectifier.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<NoisyRectifier<float>> && Gate<NoisyRectifier<double>>);
static_assert(skips_in_training<NoisyRectifier<float>>);

namespace {

/// Mean and standard error of the mean of each row of `x`.
struct RowStats {
  Vector<double> mean, standard_error;
};
RowStats row_stats(const Matrix<double>& x) {
  const double n = static_cast<double>(x.cols());
  RowStats s;
  s.mean = x.rowwise().mean();
  const Vector<double> mean_square = x.array().square().rowwise().mean();
  s.standard_error = ((mean_square.array() - s.mean.array().square()) * n / (n - 1) / n).sqrt();
  return s;
}

}  // namespace

TEST_CASE("Proposition 1: logistic noisy rectifier has P(h > 0) = sigm(a), E[h] = softplus(a)",
          "[gates][statistics]") {
  const std::vector<double> a_values{-3.0, -1.0, 0.0, 0.5, 2.0};
  const Index units = static_cast<Index>(a_values.size()), samples = 200000;
  Matrix<double> a(units, samples);
  for (Index i = 0; i < units; ++i) a.row(i).setConstant(a_values[static_cast<std::size_t>(i)]);

  NoisyRectifier<double> gate(units, {.noise = RectifierNoise::logistic, .noise_scale = 1.0});
  Generator rng(2013);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  const RowStats fired = row_stats((h.array() > 0.0).cast<double>().matrix());
  const RowStats value = row_stats(h);
  for (Index i = 0; i < units; ++i) {
    const double ai = a_values[static_cast<std::size_t>(i)];
    std::printf("Prop. 1, a = %+.1f: P(h>0) %.5f (exact %.5f, se %.5f); E[h] %.5f (exact %.5f, se %.5f)\n", ai,
                fired.mean[i], sigmoid(ai), fired.standard_error[i], value.mean[i], softplus(ai),
                value.standard_error[i]);
    CHECK(std::abs(fired.mean[i] - sigmoid(ai)) < 5 * fired.standard_error[i]);
    CHECK(std::abs(value.mean[i] - softplus(ai)) < 5 * value.standard_error[i]);
  }
}

TEST_CASE("Gaussian noisy rectifier: P(h > 0) = Phi(a / sigma)", "[gates][statistics]") {
  const double sigma = 1.5, a_value = -0.7;
  Matrix<double> a = Matrix<double>::Constant(1, 100000, a_value);
  NoisyRectifier<double> gate(1, {.noise_scale = sigma});
  Generator rng(5);
  Context<double> ctx(Mode::train, rng);
  const RowStats fired = row_stats((gate.forward(a, ctx).array() > 0.0).cast<double>().matrix());
  const double exact = 0.5 * std::erfc(-a_value / sigma / std::numbers::sqrt2);
  std::printf("Gaussian NR, a = %.1f, sigma = %.1f: P(h>0) %.5f (exact %.5f, se %.5f)\n", a_value, sigma,
              fired.mean[0], exact, fired.standard_error[0]);
  CHECK(std::abs(fired.mean[0] - exact) < 5 * fired.standard_error[0]);
}

TEMPLATE_TEST_CASE("noisy rectifier backward is dL/dh times the indicator 1[a + c + z > 0]", "[gates]", float,
                   double) {
  using T = TestType;
  NoisyRectifier<T> gate(6);
  const Matrix<T> a = test::random_matrix<T>(6, 9, 1);
  const Matrix<T> dh = test::random_matrix<T>(6, 9, 2);
  Generator rng(3);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> h = gate.forward(a, ctx);
  // Reconstruct z from the same words: a + z is what was rectified (the offset is 0).
  Generator replay(3);
  Matrix<T> z(6, 9);
  fill_gaussian<T>(replay, z, T(1));
  const Matrix<T> x = a + z;
  CHECK((h.array() == x.array().max(T(0))).all());
  const Matrix<T> da = gate.backward(dh, ctx);
  Index open = 0;
  for (Index k = 0; k < da.size(); ++k) {
    CHECK(da.data()[k] == (x.data()[k] > 0 ? dh.data()[k] : T(0)));
    open += x.data()[k] > 0;
  }
  CHECK(open > 0);
  CHECK(open < da.size());
  CHECK(gate.active_count() == open);
}

TEST_CASE("noisy rectifier backward matches central differences with frozen noise", "[gates]") {
  NoisyRectifier<double> gate(5, {.noise_scale = 0.5});
  const auto result = test::check_gradients(gate, test::random_matrix<double>(5, 4, 11));
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
}

TEST_CASE("firing-rate mechanism raises a dead unit's offset until it fires", "[gates]") {
  // Unit 0 is dead (a = -6, noise std 1: P(fire) ~ 1e-9); unit 1 fires almost always (a = +6).
  const FiringRateControl<double> control{.target = 0.1, .average_rate = 0.1, .step = 0.05};
  NoisyRectifier<double> gate(2, {.firing_rate = control});
  Matrix<double> a(2, 50);
  a.row(0).setConstant(-6.0);
  a.row(1).setConstant(6.0);
  Generator rng(17);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> zero = Matrix<double>::Zero(2, 50);
  double rate_late = 0;
  for (int step = 0; step < 400; ++step) {
    const Matrix<double>& h = gate.forward(a, ctx);
    if (step >= 300) rate_late += (h.row(0).array() > 0).cast<double>().mean() / 100;
    gate.backward(zero, ctx);
  }
  // The offset rose from 0 to where unit 0 fires about `target` of the time: c ~ 6 - Phi^-1(0.9) = 4.7.
  CHECK(gate.offset()(0, 0) > 4.0);
  CHECK(rate_late > 0.05);
  CHECK(rate_late < 0.3);
  CHECK(gate.offset()(1, 0) == 0.0);  // one-sided: a busy unit is left alone

  NoisyRectifier<double> two_sided(2, {.firing_rate = FiringRateControl<double>{.two_sided = true}});
  two_sided.forward(a, ctx);
  two_sided.backward(zero, ctx);
  CHECK(two_sided.offset()(0, 0) > 0.0);
  CHECK(two_sided.offset()(1, 0) < 0.0);  // fired above target: pushed down
}

TEST_CASE("noisy rectifier L1 hook adds lambda sign(h) / B before masking and adapts lambda", "[gates]") {
  NoisyRectifier<double> gate(4, {.l1 = AdaptiveL1<double>(0.1, 0.5, 2.0)}, "gater");
  const Matrix<double> a = test::random_matrix<double>(4, 8, 5);
  const Matrix<double> dh = test::random_matrix<double>(4, 8, 6);
  Generator rng(8);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  CHECK(gate.sparsity_penalty() == Approx(0.5 * h.sum() / 8));
  const Matrix<double> da = gate.backward(dh, ctx);
  for (Index k = 0; k < da.size(); ++k)
    CHECK(da.data()[k] == Approx(h.data()[k] > 0 ? dh.data()[k] + 0.5 / 8 : 0.0));
  // Density of N(a, 1) noise on N(0, 1) inputs is ~0.5 > 0.1 + 0.01: lambda doubled.
  CHECK(gate.l1()->lambda() == 1.0);
  const ParameterList<double> params = gate.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[3]->name == "gater.l1.lambda");
  CHECK(params[0]->name == "gater.offset");
  for (const Parameter<double>* p : params) CHECK_FALSE(p->trainable);
}

TEST_CASE("noisy rectifier evaluation: max(0, a + c) without noise, thresholded at t", "[gates]") {
  NoisyRectifier<float> gate(3, {.noise_scale = 0.0f});
  const Matrix<float> a = test::random_matrix<float>(3, 7, 9);
  Context<float> ctx(Mode::eval);  // no generator
  const Matrix<float> first = gate.forward(a, ctx);
  CHECK(first == a.array().max(0.0f).matrix());
  CHECK(gate.scores() == a);
  CHECK(gate.forward(a, ctx) == first);
  REQUIRE_THROWS_MESSAGE(gate.backward(a, ctx), "Mode::train");
  gate.set_threshold(0.5f);
  const Matrix<float> cut = gate.forward(a, ctx);
  for (Index k = 0; k < a.size(); ++k) CHECK(cut.data()[k] == (a.data()[k] > 0.5f ? a.data()[k] : 0.0f));
  gate.set_threshold(-0.5f);  // a negative threshold never gives a negative output
  CHECK(gate.forward(a, ctx).minCoeff() >= 0.0f);
}

TEST_CASE("noisy rectifier evaluation outputs the expected training output of open units", "[gates]") {
  // E[max(0, a + z)] by Monte Carlo, z ~ N(0, 1.5^2) and logistic (scale 1: softplus, Proposition 1(b)).
  const Matrix<double> a = (Matrix<double>(3, 1) << -1.0, 0.2, 1.5).finished();
  for (const RectifierNoise noise : {RectifierNoise::gaussian, RectifierNoise::logistic}) {
    const double scale = noise == RectifierNoise::gaussian ? 1.5 : 1.0;
    NoisyRectifier<double> gate(3, {.noise = noise, .noise_scale = scale});
    gate.set_threshold(-10.0);
    Context<double> eval(Mode::eval);
    const Matrix<double> expected = gate.forward(a, eval);
    if (noise == RectifierNoise::logistic)
      for (Index i = 0; i < 3; ++i) CHECK(expected(i, 0) == Approx(softplus(a(i, 0))).epsilon(1e-12));
    const Index n = 200000;
    Generator rng(17);
    Context<double> train(Mode::train, rng);
    Matrix<double> sum = Matrix<double>::Zero(3, 1), sum_sq = Matrix<double>::Zero(3, 1);
    const Matrix<double> batch = a.replicate(1, 1000);
    for (Index k = 0; k < n / 1000; ++k) {
      const Matrix<double>& h = gate.forward(batch, train);
      sum += h.rowwise().sum();
      sum_sq += h.array().square().matrix().rowwise().sum();
    }
    for (Index i = 0; i < 3; ++i) {
      const double mean = sum(i, 0) / n, se = std::sqrt((sum_sq(i, 0) / n - mean * mean) / n);
      INFO("unit " << i << " estimate " << mean << " exact " << expected(i, 0) << " se " << se);
      CHECK(std::abs(mean - expected(i, 0)) < 5 * se);
    }
  }
}

TEST_CASE("noisy rectifier: same seed same output, other seed other output; zero noise needs no generator",
          "[gates]") {
  const Matrix<float> a = test::random_matrix<float>(10, 10, 4);
  auto run = [&](std::uint64_t seed) {
    NoisyRectifier<float> gate(10, {.noise = RectifierNoise::logistic});
    Generator rng(seed);
    Context<float> ctx(Mode::train, rng);
    return Matrix<float>(gate.forward(a, ctx));
  };
  CHECK(run(1) == run(1));
  CHECK(run(1) != run(2));

  NoisyRectifier<float> baseline(10, {.noise_scale = 0.0f});  // the paper's Baseline Rectifier
  Context<float> no_rng;  // Mode::train, no generator: must not be asked for one
  CHECK(baseline.forward(a, no_rng) == a.array().max(0.0f).matrix());
}

TEST_CASE("noisy rectifier options outside their domain throw naming the option", "[gates]") {
  REQUIRE_THROWS_MESSAGE(NoisyRectifier<float>(3, {.noise_scale = -1.0f}), "noise_scale");
  REQUIRE_THROWS_MESSAGE(
      NoisyRectifier<float>(3, {.firing_rate = FiringRateControl<float>{.target = 1.5f}}), "firing_rate.target");
  REQUIRE_THROWS_MESSAGE(NoisyRectifier<float>(3, {.firing_rate = FiringRateControl<float>{.average_rate = 0.0f}}),
                         "firing_rate.average_rate");
  REQUIRE_THROWS_MESSAGE(NoisyRectifier<float>(3, {.firing_rate = FiringRateControl<float>{.step = 0.0f}}),
                         "firing_rate.step");
  REQUIRE_THROWS_MESSAGE(NoisyRectifier<float>(0), "unit count");
  NoisyRectifier<float> gate(3);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<float>::Zero(4, 2), ctx), "shape mismatch");
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<float>::Zero(3, 2), ctx), "generator");
  REQUIRE_THROWS_MESSAGE(gate.set_threshold(std::nanf("")), "threshold");
}
