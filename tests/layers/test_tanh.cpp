// Tests for include/stoch/layers/tanh.hpp: forward is std::tanh, backward matches central finite
// differences (the shape checks it shares with every unit-wise layer: test_elementwise.cpp).
#include "stoch/layers/tanh.hpp"

#include <cmath>

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("Tanh forward is tanh, entry by entry, saturating at large inputs", "[tanh]", float, double) {
  using T = TestType;
  Tanh<T> layer(3);
  Matrix<T> x(3, 2);
  x << T(-0.5), T(-40), T(0), T(2), T(0.25), T(40);
  Context<T> ctx;
  const Matrix<T>& y = layer.forward(x, ctx);
  for (Index k = 0; k < x.size(); ++k) CHECK(y.data()[k] == Approx(std::tanh(x.data()[k])).epsilon(1e-6));
  CHECK(y(0, 1) == T(-1));
  CHECK(y(2, 1) == T(1));
}

TEST_CASE("Tanh backward matches central finite differences", "[tanh]") {
  Tanh<double> layer(6);
  const auto r = test::check_gradients(layer, test::random_matrix<double>(6, 4, 1));
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}
