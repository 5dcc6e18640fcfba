// SlopeAnnealedStraightThrough: h = 1[u < sigm(m a)] (P(h = 1) = sigm(m a)), backward dL/dh * m sigm'(m a)
// against the formula and against finite differences of sigm(m a), m = 1 against StraightThrough's variant bit
// for bit, evaluation, the slope's schedules (stoch::Anneal growth forms), bad input, use inside a GatedLayer.
#include <cmath>
#include <cstdio>
#include <limits>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/slope_annealed_straight_through.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<SlopeAnnealedStraightThrough<float>> && Gate<SlopeAnnealedStraightThrough<double>>);
static_assert(!skips_in_training<SlopeAnnealedStraightThrough<float>>);  // closed gates learn from dy * H

namespace {

/// sigm(m a) as a layer: the relaxed output whose derivative the gate's backward is.
template <class T>
class ScaledSigmoid : public internal::Elementwise<ScaledSigmoid<T>, T> {
 public:
  ScaledSigmoid(Index units, T m) : internal::Elementwise<ScaledSigmoid<T>, T>(units, "ScaledSigmoid"), m_(m) {}
  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h.array() = (a.array() * m_).logistic(); }
  void differentiate(const MatrixCRef<T>&, Matrix<T>&, Context<T>&) {}

 private:
  T m_;
};

}  // namespace

TEMPLATE_TEST_CASE("slope-annealed ST: h = 1[u < sigm(m a)] with fill_bernoulli's words, dL/da = dL/dh m p (1 - p)",
                   "[gates][slope]", float, double) {
  using T = TestType;
  const T m = T(3.5);
  const Matrix<T> a = test::random_matrix<T>(5, 9, 1);
  const Matrix<T> dh = test::random_matrix<T>(5, 9, 2);
  SlopeAnnealedStraightThrough<T> gate(5, {.slope = m});
  Generator rng(3);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> h = gate.forward(a, ctx);

  // (Eigen's double logistic may round differently through a Ref than on a Matrix: compare up to rounding.)
  CHECK(gate.probabilities().isApprox((a.array() * m).logistic().matrix(), T(4) * std::numeric_limits<T>::epsilon()));
  const Matrix<T> p = gate.probabilities();
  Generator same(3);
  Matrix<T> expected_h(5, 9);
  fill_bernoulli<T>(same, p, expected_h);
  CHECK(h == expected_h);
  CHECK(rng == same);

  gate.set_slope(T(10));  // does not change this backward: it uses its forward's slope
  const Matrix<T> da = gate.backward(dh, ctx);
  for (Index k = 0; k < a.size(); ++k) {
    const T pk = p.data()[k];
    CHECK(da.data()[k] == Approx(dh.data()[k] * m * pk * (1 - pk)).epsilon(1e-6));
  }
}

TEST_CASE("slope-annealed ST backward is the derivative of sigm(m a) (finite differences)", "[gates][slope]") {
  const Matrix<double> a = test::random_matrix<double>(4, 6, 4);
  for (const double m : {1.0, 2.5, 7.0}) {
    CAPTURE(m);
    // The gate's backward with dL/dh = R against d/da sum(R .* sigm(m a)) by central differences.
    ScaledSigmoid<double> relaxed(4, m);
    Generator unused(1);
    Context<double> ctx(Mode::train, unused);
    const Matrix<double> r = test::random_matrix<double>(4, 6, 5);
    auto loss = [&](const Matrix<double>& x) { return (relaxed.forward(x, ctx).array() * r.array()).sum(); };
    SlopeAnnealedStraightThrough<double> gate(4, {.slope = m});
    gate.forward(a, ctx);
    const Matrix<double> da = gate.backward(r, ctx);
    Matrix<double> probe = a;
    for (Index k = 0; k < a.size(); ++k) {
      const double eps = 1e-6, saved = probe.data()[k];
      probe.data()[k] = saved + eps;
      const double up = loss(probe);
      probe.data()[k] = saved - eps;
      const double down = loss(probe);
      probe.data()[k] = saved;
      CHECK(da.data()[k] == Approx((up - down) / (2 * eps)).epsilon(1e-7).margin(1e-9));
    }
  }
}

