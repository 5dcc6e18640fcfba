// GumbelSigmoid (binary Concrete, relaxed and straight-through): forward against the formula with the same
// logistic noise, backward against finite differences of the relaxed output with the noise held fixed,
// P(h = 1) = sigm(a) for the hard form, evaluation, the temperature and its schedule (stoch::Anneal), bad input,
// and use inside a GatedLayer.
#include <cmath>
#include <cstdio>
#include <limits>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/gumbel_sigmoid.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Gate<GumbelSigmoid<float>> && Gate<GumbelSigmoid<double>>);
static_assert(Gate<GumbelSigmoidStraightThrough<float>> && Gate<GumbelSigmoidStraightThrough<double>>);
// Relaxed: exactly-zero gates have zero derivative, so they may be skipped; ST: closed gates learn from dy * H.
static_assert(skips_in_training<GumbelSigmoid<float>>);
static_assert(!skips_in_training<GumbelSigmoidStraightThrough<float>>);

namespace {

template <class T>
Matrix<T> logistic_noise(std::uint64_t seed, Index rows, Index cols) {
  Generator rng(seed);
  Matrix<T> l(rows, cols);
  fill_logistic<T>(rng, l);
  return l;
}

}  // namespace

TEMPLATE_TEST_CASE("Gumbel-sigmoid forward: y = sigm((a + l) / tau), h = 1[a + l > 0], same noise as fill_logistic",
                   "[gates][gumbel]", float, double) {
  using T = TestType;
  const T tau = T(0.7);
  const Matrix<T> a = test::random_matrix<T>(5, 9, 1, T(2));
  const Matrix<T> l = logistic_noise<T>(3, 5, 9);
  const Matrix<T> expected_y = ((a + l).array() / tau).logistic().matrix();

  GumbelSigmoid<T> relaxed(5, {.temperature = tau});
  Generator rng(3);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> y = relaxed.forward(a, ctx);
  CHECK(y.isApprox(expected_y, T(8) * std::numeric_limits<T>::epsilon()));
  CHECK(&relaxed.relaxed() == &relaxed.output());
  CHECK(rng == [] {  // the gate consumes exactly the words of one logistic fill
    Generator r(3);
    Matrix<T> m(5, 9);
    fill_logistic<T>(r, m);
    return r;
  }());

  GumbelSigmoidStraightThrough<T> hard(5, {.temperature = tau});
  Generator rng2(3);
  Context<T> ctx2(Mode::train, rng2);
  const Matrix<T> h = hard.forward(a, ctx2);
  CHECK(h == ((a + l).array() > T(0)).template cast<T>().matrix());
  CHECK(hard.relaxed() == y);  // the same y, bit for bit
  CHECK(hard.active_count() == ((a + l).array() > T(0)).count());
  // h = 1[y > 1/2] wherever y is not within rounding of 1/2.
  for (Index k = 0; k < a.size(); ++k)
    if (std::abs(y.data()[k] - T(0.5)) > T(1e-3)) CHECK(h.data()[k] == (y.data()[k] > T(0.5) ? T(1) : T(0)));
}

TEMPLATE_TEST_CASE("Gumbel-sigmoid backward: dL/dh * y (1 - y) / tau, the same for both forms", "[gates][gumbel]",
                   float, double) {
  using T = TestType;
  const T tau = T(0.4);
  const Matrix<T> a = test::random_matrix<T>(4, 6, 5);
  const Matrix<T> dh = test::random_matrix<T>(4, 6, 6);
  GumbelSigmoid<T> relaxed(4, {.temperature = tau});
  GumbelSigmoidStraightThrough<T> hard(4, {.temperature = tau});
  Generator r1(7), r2(7);
  Context<T> c1(Mode::train, r1), c2(Mode::train, r2);
  const Matrix<T> y = relaxed.forward(a, c1);
  hard.forward(a, c2);
  // The temperature set after the forward does not change this backward (it uses its forward's tau).
  relaxed.set_temperature(T(3));
  const Matrix<T> da = relaxed.backward(dh, c1);
  for (Index k = 0; k < a.size(); ++k) {
    const T yk = y.data()[k];
    CHECK(da.data()[k] == Approx(dh.data()[k] * yk * (1 - yk) / tau).epsilon(1e-5));
  }
  CHECK(hard.backward(dh, c2) == da);  // hard forward, relaxed backward: the same estimator
}

