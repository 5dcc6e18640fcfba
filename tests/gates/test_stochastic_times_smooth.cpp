// StochasticTimesSmooth (Sec. 2.2, Eq. 2): Proposition 2 by Monte Carlo, backward against the formula and
// central differences, Beta noise (App. A.2), KL hook, evaluation mode, reproducibility, option checks.
#include <cmath>
#include <cstdio>

#include "stoch/gates/stochastic_times_smooth.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<StochasticTimesSmooth<float>> && Gate<StochasticTimesSmooth<double>>);
static_assert(skips_in_training<StochasticTimesSmooth<double>>);

TEST_CASE("Proposition 2: STS has E[h] = p and P(h > 0) = sqrt(p)", "[gates][statistics]") {
  const std::vector<double> a_values{-4.0, -2.0, 0.0, 1.5};
  const Index units = static_cast<Index>(a_values.size()), samples = 200000;
  Matrix<double> a(units, samples);
  for (Index i = 0; i < units; ++i) a.row(i).setConstant(a_values[static_cast<std::size_t>(i)]);
  StochasticTimesSmooth<double> gate(units);
  Generator rng(22);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  const double n = static_cast<double>(samples);
  for (Index i = 0; i < units; ++i) {
    const double p = sigmoid(a_values[static_cast<std::size_t>(i)]);
    const double mean = h.row(i).mean();
    const double se_mean = std::sqrt((h.row(i).array().square().mean() - mean * mean) / (n - 1));
    const double fired = (h.row(i).array() > 0).cast<double>().mean();
    const double se_fired = std::sqrt(fired * (1 - fired) / (n - 1));
    std::printf("Prop. 2, p = %.4f: E[h] %.5f (exact %.5f, se %.5f); P(h>0) %.5f (exact %.5f, se %.5f)\n", p,
                mean, p, se_mean, fired, std::sqrt(p), se_fired);
    CHECK(std::abs(mean - p) < 5 * se_mean);
    CHECK(std::abs(fired - std::sqrt(p)) < 5 * se_fired);
  }
}

TEMPLATE_TEST_CASE("STS backward equals dL/dh * b sqrt(p) (1 - p) / 2", "[gates]", float, double) {
  using T = TestType;
  StochasticTimesSmooth<T> gate(7);
  const Matrix<T> a = test::random_matrix<T>(7, 13, 3);
  const Matrix<T> dh = test::random_matrix<T>(7, 13, 4);
  Generator rng(9);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> h = gate.forward(a, ctx);
  const Matrix<T> da = gate.backward(dh, ctx);
  Index open = 0;
  for (Index k = 0; k < a.size(); ++k) {
    const T p = sigmoid(a.data()[k]);
    const T b = h.data()[k] > 0 ? T(1) : T(0);
    open += h.data()[k] > 0;
    CHECK(h.data()[k] == Approx(b * std::sqrt(p)));
    CHECK(da.data()[k] == Approx(dh.data()[k] * b * std::sqrt(p) * (1 - p) / 2));
  }
  CHECK(open > 0);
  CHECK(open < a.size());
}

TEST_CASE("STS backward matches central differences with b frozen, also with Beta noise", "[gates]") {
  StochasticTimesSmooth<double> plain(5);
  auto result = test::check_gradients(plain, test::random_matrix<double>(5, 6, 21));
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
  StochasticTimesSmooth<double> noisy(5, {.beta_noise = BetaNoise<double>{.beta = 10.1, .target = 0.2}});
  result = test::check_gradients(noisy, test::random_matrix<double>(5, 6, 22, 3.0));
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
}

