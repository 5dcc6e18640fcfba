#include "stoch/layers/linear.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEST_CASE("Linear backward matches central finite differences", "[linear]") {
  Generator rng(3);
  Linear<double> layer(5, 4, rng);
  layer.bias().value = test::random_matrix<double>(4, 1, 11);
  const auto result = test::check_gradients(layer, test::random_matrix<double>(5, 3, 1));
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
  CHECK(result.max_parameter_error < 1e-7);
}

TEMPLATE_TEST_CASE("Linear computes W x + b column by column", "[linear]", float, double) {
  Linear<TestType> layer(2, 3);
  layer.weight().value << 1, 2, 3, 4, 5, 6;
  layer.bias().value << 1, -1, 0.5;
  Matrix<TestType> x(2, 2);
  x << 1, 0, 0, 1;
  Context<TestType> ctx;
  const Matrix<TestType>& y = layer.forward(x, ctx);
  Matrix<TestType> expected(3, 2);
  expected << 2, 3, 2, 3, 5.5, 6.5;
  CHECK(y.isApprox(expected));
}

TEST_CASE("Linear accumulates parameter gradients until cleared", "[linear]") {
  Generator rng(5);
  Linear<double> layer(3, 2, rng);
  Context<double> ctx(Mode::train, rng);
  const Matrix<double> x = test::random_matrix<double>(3, 4, 2);
  const Matrix<double> dy = test::random_matrix<double>(2, 4, 3);
  layer.forward(x, ctx);
  layer.backward(dy, ctx);
  const Matrix<double> once = layer.weight().grad;
  layer.backward(dy, ctx);
  CHECK(layer.weight().grad.isApprox(2 * once));
}

TEST_CASE("Linear rejects inputs of the wrong shape with a message naming both shapes", "[linear]") {
  Linear<float> layer(4, 2);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(3, 5), ctx), "expected 4 rows");
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(4, 0), ctx), "empty batch");
  REQUIRE_THROWS_MESSAGE(Linear<float>(0, 3), "sizes must be positive");
}

TEMPLATE_TEST_CASE("Linear without dL/dx: the same parameter gradients, an empty result", "[linear]", float, double) {
  using T = TestType;
  Generator rng(3);
  Linear<T> with(6, 4, rng), without = with;
  without.set_input_gradient(false);
  const Matrix<T> x = test::random_matrix<T>(6, 5, 1), dy = test::random_matrix<T>(4, 5, 2);
  Context<T> ctx(Mode::train, rng);
  with.forward(x, ctx);
  without.forward(x, ctx);
  const Matrix<T> dx = with.backward(dy, ctx);
  CHECK(without.backward(dy, ctx).size() == 0);
  CHECK(without.weight().grad == with.weight().grad);
  CHECK(without.bias().grad == with.bias().grad);
  without.set_input_gradient(true);
  without.forward(x, ctx);
  CHECK(without.backward(dy, ctx) == dx);
}