TEST_CASE("Gumbel-sigmoid relaxed backward matches finite differences with the noise held fixed", "[gates][gumbel]") {
  for (const double tau : {2.0, 1.0, 0.3}) {
    CAPTURE(tau);
    GumbelSigmoid<double> gate(6, {.temperature = tau});
    const auto result = test::check_gradients(gate, test::random_matrix<double>(6, 5, 8));
    CHECK(result.finite);
    CHECK(result.max_input_error < 1e-7);
  }
  // The straight-through form's backward is that derivative of its relaxed y (checked against the relaxed
  // gate above, bit for bit, with the same noise), not of its hard output.
}

TEST_CASE("Gumbel-sigmoid straight-through samples P(h = 1) = sigm(a)", "[gates][gumbel][statistics]") {
  const Index samples = 100000;
  for (const double a_value : {-1.3, 0.0, 2.1}) {
    double at_first_tau = -1;
    for (const double tau : {1.0, 0.1}) {  // the temperature does not move the hard sample
      GumbelSigmoidStraightThrough<double> gate(1, {.temperature = tau});
      Generator rng(4);
      Context<double> ctx(Mode::train, rng);
      const double fired = gate.forward(Matrix<double>::Constant(1, samples, a_value), ctx).mean();
      const double exact = sigmoid(a_value);
      const double se = std::sqrt(exact * (1 - exact) / samples);
      std::printf("Gumbel ST, a = %.1f, tau = %.1f: P(h=1) %.5f (exact %.5f, se %.5f)\n", a_value, tau, fired, exact,
                  se);
      CHECK(std::abs(fired - exact) < 5 * se);
      if (at_first_tau >= 0) CHECK(fired == at_first_tau);  // same noise, same hard samples, any tau
      at_first_tau = fired;
    }
  }
}

TEMPLATE_TEST_CASE("Gumbel-sigmoid evaluation: sigm(a / tau) relaxed, 1[sigm(a) > t] straight-through",
                   "[gates][gumbel]", float, double) {
  using T = TestType;
  const Matrix<T> a = test::random_matrix<T>(5, 8, 9, T(3));
  Context<T> eval;  // no generator: evaluation draws nothing
  eval.mode = Mode::eval;

  GumbelSigmoid<T> relaxed(5, {.temperature = T(0.5)});
  CHECK(relaxed.threshold() == T(0));
  const Matrix<T> y = relaxed.forward(a, eval);
  // 1 / 0.5 = 2 exactly; Eigen's logistic may round differently in the gate's expression and in this one
  // (vectorised or scalar, by build), hence a few units in the last place.
  CHECK(y.isApprox((a.array() * T(2)).logistic().matrix(), T(8) * std::numeric_limits<T>::epsilon()));
  CHECK(relaxed.scores() == y);
  relaxed.set_threshold(T(0.5));  // calibrated: the gates below 1/2 close
  const Matrix<T> sparse = relaxed.forward(a, eval);
  CHECK(sparse == (a.array() > T(0)).select(y, T(0)).matrix());
  REQUIRE_THROWS_MESSAGE(relaxed.backward(a, eval), "Mode::train");

  GumbelSigmoidStraightThrough<T> hard(5, {.temperature = T(0.5)});
  CHECK(hard.threshold() == T(0.5));
  const Matrix<T> h = hard.forward(a, eval);
  CHECK(h == (a.array() > T(0)).template cast<T>().matrix());
  CHECK(hard.scores().isApprox(a.array().logistic().matrix()));
  hard.set_threshold(T(0.8));
  CHECK(hard.forward(a, eval) == (a.array().logistic() > T(0.8)).template cast<T>().matrix());
}

