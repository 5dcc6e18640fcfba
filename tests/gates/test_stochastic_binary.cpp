// StochasticBinary (Sec. 3): Theorem 1 and Corollary 1 on a 3-unit network whose expected loss is computed
// exactly by enumerating its 2^3 binary states; the estimator's formula; evaluation; option checks.
#include <array>
#include <cmath>
#include <cstdio>

#include "stoch/gates/stochastic_binary.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<StochasticBinary<float>> && Gate<StochasticBinary<double>>);
static_assert(!StochasticBinary<float>::needs_output_gradient && skips_in_training<StochasticBinary<float>>);

namespace {

constexpr int kUnits = 3;
const std::array<double, kUnits> kPreActivation{-2.0, -0.5, 1.2};

/// A loss that depends non-linearly on the binary vector (interactions between units).
double tiny_loss(const double* h) {
  return 1.0 + 4.0 * h[0] + 3.0 * (h[1] - h[2]) * (h[1] - h[2]) + 2.0 * h[0] * h[1] * h[2] + h[0] * h[2];
}

/// Exact expectations over the 2^3 states of h ~ Bernoulli(sigm(a)), independent units.
struct Exact {
  double expected_loss = 0;
  std::array<double, kUnits> gradient{}, eq10{}, weight{}, weighted_loss{};
  /// Var[(h_i - p_i)(L - c)] for a constant c.
  double variance(int i, double c, const std::array<double, kUnits>& a) const {
    double second_moment = 0;
    for_each_state(a, [&](const double* h, double probability, const std::array<double, kUnits>& p) {
      const double centred = (h[i] - p[static_cast<std::size_t>(i)]) * (tiny_loss(h) - c);
      second_moment += probability * centred * centred;
    });
    return second_moment - gradient[static_cast<std::size_t>(i)] * gradient[static_cast<std::size_t>(i)];
  }
  template <class F>
  static void for_each_state(const std::array<double, kUnits>& a, F f) {
    std::array<double, kUnits> p{};
    for (int i = 0; i < kUnits; ++i) p[static_cast<std::size_t>(i)] = sigmoid(a[static_cast<std::size_t>(i)]);
    for (int state = 0; state < (1 << kUnits); ++state) {
      double h[kUnits], probability = 1;
      for (int i = 0; i < kUnits; ++i) {
        h[i] = (state >> i) & 1;
        probability *= h[i] > 0 ? p[static_cast<std::size_t>(i)] : 1 - p[static_cast<std::size_t>(i)];
      }
      f(h, probability, p);
    }
  }
  static double expected(const std::array<double, kUnits>& a) {
    double sum = 0;
    for_each_state(a, [&](const double* h, double probability, const auto&) { sum += probability * tiny_loss(h); });
    return sum;
  }
};

Exact exact_at(const std::array<double, kUnits>& a) {
  Exact e;
  e.expected_loss = Exact::expected(a);
  // The gradient of the exactly enumerated expected loss, by central differences (independent of Theorem 1).
  for (int i = 0; i < kUnits; ++i) {
    auto up = a, down = a;
    const double eps = 1e-5;
    up[static_cast<std::size_t>(i)] += eps;
    down[static_cast<std::size_t>(i)] -= eps;
    e.gradient[static_cast<std::size_t>(i)] = (Exact::expected(up) - Exact::expected(down)) / (2 * eps);
  }
  Exact::for_each_state(a, [&](const double* h, double probability, const std::array<double, kUnits>& p) {
    for (std::size_t i = 0; i < kUnits; ++i) {
      const double w = (h[i] - p[i]) * (h[i] - p[i]);
      e.weight[i] += probability * w;
      e.weighted_loss[i] += probability * w * tiny_loss(h);
    }
  });
  for (std::size_t i = 0; i < kUnits; ++i) e.eq10[i] = e.weighted_loss[i] / e.weight[i];
  return e;
}

/// One training step of the tiny network: forward, per-example loss from h, backward. Returns B * dL/da,
/// i.e. one draw of the per-example estimator per column.
Matrix<double> step(StochasticBinary<double>& gate, Context<double>& ctx, Index batch) {
  Matrix<double> a(kUnits, batch);
  for (int i = 0; i < kUnits; ++i) a.row(i).setConstant(kPreActivation[static_cast<std::size_t>(i)]);
  const Matrix<double>& h = gate.forward(a, ctx);
  ctx.example_loss.resize(batch);
  for (Index j = 0; j < batch; ++j) ctx.example_loss[j] = tiny_loss(h.col(j).data());
  return gate.backward(Matrix<double>(), ctx) * static_cast<double>(batch);
}

struct Moments {
  Eigen::Array3d sum = Eigen::Array3d::Zero(), sum_square = Eigen::Array3d::Zero();
  double n = 0;
  void add(const Matrix<double>& g) {
    sum += g.rowwise().sum().array();
    sum_square += g.array().square().rowwise().sum();
    n += static_cast<double>(g.cols());
  }
  Eigen::Array3d mean() const { return sum / n; }
  Eigen::Array3d standard_error() const { return ((sum_square / n - mean().square()) / (n - 1)).sqrt(); }
};

}  // namespace

