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

TEMPLATE_TEST_CASE("Linear skipping zero inputs gives the dense forward and the same backward", "[linear]", float,
                   double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  Generator rng(21);
  Linear<T> dense(40, 10, rng), skipping = dense;
  skipping.bias().value = dense.bias().value = test::random_matrix<T>(10, 1, 22);
  CHECK(dense.zero_skipping() == ZeroSkipping::off);
  skipping.set_zero_skipping(ZeroSkipping::always);
  CHECK(skipping.zero_skipping() == ZeroSkipping::always);
  Context<T> ctx(Mode::train, rng);
  std::uint64_t seed = 30;
  // Below the crossover the zeros are skipped; above it the dense product runs: the same values either way.
  for (const double density : {0.0, 0.05, Linear<T>::kZeroSkippingCrossover, 0.6, 1.0}) {
    CAPTURE(density);
    Matrix<T> x = test::random_matrix<T>(40, 6, ++seed);
    const Matrix<T> keep = test::random_matrix<T>(40, 6, ++seed);
    for (Index k = 0; k < x.size(); ++k)
      if ((keep.data()[k] + T(1)) / T(2) >= static_cast<T>(density)) x.data()[k] = T(0);
    const Matrix<T> expected = dense.forward(x, ctx);
    const Matrix<T> y = skipping.forward(x, ctx);
    CHECK((y - expected).cwiseAbs().maxCoeff() <= tolerance * 40);
    const Matrix<T> dy = test::random_matrix<T>(10, 6, ++seed);
    const Matrix<T> dx_dense = dense.backward(dy, ctx);
    const Matrix<T> dx_skipping = skipping.backward(dy, ctx);
    CHECK(dx_skipping == dx_dense);
    CHECK(skipping.weight().grad == dense.weight().grad);
    CHECK(skipping.bias().grad == dense.bias().grad);
  }
}

TEST_CASE("Linear with ZeroSkipping::evaluation keeps the dense product, bit for bit, in training", "[linear]") {
  Generator rng(23);
  Linear<float> dense(300, 10, rng), skipping = dense;
  skipping.set_zero_skipping(ZeroSkipping::evaluation);
  Matrix<float> x = test::random_matrix<float>(300, 8, 24);
  for (Index k = 0; k < x.size(); ++k)
    if (k % 13 != 0) x.data()[k] = 0.0f;  // 7.7 % non-zero: below the crossover
  Context<float> train(Mode::train, rng), eval(Mode::eval, rng);
  CHECK(skipping.forward(x, train) == dense.forward(x, train));
  const Matrix<float> expected = dense.forward(x, eval);
  const Matrix<float> y = skipping.forward(x, eval);
  CHECK((y - expected).cwiseAbs().maxCoeff() <= 1e-5f * 300);
}
