// Eigen's malloc guard first, so the test can prove that Adam::step allocates nothing once built.
#include "support/no_malloc.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "stoch/io/serialization.hpp"
#include "stoch/optim/adam.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

/// Algorithm 1 of Kingma & Ba, in double, one entry: returns the new value and updates m, v.
double adam_by_hand(double value, double g, double& m, double& v, int t, double lr, double b1 = 0.9,
                    double b2 = 0.999, double eps = 1e-8) {
  m = b1 * m + (1 - b1) * g;
  v = b2 * v + (1 - b2) * g * g;
  const double m_hat = m / (1 - std::pow(b1, t)), v_hat = v / (1 - std::pow(b2, t));
  return value - lr * m_hat / (std::sqrt(v_hat) + eps);
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-13;
}

}  // namespace

TEMPLATE_TEST_CASE("Adam: two steps match Algorithm 1 computed by hand", "[adam]", float, double) {
  using T = TestType;
  Parameter<T> w("w", 3, 1);
  w.value << T(1), T(-2), T(0.5);
  Adam<T> adam({&w}, {.learning_rate = T(0.01)});
  CHECK(adam.steps() == 0);

  const double g1[3] = {0.5, -1e-3, 3.0}, g2[3] = {-0.25, 2e-3, 3.0};
  double m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, expected[3] = {1, -2, 0.5};
  for (int t = 1; t <= 2; ++t) {
    const double* g = t == 1 ? g1 : g2;
    for (Index i = 0; i < 3; ++i) {
      w.grad(i) = static_cast<T>(g[i]);
      // With the options as T holds them (0.999f is 0.99900001...: 1 - beta2 differs from 1e-3 by 1.3e-5).
      expected[i] = adam_by_hand(expected[i], static_cast<double>(w.grad(i)), m[i], v[i], t,
                                 static_cast<double>(T(0.01)), static_cast<double>(T(0.9)),
                                 static_cast<double>(T(0.999)), static_cast<double>(T(1e-8)));
    }
    adam.step();
    CHECK(adam.steps() == static_cast<std::uint64_t>(t));
    CHECK(w.grad.isZero(0));  // cleared
    for (Index i = 0; i < 3; ++i) {
      CAPTURE(t, i);
      CHECK(static_cast<double>(w.value(i)) == Approx(expected[i]).epsilon(tolerance<T>()));
      CHECK(static_cast<double>(adam.state()[1]->value(i)) == Approx(m[i]).epsilon(tolerance<T>()));
      CHECK(static_cast<double>(adam.state()[2]->value(i)) == Approx(v[i]).epsilon(tolerance<T>()));
    }
  }
  // The first bias-corrected step is lr * g / (|g| + eps): about lr against the gradient, whatever its size.
  CHECK(static_cast<double>(w.value(2)) == Approx(0.5 - 0.02).epsilon(1e-6));  // g = 3 both times: two steps of lr
}

TEMPLATE_TEST_CASE("Adam: per-parameter scale, weight decay, max-norm, non-trainable state skipped", "[adam]", float,
                   double) {
  using T = TestType;
  Parameter<T> a("a", 2, 2), b("b", 2, 1), frozen("frozen", 1, 1, /*trainable=*/false);
  a.value << T(1), T(2), T(3), T(4);
  b.value << T(1), T(-1);
  frozen.value(0, 0) = T(7);
  a.learning_rate_scale = T(0.5);
  a.weight_decay = T(0.1);
  b.max_norm = T(1);  // b is 2 x 1: each row is one unit's (single) incoming weight
  Adam<T> adam({&a, &frozen, &b}, {.learning_rate = T(0.1), .beta1 = T(0.5), .beta2 = T(0.75), .epsilon = T(1e-3)});
  const auto state = adam.state();
  REQUIRE(state.size() == 5);
  CHECK(state[0]->name == "adam.step");
  CHECK(state[1]->name == "adam.a.m");
  CHECK(state[2]->name == "adam.a.v");
  CHECK(state[3]->name == "adam.b.m");
  CHECK(state[4]->name == "adam.b.v");
  for (Parameter<T>* s : state) CHECK_FALSE(s->trainable);

  a.grad << T(1), T(-1), T(0.5), T(2);
  b.grad << T(-3), T(4);
  const Matrix<T> a0 = a.value, a_grad = a.grad;
  adam.step();
  for (Index i = 0; i < 4; ++i) {
    double m = 0, v = 0;
    const double g = static_cast<double>(a_grad(i)) + 0.1 * static_cast<double>(a0(i));  // L2 joins the gradient
    CHECK(static_cast<double>(a.value(i)) ==
          Approx(adam_by_hand(static_cast<double>(a0(i)), g, m, v, 1, 0.05, 0.5, 0.75, static_cast<double>(T(1e-3))))
              .epsilon(tolerance<T>()));
  }
  CHECK(frozen.value(0, 0) == T(7));
  // b: 1 - 0.1 * (-3) / (3 + eps') > 1 is projected back to 1; -1 - 0.1 * 4 / (4 + eps') to -1.
  CHECK(b.value(0) == T(1));
  CHECK(b.value(1) == T(-1));
  CHECK(b.grad.isZero(0));
  CHECK(a.grad.isZero(0));
}

