#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/sigmoid.hpp"
#include "stoch/layers/tanh.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEST_CASE("Tanh backward matches central finite differences", "[activations]") {
  Tanh<double> layer(6);
  const auto r = test::check_gradients(layer, test::random_matrix<double>(6, 4, 1));
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}

TEST_CASE("Sigmoid backward matches central finite differences", "[activations]") {
  Sigmoid<double> layer(6);
  const auto r = test::check_gradients(layer, test::random_matrix<double>(6, 4, 2, 3.0));
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}

TEST_CASE("Rectifier backward matches central finite differences away from the kink", "[activations]") {
  Rectifier<double> layer(6);
  Matrix<double> x = test::random_matrix<double>(6, 4, 3);
  x = (x.array() >= 0).select(x.array() + 0.1, x.array() - 0.1).matrix();  // keep every entry at least 0.1 from 0
  const auto r = test::check_gradients(layer, x);
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}

TEMPLATE_TEST_CASE("Sigmoid stays finite and exact at large inputs", "[activations]", float, double) {
  Sigmoid<TestType> layer(3);
  Matrix<TestType> x(3, 1);
  x << -1000, 0, 1000;
  Context<TestType> ctx;
  const auto& y = layer.forward(x, ctx);
  CHECK(y(0, 0) == Approx(0.0).margin(1e-30));
  CHECK(y(1, 0) == Approx(0.5));
  CHECK(y(2, 0) == Approx(1.0));
}
