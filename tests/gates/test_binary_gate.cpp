// Tests for include/stoch/gates/binary_gate.hpp, what the gates share: App. A.2's Beta noise (its mode at
// the sparsity target, the scale that puts sigm(k s) at s, its mean), App. A.3's threshold as saved,
// non-trainable state, the deterministic counterpart 1[sigm(a) > t] that draws nothing, and the errors
// that name a bad threshold, bad Beta parameters and a backward without a training forward.
#include "stoch/gates/binary_gate.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "stoch/gates/stochastic_binary.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("BetaNoise: mode at the target, sigm(scale * target) = target, mean = scale E[x]", "[binary_gate]",
                   float, double) {
  using T = TestType;
  for (const T target : {T(0.05), T(0.1), T(0.3)})
    for (const T beta : {T(2.5), T(40.1)}) {
      const BetaNoise<T> noise{beta, target};
      const double a = noise.alpha(), b = noise.beta;
      CHECK((a - 1) / (a + b - 2) == Approx(static_cast<double>(target)).epsilon(1e-5));  // the Beta mode
      CHECK(sigmoid(noise.scale() * target) == Approx(static_cast<double>(target)).epsilon(1e-5));
      CHECK(noise.mean() == Approx(noise.scale() * a / (a + b)).epsilon(1e-6));
      CHECK_NOTHROW(noise.validate("Gate"));
    }
  // The paper's setting: s = 0.1, beta = 40.1 (App. A.2).
  const BetaNoise<T> paper{};
  CHECK(paper.alpha() == Approx(5.3444).epsilon(1e-4));
  CHECK(paper.scale() == Approx(-21.972).epsilon(1e-4));
  CHECK(paper.mean() == Approx(-2.584).epsilon(1e-3));
}

TEST_CASE("BetaNoise refuses a Beta without a mode and a target outside (0, 1), naming the gate", "[binary_gate]") {
  REQUIRE_THROWS_MESSAGE((BetaNoise<double>{1.0, 0.1}.validate("StochasticTimesSmooth")),
                         "StochasticTimesSmooth: beta_noise.beta must be > 1 (the Beta mode must exist), got 1");
  REQUIRE_THROWS_MESSAGE((BetaNoise<double>{40.1, 1.0}.validate("StraightThrough")),
                         "StraightThrough: beta_noise.target must be a probability in (0, 1)");
}

TEST_CASE("The threshold is saved, non-trainable state named after the gate, and must be finite", "[binary_gate]") {
  StochasticBinary<double> gate(3, {}, "layer1.gate");
  CHECK(gate.threshold() == 0.5);  // sigmoid gates start at p > 1/2
  const ParameterList<double> params = gate.parameters();
  const auto threshold = std::find_if(params.begin(), params.end(),
                                      [](const Parameter<double>* p) { return p->name == "layer1.gate.threshold"; });
  REQUIRE(threshold != params.end());
  CHECK_FALSE((*threshold)->trainable);
  gate.set_threshold(0.8);
  CHECK((*threshold)->value(0, 0) == 0.8);
  for (const double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    REQUIRE_THROWS_MESSAGE(gate.set_threshold(bad),
                           "StochasticBinary::set_threshold ('layer1.gate'): threshold must be finite");
  CHECK(gate.threshold() == 0.8);
}

TEST_CASE("Evaluation is 1[sigm(a) > t] with scores sigm(a), draws nothing, and keeps nothing for backward",
          "[binary_gate]") {
  StochasticBinary<double> gate(4);
  const Matrix<double> a = test::random_matrix<double>(4, 6, 8, 2.0);
  Generator rng(1);
  Context<double> eval(Mode::eval, rng);
  gate.set_threshold(0.3);
  const Matrix<double> h = gate.forward(a, eval);
  CHECK(rng.position() == 0);
  for (Index k = 0; k < a.size(); ++k) {
    const double p = 1 / (1 + std::exp(-a.data()[k]));
    CHECK(gate.scores().data()[k] == Approx(p).epsilon(1e-14));
    CHECK(h.data()[k] == (p > 0.3 ? 1.0 : 0.0));
  }
  CHECK(gate.active_count() == (h.array() != 0).count());
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<double>::Zero(4, 6), eval),
                         "StochasticBinary::backward ('sbn'): needs a forward in Mode::train first");
}