TEMPLATE_TEST_CASE("Adam: a step allocates nothing", "[adam]", float, double) {
  using T = TestType;
  Parameter<T> w("w", 300, 40), b("b", 40, 1);
  w.value = test::random_matrix<T>(300, 40, 1);
  w.max_norm = T(2);
  Adam<T> adam({&w, &b});
  for (int k = 0; k < 2; ++k) {  // the first step sizes the max-norm buffer
    w.grad = test::random_matrix<T>(300, 40, 2);
    b.grad.setOnes();
    if (k == 1) Eigen::internal::set_is_malloc_allowed(false);
    adam.step();
    Eigen::internal::set_is_malloc_allowed(true);
  }
  CHECK(adam.steps() == 2);
}

TEST_CASE("Adam minimises a badly scaled quadratic", "[adam]") {
  // L = sum_i s_i (w_i - c_i)^2 with scales 1e-3 .. 1e3: Adam's per-entry step size makes the scales irrelevant.
  Parameter<double> w("w", 4, 1);
  const Vector<double> c = (Vector<double>(4) << 1.0, -2.0, 0.5, 3.0).finished();
  const Vector<double> s = (Vector<double>(4) << 1e-3, 1.0, 1e2, 1e3).finished();
  Adam<double> adam({&w}, {.learning_rate = 0.05});
  for (int k = 0; k < 3000; ++k) {
    w.grad = (2.0 * s.array() * (w.value.col(0) - c).array()).matrix();
    adam.step();
  }
  CHECK((w.value.col(0) - c).cwiseAbs().maxCoeff() < 1e-2);
}

TEMPLATE_TEST_CASE("Adam refuses a non-finite gradient, naming the parameter, and writes nothing non-finite",
                   "[adam]", float, double) {
  using T = TestType;
  // Large enough for several chunks: the NaN sits in a later chunk, so the earlier ones are updated.
  const Index rows = 3000;
  Parameter<T> first("first", 2, 1), big("big", rows, 1), last("last", 2, 1);
  first.grad.setOnes();
  big.grad.setOnes();
  last.grad.setOnes();
  big.grad(rows - 5, 0) = std::numeric_limits<T>::quiet_NaN();
  Adam<T> adam({&first, &big, &last});
  REQUIRE_THROWS_MESSAGE(adam.step(), "Adam::step: parameter 'big': non-finite gradient nan (NaN or Inf) at entry " +
                                          std::to_string(rows - 5) + " of " + std::to_string(rows) + " x 1");
  CHECK(first.value.allFinite());
  CHECK(first.value(0) < T(0));                  // updated
  CHECK(first.grad.isZero(0));
  CHECK(big.value(0) < T(0));                    // the first chunk was updated
  CHECK(big.value(rows - 1) == T(0));            // the offending chunk was not
  CHECK(big.grad(rows - 1) == T(1));             // and its gradients are kept
  CHECK(big.value.allFinite());
  CHECK(adam.state()[3]->value.allFinite());     // big's m
  CHECK(adam.state()[4]->value.allFinite());     // big's v
  CHECK(last.value.isZero(0));                   // not reached
  CHECK(last.grad(0) == T(1));

  Parameter<T> p("p", 2, 1);
  Adam<T> other({&p});
  p.grad(1) = std::numeric_limits<T>::infinity();
  REQUIRE_THROWS_MESSAGE(other.step(), "Adam::step: parameter 'p': non-finite gradient inf");
  CHECK(p.value.isZero(0));
  // A finite gradient whose square overflows would make v infinite: refused too.
  p.grad(1) = std::numeric_limits<T>::max();
  REQUIRE_THROWS_MESSAGE(other.step(), "the update or the squared gradient overflows");
  CHECK(other.state()[2]->value.allFinite());
}