TEST_CASE("Theorem 1 / Corollary 1: the SBN estimator is unbiased, with no and with a constant baseline",
          "[gates][statistics]") {
  const Exact exact = exact_at(kPreActivation);
  for (const auto& [kind, name] : {std::pair{SbnBaseline::none, "none"}, std::pair{SbnBaseline::constant, "constant 3"}}) {
    StochasticBinary<double> gate(kUnits, {.baseline = kind, .constant_baseline = 3.0});
    Generator rng(kind == SbnBaseline::none ? 101 : 102);
    Context<double> ctx(Mode::train, rng);
    Moments m;
    for (int batch = 0; batch < 100; ++batch) m.add(step(gate, ctx, 2000));
    for (int i = 0; i < kUnits; ++i) {
      std::printf("Theorem 1, baseline %s, unit %d: estimate %.5f (exact %.5f, se %.5f)\n", name, i, m.mean()[i],
                  exact.gradient[static_cast<std::size_t>(i)], m.standard_error()[i]);
      CHECK(std::abs(m.mean()[i] - exact.gradient[static_cast<std::size_t>(i)]) < 5 * m.standard_error()[i]);
    }
  }
  // The exact gradient itself agrees with Eq. 5: p (1 - p) (E[L | h_i = 1] - E[L | h_i = 0]); for unit 0,
  // E[L | h_0 = 1] - E[L | h_0 = 0] = 4 + 2 p_1 p_2 + p_2.
  const double p0 = sigmoid(kPreActivation[0]), p1 = sigmoid(kPreActivation[1]), p2 = sigmoid(kPreActivation[2]);
  CHECK(exact.gradient[0] == Approx(p0 * (1 - p0) * (4 + 2 * p1 * p2 + p2)).epsilon(1e-8));
}

