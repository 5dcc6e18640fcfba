#include <cmath>
#include <limits>

#include "stoch/layers/dropout.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("Dropout keeps each entry with probability 1 - rate, scaled by 1 / (1 - rate)", "[dropout]",
                   float, double) {
  using T = TestType;
  const Index units = 784, batch = 500;
  const double rate = 0.2;
  Dropout<T> layer(units, T(rate));
  Matrix<T> x = Matrix<T>::Constant(units, batch, T(0.5));
  x(3, 7) = T(-2);
  Generator rng(11);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T>& h = layer.forward(x, ctx);
  const T kept_value = T(0.5) / T(1 - rate);
  Index dropped = 0, other = 0;
  for (Index b = 0; b < batch; ++b)
    for (Index i = 0; i < units; ++i) {
      if (i == 3 && b == 7) continue;
      if (h(i, b) == T(0)) ++dropped;
      else if (h(i, b) != kept_value) ++other;
    }
  CHECK(other == 0);
  CHECK((h(3, 7) == T(0) || h(3, 7) == T(-2) / T(1 - rate)));
  // The dropped fraction is a mean of n Bernoulli(rate): within 5 standard errors of rate.
  const double n = static_cast<double>(units * batch - 1);
  const double se = std::sqrt(rate * (1 - rate) / n);
  CHECK(std::abs(static_cast<double>(dropped) / n - rate) < 5 * se);
}

TEMPLATE_TEST_CASE("Dropout's backward applies the forward's mask", "[dropout]", float, double) {
  using T = TestType;
  Dropout<T> layer(50, T(0.5));
  const Matrix<T> x = test::random_matrix<T>(50, 8, 4) + Matrix<T>::Constant(50, 8, T(3));  // no zero entry
  Generator rng(5);
  Context<T> ctx(Mode::train, rng);
  const Matrix<T> h = layer.forward(x, ctx);
  const Matrix<T> dh = test::random_matrix<T>(50, 8, 6);
  const Matrix<T>& dx = layer.backward(dh, ctx);
  // For a fixed mask h is linear in x, h = x ⊙ s, so dL/dx = dL/dh ⊙ s with s = h / x.
  for (Index b = 0; b < 8; ++b)
    for (Index i = 0; i < 50; ++i) CHECK(dx(i, b) == Approx(dh(i, b) * h(i, b) / x(i, b)).epsilon(1e-6));
  CHECK((dx.array() == T(0)).count() == (h.array() == T(0)).count());
}

TEST_CASE("Dropout in evaluation, and at rate 0, is the identity and draws nothing", "[dropout]") {
  const Matrix<float> x = test::random_matrix<float>(20, 6, 7);
  Generator rng(9);
  for (const float rate : {0.0f, 0.3f}) {
    Dropout<float> layer(20, rate);
    Context<float> eval(Mode::eval, rng);
    CHECK(layer.forward(x, eval) == x);
    // Evaluation keeps nothing for backward, as for every layer.
    REQUIRE_THROWS_MESSAGE(layer.backward(x, eval), "Dropout::backward: needs a forward in Mode::train first");
  }
  Dropout<float> identity(20, 0.0f);
  Context<float> train(Mode::train, rng);
  CHECK(identity.forward(x, train) == x);
  CHECK(identity.backward(x, train) == x);
  CHECK(rng.position() == Generator(9).position());  // no draw in any of the above
}

TEST_CASE("Dropout: the same seed gives the same mask, another seed another", "[dropout]") {
  const Matrix<double> x = Matrix<double>::Ones(100, 10);
  auto mask = [&](std::uint64_t seed) {
    Dropout<double> layer(100, 0.5);
    Generator rng(seed);
    Context<double> ctx(Mode::train, rng);
    return Matrix<double>(layer.forward(x, ctx));
  };
  CHECK(mask(1) == mask(1));
  CHECK(mask(1) != mask(2));
}

TEST_CASE("Dropout refuses a rate outside [0, 1) and a wrong shape, naming the problem", "[dropout]") {
  REQUIRE_THROWS_MESSAGE(Dropout<float>(4, 1.0f), "Dropout: rate must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Dropout<float>(4, -0.1f), "Dropout: rate must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Dropout<float>(4, std::numeric_limits<float>::quiet_NaN()), "Dropout: rate");
  REQUIRE_THROWS_MESSAGE(Dropout<float>(0, 0.5f), "Dropout: unit count");
  Dropout<float> layer(4, 0.5f);
  Generator rng(1);
  Context<float> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Ones(5, 2), ctx), "Dropout::forward: input");
}
