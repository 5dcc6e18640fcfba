// Tests for include/stoch/layers/sigmoid.hpp: forward is 1 / (1 + exp(-a)) and stays exact and finite at
// large inputs, backward matches central finite differences.
#include "stoch/layers/sigmoid.hpp"

#include <cmath>

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEST_CASE("Sigmoid forward is 1 / (1 + exp(-a))", "[sigmoid]") {
  Sigmoid<double> layer(5);
  const Matrix<double> x = test::random_matrix<double>(5, 3, 4, 4.0);
  Context<double> ctx;
  const Matrix<double>& y = layer.forward(x, ctx);
  for (Index k = 0; k < x.size(); ++k) CHECK(y.data()[k] == Approx(1 / (1 + std::exp(-x.data()[k]))).epsilon(1e-12));
}

TEST_CASE("Sigmoid backward matches central finite differences", "[sigmoid]") {
  Sigmoid<double> layer(6);
  const auto r = test::check_gradients(layer, test::random_matrix<double>(6, 4, 2, 3.0));
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}

TEMPLATE_TEST_CASE("Sigmoid stays finite and exact at large inputs", "[sigmoid]", float, double) {
  Sigmoid<TestType> layer(3);
  Matrix<TestType> x(3, 1);
  x << -1000, 0, 1000;
  Context<TestType> ctx;
  const auto& y = layer.forward(x, ctx);
  CHECK(y(0, 0) == Approx(0.0).margin(1e-30));
  CHECK(y(1, 0) == Approx(0.5));
  CHECK(y(2, 0) == Approx(1.0));
  const Matrix<TestType> dh = Matrix<TestType>::Ones(3, 1);
  const auto& dx = layer.backward(dh, ctx);
  CHECK(dx.allFinite());
  CHECK(dx(1, 0) == Approx(0.25));
}