TEST_CASE("Corollary 1: the minimum-variance baseline converges to Eq. 10 and has the lowest variance",
          "[gates][statistics]") {
  const Exact exact = exact_at(kPreActivation);
  const double rate = 0.02;
  // Same seed for the three layers: identical samples h, so the estimators are compared pairwise.
  StochasticBinary<double> none(kUnits, {.baseline = SbnBaseline::none});
  StochasticBinary<double> average(kUnits, {.baseline = SbnBaseline::moving_average, .average_rate = rate});
  StochasticBinary<double> best(kUnits, {.baseline = SbnBaseline::minimum_variance, .average_rate = rate});
  Generator rng_none(7), rng_average(7), rng_best(7);
  Context<double> ctx_none(Mode::train, rng_none), ctx_average(Mode::train, rng_average),
      ctx_best(Mode::train, rng_best);
  const Index batch = 200;
  for (int warm = 0; warm < 500; ++warm) {  // 25 time constants of the moving averages
    step(none, ctx_none, batch);
    step(average, ctx_average, batch);
    step(best, ctx_best, batch);
  }
  Moments versus_none, versus_average;  // per-sample g_none^2 - g_best^2 and g_average^2 - g_best^2
  Moments g_none, g_average, g_best;
  Eigen::Array3d baseline_sum = Eigen::Array3d::Zero(), baseline_square = Eigen::Array3d::Zero();
  double average_sum = 0, average_square = 0;
  const int batches = 500;
  for (int b = 0; b < batches; ++b) {
    const Matrix<double> e_none = step(none, ctx_none, batch);
    const Matrix<double> e_average = step(average, ctx_average, batch);
    const Matrix<double> e_best = step(best, ctx_best, batch);
    REQUIRE(ctx_none.example_loss == ctx_best.example_loss);  // paired: same samples
    versus_none.add((e_none.array().square() - e_best.array().square()).matrix());
    versus_average.add((e_average.array().square() - e_best.array().square()).matrix());
    g_none.add(e_none);
    g_average.add(e_average);
    g_best.add(e_best);
    for (int i = 0; i < kUnits; ++i) {
      baseline_sum[i] += best.baseline(i);
      baseline_square[i] += best.baseline(i) * best.baseline(i);
    }
    average_sum += average.baseline(0);
    average_square += average.baseline(0) * average.baseline(0);
  }
  const double n = batches;
  for (int i = 0; i < kUnits; ++i) {
    const auto u = static_cast<std::size_t>(i);
    // Convergence: the last estimate of Eq. 10 lies within 5 of its own standard deviations (measured over
    // the last `batches` batches) of the exact value, and that spread is small.
    const double spread = std::sqrt(std::max(0.0, baseline_square[i] / n - std::pow(baseline_sum[i] / n, 2)));
    std::printf("Corollary 1, unit %d: Eq. 10 baseline %.5f (exact %.5f, sd over batches %.5f); global mean-loss "
                "baseline exact %.5f\n",
                i, best.baseline(i), exact.eq10[u], spread, exact.expected_loss);
    CHECK(std::abs(best.baseline(i) - exact.eq10[u]) < 5 * spread);
    CHECK(spread < 0.02 * std::abs(exact.eq10[u]));

    // Variance: paired differences of squared estimates (the means are equal, so these are variance gaps).
    const double var_none = exact.variance(i, 0.0, kPreActivation);
    const double var_average = exact.variance(i, exact.expected_loss, kPreActivation);
    const double var_best = exact.variance(i, exact.eq10[u], kPreActivation);
    std::printf("  variance: none %.5f (exact %.5f), moving average %.5f (exact %.5f), minimum %.5f (exact %.5f); "
                "gap vs none %.5f (se %.5f), vs average %.5f (se %.5f)\n",
                g_none.standard_error()[i] * g_none.standard_error()[i] * (g_none.n - 1), var_none,
                g_average.standard_error()[i] * g_average.standard_error()[i] * (g_average.n - 1), var_average,
                g_best.standard_error()[i] * g_best.standard_error()[i] * (g_best.n - 1), var_best,
                versus_none.mean()[i], versus_none.standard_error()[i], versus_average.mean()[i],
                versus_average.standard_error()[i]);
    CHECK(var_best < var_average);
    CHECK(var_average < var_none);
    CHECK(versus_none.mean()[i] > 5 * versus_none.standard_error()[i]);
    CHECK(versus_average.mean()[i] > 5 * versus_average.standard_error()[i]);
    // And the measured gaps agree with the exact ones.
    CHECK(std::abs(versus_none.mean()[i] - (var_none - var_best)) < 5 * versus_none.standard_error()[i]);
    CHECK(std::abs(versus_average.mean()[i] - (var_average - var_best)) < 5 * versus_average.standard_error()[i]);
    // All three stay unbiased.
    CHECK(std::abs(g_best.mean()[i] - exact.gradient[u]) < 5 * g_best.standard_error()[i]);
  }
  const double average_spread = std::sqrt(std::max(0.0, average_square / n - std::pow(average_sum / n, 2)));
  std::printf("moving-average baseline %.5f (exact E[L] %.5f, sd over batches %.5f)\n", average.baseline(0),
              exact.expected_loss, average_spread);
  CHECK(std::abs(average.baseline(0) - exact.expected_loss) < 5 * average_spread);
}