TEMPLATE_TEST_CASE("slope-annealed ST at m = 1 is StraightThrough with sigmoid_derivative, bit for bit",
                   "[gates][slope]", float, double) {
  using T = TestType;
  const Matrix<T> a = test::random_matrix<T>(6, 11, 6, T(2));
  const Matrix<T> dh = test::random_matrix<T>(6, 11, 7);
  SlopeAnnealedStraightThrough<T> slope(6);
  StraightThrough<T> st(6, {.sigmoid_derivative = true});
  Generator r1(8), r2(8);
  Context<T> c1(Mode::train, r1), c2(Mode::train, r2);
  CHECK(slope.forward(a, c1) == st.forward(a, c2));
  CHECK(slope.backward(dh, c1) == st.backward(dh, c2));
}

TEST_CASE("slope-annealed ST samples P(h = 1) = sigm(m a)", "[gates][slope][statistics]") {
  const Index samples = 100000;
  for (const double m : {1.0, 4.0}) {
    for (const double a_value : {-0.4, 0.3}) {
      SlopeAnnealedStraightThrough<double> gate(1, {.slope = m});
      Generator rng(4);
      Context<double> ctx(Mode::train, rng);
      const double fired = gate.forward(Matrix<double>::Constant(1, samples, a_value), ctx).mean();
      const double exact = sigmoid(m * a_value);
      const double se = std::sqrt(exact * (1 - exact) / samples);
      std::printf("slope ST, m = %.1f, a = %.1f: P(h=1) %.5f (exact %.5f, se %.5f)\n", m, a_value, fired, exact, se);
      CHECK(std::abs(fired - exact) < 5 * se);
    }
  }
}

TEMPLATE_TEST_CASE("slope-annealed ST evaluation: 1[sigm(m a) > t], t = 1/2 by default", "[gates][slope]", float,
                   double) {
  using T = TestType;
  const Matrix<T> a = test::random_matrix<T>(5, 8, 9);
  SlopeAnnealedStraightThrough<T> gate(5, {.slope = T(4)});
  Context<T> eval;
  eval.mode = Mode::eval;
  CHECK(gate.forward(a, eval) == (a.array() > T(0)).template cast<T>().matrix());
  // Eigen's logistic may round differently in the gate's expression and in this one (vectorised or scalar).
  CHECK(gate.scores().isApprox((a.array() * T(4)).logistic().matrix(), T(8) * std::numeric_limits<T>::epsilon()));
  gate.set_threshold(T(0.9));
  CHECK(gate.forward(a, eval) == (gate.scores().array() > T(0.9)).template cast<T>().matrix());
  REQUIRE_THROWS_MESSAGE(gate.backward(a, eval), "Mode::train");
}

TEST_CASE("slope schedules (Anneal growth forms) and the slope's refusals", "[gates][slope][anneal]") {
  // Chung et al.: m = min(5, 1 + 0.04 epoch).
  const auto linear = Anneal<double>::linear_growth(1.0, 0.04, 5.0);
  CHECK(linear(0) == 1.0);
  CHECK(linear(25) == Approx(2.0));
  CHECK(linear(100) == 5.0);
  CHECK(linear(1000) == 5.0);
  const auto exponential = Anneal<float>::exponential_growth(1.0f, 0.01f, 8.0f, 10);
  CHECK(exponential(9) == 1.0f);
  CHECK(exponential(10) == Approx(std::exp(0.1)));
  CHECK(exponential(205) == Approx(std::exp(2.0)));
  CHECK(exponential(300) == 8.0f);
  CHECK(Anneal<double>::constant(2.5)(123456) == 2.5);
  CHECK(exponential.form() == Anneal<float>::Form::exponential_growth);

  REQUIRE_THROWS_MESSAGE(Anneal<double>::linear_growth(0.0, 0.1, 5.0), "Anneal: start must be > 0");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::linear_growth(1.0, -0.1, 5.0), "Anneal: rate must be finite and >= 0");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::linear_growth(2.0, 0.1, 1.0),
                         "Anneal: the cap must be finite and >= the start");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::exponential_decay(1.0, 0.1, 2.0), "Anneal: the floor");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::exponential_decay(1.0, 0.1, 0.0), "Anneal: floor must be > 0");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::exponential_decay(1.0, 0.1, 0.5, 0), "Anneal: every must be >= 1");
  REQUIRE_THROWS_MESSAGE(Anneal<double>::constant(std::numeric_limits<double>::infinity()),
                         "Anneal: start must be finite");

  SlopeAnnealedStraightThrough<double> gate(2, {}, "s");
  for (std::uint64_t epoch : {0u, 30u, 200u}) {
    gate.set_slope(linear(epoch));
    CHECK(gate.slope() == linear(epoch));
  }
  auto params = gate.parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0]->name == "s.threshold");
  CHECK(params[1]->name == "s.slope");
  CHECK_FALSE(params[1]->trainable);
  REQUIRE_THROWS_MESSAGE(gate.set_slope(0.0),
                         "SlopeAnnealedStraightThrough::set_slope ('s'): slope must be finite and > 0");
  REQUIRE_THROWS_MESSAGE(gate.set_slope(-2.0), "slope must be finite and > 0");
  REQUIRE_THROWS_MESSAGE(gate.set_slope(std::numeric_limits<double>::quiet_NaN()), "slope must be finite");
  CHECK(gate.slope() == 5.0);
  REQUIRE_THROWS_MESSAGE(SlopeAnnealedStraightThrough<float>(2, {.slope = -1.0f}), "slope must be finite and > 0");
  params[1]->value(0, 0) = 0.0;
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(2, 3), ctx),
                         "SlopeAnnealedStraightThrough::forward ('s'): slope must be finite and > 0");
}