// BetaNoise's own formulas (mode, scale, mean) are checked in test_binary_gate.cpp, beside its header.
TEST_CASE("STS with Beta noise: the training noise has the Beta's mean, evaluation adds that mean",
          "[gates][statistics]") {
  const BetaNoise<double> noise{.beta = 40.1, .target = 0.1};

  // Training noise: logit(p) - a = k x, x ~ Beta(alpha, beta); its mean is k alpha / (alpha + beta).
  const Index samples = 100000;
  StochasticTimesSmooth<double> gate(1, {.beta_noise = noise});
  const Matrix<double> a = Matrix<double>::Constant(1, samples, 0.3);
  Generator rng(31);
  Context<double> ctx(Mode::train, rng);
  gate.forward(a, ctx);
  const Matrix<double>& p = gate.probabilities();
  const Eigen::ArrayXd z = (p.array().log() - (1 - p.array()).log()).transpose() - 0.3;
  const double mean = z.mean();
  const double se = std::sqrt((z.square().mean() - mean * mean) / (samples - 1));
  std::printf("Beta noise (beta 40.1, s 0.1): mean %.5f (exact %.5f, se %.5f)\n", mean, noise.mean(), se);
  CHECK(std::abs(mean - noise.mean()) < 5 * se);

  Context<double> eval;
  eval.mode = Mode::eval;
  const Matrix<double> h = gate.forward(a.leftCols(3), eval);
  const double score = std::sqrt(sigmoid(0.3 + noise.mean()));
  CHECK(gate.scores()(0, 0) == Approx(score));
  CHECK(h(0, 0) == (score > 0.5 ? score : 0.0));
}

TEST_CASE("STS KL hook adds the penalty's gradient on p", "[gates]") {
  const KlSparsity<double> kl{.target = 0.1, .strength = 2.0};
  StochasticTimesSmooth<double> with(4, {.kl = kl}), without(4);
  const Matrix<double> a = test::random_matrix<double>(4, 6, 41);
  const Matrix<double> dh = test::random_matrix<double>(4, 6, 42);
  Generator rng1(1), rng2(1);
  Context<double> c1(Mode::train, rng1), c2(Mode::train, rng2);
  with.forward(a, c1);
  without.forward(a, c2);
  Matrix<double> expected = without.backward(dh, c2);
  kl.add_gradient_wrt_pre_activation(without.probabilities(), expected);
  CHECK(with.backward(dh, c1).isApprox(expected, 1e-14));
  CHECK(with.sparsity_penalty() == Approx(kl.value(without.probabilities())));
  CHECK(without.sparsity_penalty() == 0.0);
}

TEST_CASE("STS evaluation is deterministic sqrt(p) 1[sqrt(p) > t]; seeds reproduce", "[gates]") {
  StochasticTimesSmooth<float> gate(8);
  const Matrix<float> a = test::random_matrix<float>(8, 5, 51, 2.0f);
  Context<float> eval;
  eval.mode = Mode::eval;
  const Matrix<float> h = gate.forward(a, eval);
  CHECK(gate.forward(a, eval) == h);
  for (Index k = 0; k < a.size(); ++k) {
    const float s = std::sqrt(sigmoid(a.data()[k]));
    CHECK(gate.scores().data()[k] == Approx(s));
    CHECK(h.data()[k] == (gate.scores().data()[k] > 0.5f ? gate.scores().data()[k] : 0.0f));
  }
  CHECK(gate.threshold() == 0.5f);

  auto run = [&](std::uint64_t seed) {
    StochasticTimesSmooth<float> g(8, {.beta_noise = BetaNoise<float>{}});
    Generator rng(seed);
    Context<float> ctx(Mode::train, rng);
    return Matrix<float>(g.forward(a, ctx));
  };
  CHECK(run(3) == run(3));
  CHECK(run(3) != run(4));
}

TEST_CASE("STS options outside their domain throw naming the option", "[gates]") {
  REQUIRE_THROWS_MESSAGE(StochasticTimesSmooth<float>(2, {.beta_noise = BetaNoise<float>{.beta = 1.0f}}),
                         "beta_noise.beta");
  REQUIRE_THROWS_MESSAGE(StochasticTimesSmooth<float>(2, {.beta_noise = BetaNoise<float>{.target = 0.0f}}),
                         "beta_noise.target");
  REQUIRE_THROWS_MESSAGE(StochasticTimesSmooth<float>(2, {.kl = KlSparsity<float>{.target = 1.0f}}),
                         "KlSparsity: target");
  REQUIRE_THROWS_MESSAGE(StochasticTimesSmooth<float>(2, {.kl = KlSparsity<float>{.strength = -1.0f}}),
                         "KlSparsity: strength");
}
