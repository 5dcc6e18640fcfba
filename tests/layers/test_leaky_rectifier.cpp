// Tests for include/stoch/layers/leaky_rectifier.hpp: forward is max(a, s a), backward matches central finite
// differences away from the kink and scales the gradient by s exactly where a <= 0; bad slopes are refused.
#include "stoch/layers/leaky_rectifier.hpp"

#include "layers/kink_checks.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

static_assert(Layer<LeakyRectifier<float>> && backward_only_propagates<LeakyRectifier<double>>);

TEMPLATE_TEST_CASE("LeakyRectifier forward is max(a, s a) and backward scales by s below 0", "[leaky_rectifier]",
                   float, double) {
  using T = TestType;
  LeakyRectifier<T> layer(2, {T(0.25)});
  CHECK(layer.slope() == T(0.25));
  test::check_at_kink_input(layer, {T(-0.25), T(0), T(3), T(2), T(-0.125), T(1e-30)},
                            {T(4), T(8), T(7), T(8), T(12), T(10)},
                            {T(1), T(2), T(7), T(8), T(3), T(10)});
}

TEST_CASE("LeakyRectifier with slope 0 is the rectifier", "[leaky_rectifier]") {
  LeakyRectifier<double> layer(3, {0.0});
  const Matrix<double> x = test::random_matrix<double>(3, 5, 11);
  Context<double> ctx;
  CHECK(layer.forward(x, ctx) == x.array().max(0.0).matrix());
}

TEST_CASE("LeakyRectifier backward matches central finite differences away from the kink", "[leaky_rectifier]") {
  LeakyRectifier<double> layer(6, {0.3});
  Matrix<double> x = test::random_matrix<double>(6, 4, 3);
  x = (x.array() >= 0).select(x.array() + 0.1, x.array() - 0.1).matrix();  // keep every entry at least 0.1 from 0
  const auto r = test::check_gradients(layer, x);
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}

TEST_CASE("LeakyRectifier refuses bad slopes, shapes and non-finite input", "[leaky_rectifier]") {
  REQUIRE_THROWS_MESSAGE(LeakyRectifier<float>(2, {-0.1f}), "LeakyRectifier: slope must be finite and in [0, 1)");
  REQUIRE_THROWS_MESSAGE(LeakyRectifier<float>(2, {1.0f}), "slope must be finite and in [0, 1), got 1");
  REQUIRE_THROWS_MESSAGE(LeakyRectifier<float>(2, {std::nanf("")}), "slope must be finite");
  REQUIRE_THROWS_MESSAGE(LeakyRectifier<float>(0), "unit count must be positive");
  LeakyRectifier<float> layer(2);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(2, 1), ctx), "needs a forward in Mode::train first");
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(3, 1), ctx), "LeakyRectifier::forward");
  Matrix<float> bad = Matrix<float>::Zero(2, 2);
  bad(1, 1) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_MESSAGE(layer.forward(bad, ctx), "LeakyRectifier::forward");
}
