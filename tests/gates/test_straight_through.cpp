// StraightThrough (Sec. 4, Eq. 13): backward returns exactly dL/dh (or dL/dh * sigm'(a)), P(h = 1) = sigm(a)
// (E[sigm(a + noise)] with App. A.2's Beta noise), evaluation h = 1[p > t], reproducibility.
#include <cmath>
#include <cstdio>

#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<StraightThrough<float>> && Gate<StraightThrough<double>>);
static_assert(!skips_in_training<StraightThrough<float>>);  // closed gates learn from dL/dh = dy * H

TEMPLATE_TEST_CASE("straight-through backward returns exactly dL/dh, or dL/dh * sigm'(a) in the variant",
                   "[gates]", float, double) {
  using T = TestType;
  const Matrix<T> a = test::random_matrix<T>(5, 7, 1);
  const Matrix<T> dh = test::random_matrix<T>(5, 7, 2);
  Generator rng(3);
  Context<T> ctx(Mode::train, rng);

  StraightThrough<T> plain(5);
  const Matrix<T> h = plain.forward(a, ctx);
  CHECK(((h.array() == T(0)) || (h.array() == T(1))).all());
  CHECK(plain.backward(dh, ctx) == dh);  // bit for bit, closed gates included

  StraightThrough<T> variant(5, {.sigmoid_derivative = true});
  variant.forward(a, ctx);
  const Matrix<T> da = variant.backward(dh, ctx);
  for (Index k = 0; k < a.size(); ++k) {
    const T p = sigmoid(a.data()[k]);
    CHECK(da.data()[k] == Approx(dh.data()[k] * p * (1 - p)));
  }
}

TEST_CASE("straight-through samples h = 1[u < sigm(a)] (Eq. 3 with the erratum fixed)", "[gates][statistics]") {
  const double a_value = -1.3;
  const Index samples = 100000;
  StraightThrough<double> gate(1);
  Generator rng(4);
  Context<double> ctx(Mode::train, rng);
  const double fired = gate.forward(Matrix<double>::Constant(1, samples, a_value), ctx).mean();
  const double se = std::sqrt(fired * (1 - fired) / (samples - 1));
  std::printf("ST, a = %.1f: P(h=1) %.5f (exact %.5f, se %.5f)\n", a_value, fired, sigmoid(a_value), se);
  CHECK(std::abs(fired - sigmoid(a_value)) < 5 * se);
  CHECK(gate.active_count() == static_cast<Index>(std::lround(fired * samples)));
}

TEST_CASE("straight-through with Beta noise: P(h = 1) = E[sigm(a + k x)], dL/da still dL/dh, eval adds E[noise]",
          "[gates][statistics]") {
  const BetaNoise<double> noise{.beta = 40.1, .target = 0.1};
  const double a_value = 1.5;
  // E_x[sigm(a + k x)], x ~ Beta(alpha, beta), by Simpson's rule on the Beta density.
  const double alpha = noise.alpha(), beta = noise.beta;
  const double log_norm = std::lgamma(alpha + beta) - std::lgamma(alpha) - std::lgamma(beta);
  const int intervals = 20000;
  double exact = 0;
  for (int i = 1; i < intervals; ++i) {  // the density vanishes at both ends (alpha, beta > 1)
    const double x = double(i) / intervals;
    const double density = std::exp(log_norm + (alpha - 1) * std::log(x) + (beta - 1) * std::log1p(-x));
    exact += (i % 2 ? 4.0 : 2.0) * density * sigmoid(a_value + noise.scale() * x);
  }
  exact /= 3.0 * intervals;

  const Index samples = 200000;
  StraightThrough<double> gate(1, {.beta_noise = noise});
  Generator rng(9);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> a = Matrix<double>::Constant(1, samples, a_value);
  const double fired = gate.forward(a, ctx).mean();
  const double se = std::sqrt(fired * (1 - fired) / (samples - 1));
  std::printf("ST with Beta noise, a = %.1f: P(h=1) %.5f (exact %.5f, se %.5f; without noise %.5f)\n", a_value,
              fired, exact, se, sigmoid(a_value));
  CHECK(std::abs(fired - exact) < 5 * se);
  CHECK(std::abs(fired - sigmoid(a_value)) > 20 * se);  // the noise did move it (mean noise -2.58)

  const Matrix<double> dh = test::random_matrix<double>(1, samples, 10);
  CHECK(gate.backward(dh, ctx) == dh);  // Eq. 13 is unchanged: the noise only moves p

  Context<double> eval;
  eval.mode = Mode::eval;
  const Matrix<double> h = gate.forward(a.leftCols(2), eval);
  CHECK(gate.scores()(0, 0) == Approx(sigmoid(a_value + noise.mean())));
  CHECK(h(0, 0) == (sigmoid(a_value + noise.mean()) > 0.5 ? 1.0 : 0.0));

  REQUIRE_THROWS_MESSAGE(StraightThrough<float>(2, {.beta_noise = BetaNoise<float>{.beta = 0.5f}}),
                         "StraightThrough ('straight_through'): beta_noise.beta must be > 1");
  REQUIRE_THROWS_MESSAGE(StraightThrough<float>(2, {.beta_noise = BetaNoise<float>{.target = 1.0f}}),
                         "StraightThrough ('straight_through'): beta_noise.target");
}