TEST_CASE("Gumbel-sigmoid temperature: saved state, schedule, refusals", "[gates][gumbel]") {
  GumbelSigmoid<double> gate(3, {.temperature = 2.0}, "g");
  auto params = gate.parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[0]->name == "g.threshold");
  CHECK(params[1]->name == "g.temperature");
  CHECK_FALSE(params[1]->trainable);
  CHECK(params[1]->value(0, 0) == 2.0);

  // Jang et al.'s schedule: tau = max(0.5, exp(-r t)), updated every 500 steps.
  const auto schedule = Anneal<double>::exponential_decay(1.0, 1e-4, 0.5, 500);
  CHECK(schedule(0) == 1.0);
  CHECK(schedule(499) == 1.0);
  CHECK(schedule(500) == Approx(std::exp(-0.05)));
  CHECK(schedule(1999) == Approx(std::exp(-0.15)));
  CHECK(schedule(100000) == 0.5);  // exp(-10) is below the floor
  for (std::uint64_t t : {0u, 700u, 5000u}) {
    gate.set_temperature(schedule(t));
    CHECK(gate.temperature() == schedule(t));
  }

  REQUIRE_THROWS_MESSAGE(gate.set_temperature(0.0),
                         "GumbelSigmoid::set_temperature ('g'): temperature must be finite and > 0 (with 1 / "
                         "temperature finite), got 0");
  REQUIRE_THROWS_MESSAGE(gate.set_temperature(-1.0), "temperature must be finite and > 0");
  REQUIRE_THROWS_MESSAGE(gate.set_temperature(std::numeric_limits<double>::quiet_NaN()), "temperature");
  REQUIRE_THROWS_MESSAGE(gate.set_temperature(std::numeric_limits<double>::infinity()), "temperature");
  REQUIRE_THROWS_MESSAGE(gate.set_temperature(std::numeric_limits<double>::denorm_min()), "1 / temperature finite");
  CHECK(gate.temperature() == schedule(5000));  // a refused value changes nothing
  REQUIRE_THROWS_MESSAGE(GumbelSigmoidStraightThrough<float>(2, {.temperature = 0.0f}),
                         "GumbelSigmoidStraightThrough::set_temperature ('gumbel_sigmoid_st'): temperature must be "
                         "finite and > 0");
  // A temperature overwritten through the saved state (e.g. a loaded file) is checked at the next forward.
  params[1]->value(0, 0) = -0.5;
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, 2), ctx),
                         "GumbelSigmoid::forward ('g'): temperature must be finite and > 0");
}

TEMPLATE_TEST_CASE("Gumbel-sigmoid refuses non-finite pre-activations and a backward without a training forward",
                   "[gates][gumbel]", float, double) {
  using T = TestType;
  Generator rng(1);
  Context<T> ctx(Mode::train, rng);
  Matrix<T> a = Matrix<T>::Zero(3, 4);
  GumbelSigmoid<T> relaxed(3, {}, "gate1");
  REQUIRE_THROWS_MESSAGE(relaxed.backward(a, ctx), "Mode::train");
  a(1, 2) = std::numeric_limits<T>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(relaxed.forward(a, ctx), "GumbelSigmoid::forward ('gate1'): non-finite pre-activation");
  REQUIRE_THROWS_MESSAGE(relaxed.backward(a, ctx), "Mode::train");  // the failed forward left nothing
  a(1, 2) = -std::numeric_limits<T>::infinity();
  GumbelSigmoidStraightThrough<T> hard(3);
  REQUIRE_THROWS_MESSAGE(hard.forward(a, ctx), "non-finite pre-activation");
  Context<T> eval;
  eval.mode = Mode::eval;
  REQUIRE_THROWS_MESSAGE(hard.forward(a, eval), "non-finite pre-activation");
  REQUIRE_THROWS_MESSAGE(hard.forward(Matrix<T>::Zero(4, 2), ctx), "expected 3 rows");
  REQUIRE_THROWS_MESSAGE(GumbelSigmoid<T>(0), "unit count must be positive");
}

