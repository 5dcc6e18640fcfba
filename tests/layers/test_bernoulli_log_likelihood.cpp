// Tests for include/stoch/layers/bernoulli_log_likelihood.hpp: the per-example loss against the formula
// -sum [x log sigm(l) + (1 - x) log(1 - sigm(l))], stability at large logits, backward against central finite
// differences of the mean loss, bernoulli_log_probability against the formula, and bad input.
#include "stoch/layers/bernoulli_log_likelihood.hpp"

#include <cmath>
#include <limits>

#include "layers/loss_checks.hpp"
#include "support/catch.hpp"
#include "support/central_difference.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

// The textbook form, in long double: fine for moderate logits.
long double reference_loss(const Matrix<double>& l, const Matrix<double>& x, Index j) {
  long double sum = 0;
  for (Index i = 0; i < l.rows(); ++i) {
    const long double p = 1.0L / (1.0L + std::exp(-static_cast<long double>(l(i, j))));
    sum -= x(i, j) * std::log(p) + (1 - x(i, j)) * std::log(1 - p);
  }
  return sum;
}

Matrix<double> binary_targets(Index rows, Index cols, std::uint64_t seed) {
  const Matrix<double> g = test::random_matrix<double>(rows, cols, seed);
  return (g.array() > 0).cast<double>().matrix();
}

}  // namespace

TEST_CASE("BernoulliLogLikelihood writes -log p(x | l) per example and returns the mean", "[bernoulli_ll]") {
  const Matrix<double> l = test::random_matrix<double>(7, 5, 1, 3.0);
  Matrix<double> x = binary_targets(7, 5, 2);
  x(3, 2) = 0.25;  // a probability target (cross-entropy) is allowed
  BernoulliLogLikelihood<double> loss(7);
  Context<double> ctx;
  const double mean = loss.forward(l, x, ctx);
  const test::ExampleLossSums sums = test::check_example_losses(
      ctx, 5, [&](Index j) { return static_cast<double>(reference_loss(l, x, j)); });
  CHECK(mean == Approx(sums.written / 5).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("BernoulliLogLikelihood is finite and exact at large logits", "[bernoulli_ll]", float, double) {
  using T = TestType;
  Matrix<T> l(2, 2);
  l << T(200), T(-200), T(-200), T(200);
  Matrix<T> x(2, 2);
  x << T(1), T(1), T(0), T(0);
  BernoulliLogLikelihood<T> loss(2);
  Context<T> ctx;
  loss.forward(l, x, ctx);
  // Column 0: both confident and right: loss log1p(exp(-200)) twice, ~0. Column 1: both confident and wrong: 400.
  CHECK(ctx.example_loss[0] >= T(0));
  CHECK(ctx.example_loss[0] < T(1e-30));
  CHECK(ctx.example_loss[1] == Approx(400.0).epsilon(1e-6));
  const Matrix<T>& g = loss.backward();
  CHECK(g.allFinite());
  CHECK(g(0, 1) == Approx(-0.5).margin(1e-6));  // (sigm(-200) - 1) / 2
}

TEST_CASE("BernoulliLogLikelihood backward matches central finite differences of the mean loss", "[bernoulli_ll]") {
  const Matrix<double> l = test::random_matrix<double>(6, 4, 5, 2.0);
  Matrix<double> x = binary_targets(6, 4, 6);
  x(0, 0) = 0.7;
  BernoulliLogLikelihood<double> loss(6);
  Context<double> ctx;
  loss.forward(l, x, ctx);
  const Matrix<double> analytic = loss.backward();
  const double worst = test::max_central_difference_error(l, analytic, [&](const Matrix<double>& probe) {
    Context<double> eval(Mode::eval);
    return loss.forward(probe, x, eval);
  });
  CHECK(worst < 1e-8);
}

TEST_CASE("bernoulli_log_probability is sum_i v_i l_i - softplus(l_i) per column", "[bernoulli_ll]") {
  const Matrix<double> l = test::random_matrix<double>(5, 3, 8, 2.0);
  const Matrix<double> v = binary_targets(5, 3, 9);
  RowVector<double> out;
  Matrix<double> scratch;
  bernoulli_log_probability<double>(l, v, out, scratch);
  REQUIRE(out.size() == 3);
  for (Index j = 0; j < 3; ++j)
    CHECK(out[j] == Approx(-static_cast<double>(reference_loss(l, v, j))).epsilon(1e-12));
  REQUIRE_THROWS_MESSAGE(bernoulli_log_probability<double>(l, Matrix<double>::Zero(4, 3), out, scratch),
                         "bernoulli_log_probability: values");
}

TEST_CASE("BernoulliLogLikelihood refuses bad shapes, targets and non-finite logits", "[bernoulli_ll]") {
  REQUIRE_THROWS_MESSAGE(BernoulliLogLikelihood<float>(0), "BernoulliLogLikelihood: feature count must be positive");
  BernoulliLogLikelihood<float> loss(3);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(loss.backward(), "BernoulliLogLikelihood::backward: needs a forward in Mode::train first");
  const Matrix<float> l = Matrix<float>::Zero(3, 2);
  REQUIRE_THROWS_MESSAGE(loss.forward(Matrix<float>::Zero(4, 2), Matrix<float>::Zero(4, 2), ctx),
                         "BernoulliLogLikelihood::forward: logits");
  REQUIRE_THROWS_MESSAGE(loss.forward(l, Matrix<float>::Zero(3, 1), ctx), "BernoulliLogLikelihood::forward: targets");
  Matrix<float> x = Matrix<float>::Zero(3, 2);
  x(2, 1) = 2.0f;
  REQUIRE_THROWS_MESSAGE(loss.forward(l, x, ctx), "target 2.000000 at feature 2 of example 1 is not in [0, 1]");
  x(2, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(loss.forward(l, x, ctx), "is not in [0, 1]");
  Matrix<float> bad = l;
  bad(1, 1) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_MESSAGE(loss.forward(bad, Matrix<float>::Zero(3, 2), ctx), "the loss of example 1 is not finite");
  REQUIRE_THROWS_MESSAGE(loss.backward(), "needs a forward in Mode::train first");  // the throwing forward kept nothing
  Context<float> eval(Mode::eval);
  loss.forward(l, Matrix<float>::Zero(3, 2), eval);
  REQUIRE_THROWS_MESSAGE(loss.backward(), "needs a forward in Mode::train first");
}