TEMPLATE_TEST_CASE("SBN backward is (h - p)(L - Lbar) / B, ignores dL/dh, and needs the per-example loss",
                   "[gates]", float, double) {
  using T = TestType;
  StochasticBinary<T> gate(4, {.baseline = SbnBaseline::constant, .constant_baseline = T(0.7)});
  const Matrix<T> a = test::random_matrix<T>(4, 6, 61);
  Generator rng(5);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> h = gate.forward(a, ctx);
  CHECK(((h.array() == T(0)) || (h.array() == T(1))).all());
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<T>(), ctx), "example_loss");
  ctx.example_loss = test::random_matrix<T>(1, 6, 62);
  const Matrix<T> da = gate.backward(Matrix<T>(), ctx);
  for (Index j = 0; j < 6; ++j)
    for (Index i = 0; i < 4; ++i)
      CHECK(da(i, j) == Approx((h(i, j) - sigmoid(a(i, j))) * (ctx.example_loss[j] - T(0.7)) / 6).margin(1e-6));
  CHECK(Matrix<T>(gate.backward(test::random_matrix<T>(4, 6, 63), ctx)) == da);  // dL/dh is ignored
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<T>::Zero(3, 6), ctx), "shape mismatch");
}

TEST_CASE("SBN baselines are updated after the batch's estimate; state is saved", "[gates]") {
  StochasticBinary<double> gate(2, {.baseline = SbnBaseline::minimum_variance, .average_rate = 0.5}, "g");
  const Matrix<double> a = test::random_matrix<double>(2, 5, 71);
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  ctx.example_loss = RowVector<double>::Constant(5, 2.0);
  CHECK(gate.baseline(0) == 0.0);  // no past data yet
  const Matrix<double> da = gate.backward(Matrix<double>(), ctx);
  // The first batch used Lbar = 0 (only past data), whatever the batch's own losses.
  for (Index k = 0; k < da.size(); ++k)
    CHECK(da.data()[k] == Approx((h.data()[k] - sigmoid(a.data()[k])) * 2.0 / 5));
  CHECK(gate.baseline(0) == Approx(2.0));  // a weighted mean of constant losses
  const ParameterList<double> params = gate.parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[0]->name == "g.threshold");
  CHECK(params[1]->name == "g.baseline_numerator");
  CHECK(params[1]->value.rows() == 2);
  CHECK(params[2]->name == "g.baseline_denominator");
  CHECK(StochasticBinary<double>(2, {.baseline = SbnBaseline::none}).parameters().size() == 1);
}

TEST_CASE("SBN KL hook, evaluation h = 1[p > t], reproducibility, options", "[gates]") {
  const KlSparsity<double> kl{.target = 0.2, .strength = 0.5};
  StochasticBinary<double> gate(3, {.baseline = SbnBaseline::none, .kl = kl});
  const Matrix<double> a = test::random_matrix<double>(3, 4, 81);
  Generator rng(2);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> h = gate.forward(a, ctx);
  ctx.example_loss = RowVector<double>::Constant(4, 1.5);
  Matrix<double> expected = (h - gate.probabilities()) * 1.5 / 4;
  kl.add_gradient_wrt_pre_activation(gate.probabilities(), expected);
  CHECK(gate.backward(Matrix<double>(), ctx).isApprox(expected, 1e-14));

  Context<double> eval(Mode::eval);
  gate.set_threshold(0.4);
  const Matrix<double> deterministic = gate.forward(a, eval);
  CHECK(deterministic == (a.array().logistic() > 0.4).cast<double>().matrix());
  CHECK(gate.forward(a, eval) == deterministic);

  auto run = [&](std::uint64_t seed) {
    StochasticBinary<double> g(3);
    Generator r(seed);
    Context<double> c(Mode::train, r);
    return Matrix<double>(g.forward(test::random_matrix<double>(3, 40, 82), c));
  };
  CHECK(run(9) == run(9));
  CHECK(run(9) != run(10));

  REQUIRE_THROWS_MESSAGE(StochasticBinary<float>(2, {.average_rate = 1.0f}), "average_rate");
  REQUIRE_THROWS_MESSAGE(StochasticBinary<float>(2, {.constant_baseline = INFINITY}), "constant_baseline");
  REQUIRE_THROWS_MESSAGE(StochasticBinary<float>(2, {.kl = KlSparsity<float>{.target = 0.0f}}), "KlSparsity: target");
  REQUIRE_THROWS_MESSAGE(gate.baseline(3), "out of range");
}