TEST_CASE("Adam refuses bad options and bad state", "[adam]") {
  Parameter<float> p("p", 1, 1);
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p}, {.learning_rate = 0.0f}), "Adam: learning_rate must be > 0");
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p}, {.beta1 = 1.0f}), "Adam: beta1 must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p}, {.beta2 = -0.1f}), "Adam: beta2 must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p}, {.epsilon = 0.0f}), "Adam: epsilon must be > 0");
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p, nullptr}), "Adam: parameter 1 is a null pointer");
  Adam<float> adam({&p});
  REQUIRE_THROWS_MESSAGE(adam.set_learning_rate(std::numeric_limits<float>::quiet_NaN()), "learning_rate");
  CHECK(adam.learning_rate() == 1e-3f);
  adam.state()[0]->value(0, 0) = 1.5f;
  REQUIRE_THROWS_MESSAGE(adam.step(), "the step count 'adam.step' is 1.5");
  Parameter<float> late("late", 1, 1, false);
  Adam<float> with_late({&late});
  late.trainable = true;
  late.grad.setZero(1, 1);
  REQUIRE_THROWS_MESSAGE(with_late.step(), "parameter 'late' became trainable after the optimiser was built");
  p.grad.resize(2, 1);
  REQUIRE_THROWS_MESSAGE(Adam<float>({&p}).step(),
                         "Adam::step: parameter 'p': gradient is 2 x 1 but the value is 1 x 1");
}

TEMPLATE_TEST_CASE("Adam's state saved with the model resumes bit-exactly", "[adam][serialization]", float, double) {
  using T = TestType;
  struct Run {
    Parameter<T> w{"w", 5, 3}, b{"b", 5, 1};
    Adam<T> adam{{&w, &b}, {.learning_rate = T(0.02)}};
    Run() { w.value = test::random_matrix<T>(5, 3, 1); }
    ParameterList<T> all() {
      ParameterList<T> list{&w, &b};
      append(list, adam.state());
      return list;
    }
    void step(std::uint64_t seed) {
      w.grad = test::random_matrix<T>(5, 3, seed);
      b.grad = test::random_matrix<T>(5, 1, seed + 100);
      adam.step();
    }
  };
  Run original;
  for (std::uint64_t s = 1; s <= 3; ++s) original.step(s);
  const std::vector<std::uint8_t> bytes = serialize_model(original.all());
  for (std::uint64_t s = 4; s <= 5; ++s) original.step(s);

  Run resumed;
  deserialize_model<T>(bytes, resumed.all());
  CHECK(resumed.adam.steps() == 3);
  for (std::uint64_t s = 4; s <= 5; ++s) resumed.step(s);
  CHECK(resumed.w.value == original.w.value);
  CHECK(resumed.b.value == original.b.value);
  for (std::size_t k = 0; k < original.adam.state().size(); ++k)
    CHECK(resumed.adam.state()[k]->value == original.adam.state()[k]->value);

  // Without the optimiser's state the run differs (the moments restart): the state matters.
  Run restarted;
  restarted.w.value = resumed.w.value;
  restarted.b.value = resumed.b.value;
  restarted.step(6);
  resumed.step(6);
  CHECK(restarted.w.value != resumed.w.value);

  resumed.adam.reset_state();
  CHECK(resumed.adam.steps() == 0);
  CHECK(resumed.adam.state()[1]->value.isZero(0));
}

TEST_CASE("Adam refuses a parameter that plain SGD steps in backward (Sgd::set_fused_steps)", "[adam]") {
  Parameter<float> w("expert.W", 2, 2);
  Adam<float> adam({&w});
  w.fused_rate = 0.1f;
  REQUIRE_THROWS_MESSAGE(adam.step(), "Adam::step: parameter 'expert.W' is stepped in backward by plain SGD");
  CHECK(w.value.isZero(0));
}