TEMPLATE_TEST_CASE("slope-annealed ST refuses non-finite pre-activations", "[gates][slope]", float, double) {
  using T = TestType;
  Generator rng(1);
  Context<T> ctx(Mode::train, rng);
  Matrix<T> a = Matrix<T>::Zero(3, 4);
  a(2, 1) = std::numeric_limits<T>::infinity();
  SlopeAnnealedStraightThrough<T> gate(3, {}, "s");
  REQUIRE_THROWS_MESSAGE(gate.forward(a, ctx),
                         "SlopeAnnealedStraightThrough::forward ('s'): non-finite pre-activation");
  REQUIRE_THROWS_MESSAGE(gate.backward(a, ctx), "Mode::train");
}

TEST_CASE("GatedLayer with a slope-annealed ST gater equals the dense computation", "[gates][slope][gated_layer]") {
  const Index in = 7, units = 9, batch = 6;
  const double m = 2.0;
  const Matrix<double> x = test::random_matrix<double>(in, batch, 2);
  Generator init(8);
  Linear<double> gater_linear(in, units, init), expert(in, units, init);
  expert.bias().value = test::random_matrix<double>(units, 1, 3);
  GatedLayer layer(Sequential(gater_linear, SlopeAnnealedStraightThrough<double>(units, {.slope = m})), expert);
  Generator rng(5);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> y = layer.forward(x, ctx);

  const Matrix<double> pre = (gater_linear.weight().value * x).colwise() + gater_linear.bias().value.col(0);
  const Matrix<double> p = (pre.array() * m).logistic().matrix();
  Generator same(5);
  Matrix<double> h(units, batch);
  fill_bernoulli<double>(same, p, h);
  const Matrix<double> expert_out = (expert.weight().value * x).colwise() + expert.bias().value.col(0);
  CHECK(y.isApprox(h.cwiseProduct(expert_out), 1e-12));
  CHECK(layer.density() > 0.2);
  CHECK(layer.density() < 0.8);
  CHECK(layer.last_forward_dense());  // closed gates need dL/dh = dy * H

  const Matrix<double> dy = test::random_matrix<double>(units, batch, 6);
  layer.backward(dy, ctx);
  const Matrix<double> da = (dy.cwiseProduct(expert_out).array() * m * p.array() * (1 - p.array())).matrix();
  CHECK(layer.gater().get<0>().weight().grad.isApprox(da * x.transpose(), 1e-12));
  CHECK(layer.expert_weight().grad.isApprox(x * h.cwiseProduct(dy).transpose(), 1e-12));

  Context<double> eval(Mode::eval);
  const Matrix<double> y_eval = layer.forward(x, eval);
  CHECK(y_eval.isApprox((pre.array() > 0).cast<double>().matrix().cwiseProduct(expert_out), 1e-12));
}