TEST_CASE("Gumbel-sigmoid reproducibility: same seed, same bits", "[gates][gumbel]") {
  auto run = [](std::uint64_t seed) {
    GumbelSigmoidStraightThrough<float> g(16, {.temperature = 0.5f});
    Generator r(seed);
    Context<float> c(Mode::train, r);
    g.forward(test::random_matrix<float>(16, 16, 8), c);
    return std::pair{Matrix<float>(g.output()), Matrix<float>(g.relaxed())};
  };
  CHECK(run(1) == run(1));
  CHECK(run(1).first != run(2).first);
}

TEST_CASE("GatedLayer with a Gumbel-sigmoid gater equals the dense computation; its gradients match finite "
          "differences on every path",
          "[gates][gumbel][gated_layer]") {
  const Index in = 7, units = 9, batch = 5;
  const double tau = 0.6;
  const Matrix<double> x = test::random_matrix<double>(in, batch, 2);
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse, ExpertPath::automatic}) {
    CAPTURE(static_cast<int>(path));
    Generator init(8);
    Linear<double> gater_linear(in, units, init), expert(in, units, init);
    expert.bias().value = test::random_matrix<double>(units, 1, 3);
    GatedLayer layer(Sequential(gater_linear, GumbelSigmoid<double>(units, {.temperature = tau})), expert);
    layer.set_path(path);

    // y = sigm((Wg x + bg + l) / tau) ⊙ (We x + be), l the gate's logistic noise (the first draw of rng).
    Generator rng(5);
    Context<double> ctx(Mode::train, rng);
    const Matrix<double> y = layer.forward(x, ctx);
    const Matrix<double> pre = (gater_linear.weight().value * x).colwise() + gater_linear.bias().value.col(0);
    const Matrix<double> gate = ((pre + logistic_noise<double>(5, units, batch)).array() / tau).logistic().matrix();
    const Matrix<double> expert_out = (expert.weight().value * x).colwise() + expert.bias().value.col(0);
    CHECK(y.isApprox(gate.cwiseProduct(expert_out), 1e-12));

    const auto result = test::check_gradients(layer, x);
    CHECK(result.finite);
    CHECK(result.max_input_error < 1e-7);
    CHECK(result.max_parameter_error < 1e-7);
  }

  // Straight-through: the hard gates times the expert; training computes the expert densely (closed gates need it).
  Generator init(8);
  Linear<double> gater_linear(in, units, init), expert(in, units, init);
  GatedLayer layer(Sequential(gater_linear, GumbelSigmoidStraightThrough<double>(units, {.temperature = tau})),
                   expert);
  Generator rng(5);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> y = layer.forward(x, ctx);
  const Matrix<double> pre = (gater_linear.weight().value * x).colwise() + gater_linear.bias().value.col(0);
  const Matrix<double> hard = ((pre + logistic_noise<double>(5, units, batch)).array() > 0.0).cast<double>().matrix();
  const Matrix<double> expert_out = (expert.weight().value * x).colwise() + expert.bias().value.col(0);
  CHECK(y.isApprox(hard.cwiseProduct(expert_out), 1e-12));
  CHECK(layer.density() > 0.2);
  CHECK(layer.density() < 0.8);
  CHECK(layer.last_forward_dense());
  // The gater receives dL/dh = dy ⊙ H at every gate, closed ones included.
  const Matrix<double> dy = test::random_matrix<double>(units, batch, 6);
  layer.backward(dy, ctx);
  const Matrix<double>& y_relaxed = layer.gater().last().relaxed();
  const Matrix<double> da = (dy.cwiseProduct(expert_out).array() * y_relaxed.array() * (1 - y_relaxed.array()) / tau)
                                .matrix();
  CHECK(layer.gater().get<0>().weight().grad.isApprox(da * x.transpose(), 1e-12));
}