TEST_CASE("straight-through KL hook, evaluation, reproducibility", "[gates]") {
  const KlSparsity<double> kl{.target = 0.1, .strength = 1.0};
  StraightThrough<double> gate(4, {.kl = kl}, "st");
  const Matrix<double> a = test::random_matrix<double>(4, 6, 5);
  const Matrix<double> dh = test::random_matrix<double>(4, 6, 6);
  Generator rng(7);
  Context<double> ctx(Mode::train, rng);
  gate.forward(a, ctx);
  Matrix<double> expected = dh;
  kl.add_gradient_wrt_pre_activation(gate.probabilities(), expected);
  CHECK(gate.backward(dh, ctx).isApprox(expected, 1e-14));
  CHECK(gate.sparsity_penalty() == Approx(kl.value(a.array().logistic().matrix())));
  REQUIRE(gate.parameters().size() == 1);
  CHECK(gate.parameters()[0]->name == "st.threshold");

  Context<double> eval;  // no generator
  eval.mode = Mode::eval;
  const Matrix<double> h = gate.forward(a, eval);
  CHECK(h == (a.array().logistic() > 0.5).cast<double>().matrix());
  CHECK(gate.scores().isApprox(a.array().logistic().matrix()));
  CHECK(gate.active_count() == (a.array() > 0).count());

  auto run = [&](std::uint64_t seed, std::optional<BetaNoise<float>> noise = std::nullopt) {
    StraightThrough<float> g(16, {.beta_noise = noise});
    Generator r(seed);
    Context<float> c(Mode::train, r);
    return Matrix<float>(g.forward(test::random_matrix<float>(16, 16, 8), c));
  };
  CHECK(run(1) == run(1));
  CHECK(run(1) != run(2));
  CHECK(run(1, BetaNoise<float>{}) == run(1, BetaNoise<float>{}));  // the noise draws from the same generator
  CHECK(run(1, BetaNoise<float>{}) != run(2, BetaNoise<float>{}));
  REQUIRE_THROWS_MESSAGE(StraightThrough<float>(3, {.kl = KlSparsity<float>{.target = 2.0f}}), "KlSparsity: target");
}

TEST_CASE("deterministic straight-through trains on the evaluation forward, h = 1[p > t], without a draw",
          "[gates]") {
  const KlSparsity<double> kl{.target = 0.1, .strength = 0.5};
  const BetaNoise<double> noise{.beta = 40.1, .target = 0.1};
  for (const bool with_noise : {false, true}) {
    StraightThroughOptions<double> options{.kl = kl, .deterministic = true};
    if (with_noise) options.beta_noise = noise;
    StraightThrough<double> gate(6, options, "st");
    gate.set_threshold(0.3);
    const Matrix<double> a = test::random_matrix<double>(6, 9, 11);
    const Matrix<double> dh = test::random_matrix<double>(6, 9, 12);

    Context<double> eval;
    eval.mode = Mode::eval;
    const Matrix<double> h_eval = gate.forward(a, eval);
    const Index open = (h_eval.array() != 0).count();
    CHECK(open > 0);
    CHECK(open < a.size());  // t = 0.3 splits these scores: the test sees both sides

    Generator rng(13);
    const Generator untouched = rng;
    Context<double> ctx(Mode::train, rng);
    CHECK(gate.forward(a, ctx) == h_eval);
    CHECK(rng == untouched);  // nothing drawn (Beta noise replaced by its mean)
    const Matrix<double> p = (a.array() + gate.noise_mean()).logistic().matrix();
    CHECK(gate.probabilities().isApprox(p, 1e-15));
    Matrix<double> expected = dh;
    kl.add_gradient_wrt_pre_activation(p, expected);
    CHECK(gate.backward(dh, ctx).isApprox(expected, 1e-14));  // Eq. 13 and Eq. 14's gradient, as when sampling

    gate.set_deterministic(false);  // back to sampling: the generator moves, h ~ Bernoulli(p)
    gate.forward(a, ctx);
    CHECK(!(rng == untouched));
  }
}

TEST_CASE("a gater chain ending in a straight-through gate is a gate and passes dL/dh straight through", "[gates]") {
  Generator init(1);
  auto gater = Sequential(Linear<double>(3, 4, init), StraightThrough<double>(4));
  static_assert(Gate<decltype(gater)> && decltype(gater)::closed_gate_needs_gradient);
  Generator rng(2);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> x = test::random_matrix<double>(3, 5, 3);
  const Matrix<double> dh = test::random_matrix<double>(4, 5, 4);
  gater.forward(x, ctx);
  const Matrix<double> dx = gater.backward(dh, ctx);
  CHECK(dx.isApprox(gater.get<0>().weight().value.transpose() * dh));
  CHECK(gater.parameters().size() == 3);  // W, b, threshold
}
