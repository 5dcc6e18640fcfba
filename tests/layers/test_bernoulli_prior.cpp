// Tests for include/stoch/layers/bernoulli_prior.hpp: log p(b) against the formula, backward (dL/dc and dL/db
// for L = sum_j w_j log p(b_j)) against central finite differences, accumulation, and bad input.
#include "stoch/layers/bernoulli_prior.hpp"

#include <cmath>
#include <limits>

#include "support/catch.hpp"
#include "support/central_difference.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

double reference_log_prob(const Vector<double>& c, const Matrix<double>& b, Index j) {
  double sum = 0;
  for (Index i = 0; i < c.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-c[i]));
    sum += b(i, j) * std::log(p) + (1 - b(i, j)) * std::log(1 - p);
  }
  return sum;
}

}  // namespace

TEST_CASE("BernoulliPrior starts at p = 1/2 and computes log p(b) per column", "[bernoulli_prior]") {
  BernoulliPrior<double> prior(4, "p");
  REQUIRE(prior.parameters().size() == 1);
  CHECK(prior.logits().name == "p.logits");
  CHECK(prior.logits().trainable);
  Context<double> ctx;
  Matrix<double> b(4, 2);
  b << 1, 0, 0, 0, 1, 1, 0, 1;
  const RowVector<double> at_half = prior.forward(b, ctx);
  CHECK(at_half[0] == Approx(4 * std::log(0.5)));
  CHECK(at_half[1] == Approx(4 * std::log(0.5)));
  prior.logits().value.col(0) = test::random_matrix<double>(4, 1, 3, 2.0).col(0);
  const RowVector<double> lp = prior.forward(b, ctx);
  for (Index j = 0; j < 2; ++j)
    CHECK(lp[j] == Approx(reference_log_prob(prior.logits().value.col(0), b, j)).epsilon(1e-12));
}

TEST_CASE("BernoulliPrior backward matches central finite differences", "[bernoulli_prior]") {
  const Index units = 5, batch = 3;
  BernoulliPrior<double> prior(units);
  prior.logits().value.col(0) = test::random_matrix<double>(units, 1, 4, 1.5).col(0);
  // Relaxed samples in (0, 1), so that dL/db is defined and checkable.
  const Matrix<double> b = test::random_matrix<double>(units, batch, 5).array().logistic().matrix();
  const RowVector<double> w = test::random_matrix<double>(1, batch, 6).row(0);
  const auto loss = [&](const Matrix<double>& values) {
    Context<double> ctx(Mode::eval);
    return (prior.forward(values, ctx).array() * w.array()).sum();
  };
  Context<double> ctx;
  prior.forward(b, ctx);
  prior.logits().grad.setConstant(0.5);  // backward accumulates
  const Matrix<double> db = prior.backward(w);
  const Matrix<double> dc = prior.logits().grad.array() - 0.5;
  const Matrix<double> logits = prior.logits().value;
  const double worst_logits = test::max_central_difference_error(logits, dc, [&](const Matrix<double>& probe) {
    prior.logits().value = probe;
    return loss(b);
  });
  prior.logits().value = logits;
  CHECK(std::max(test::max_central_difference_error(b, db, loss), worst_logits) < 1e-8);
}

TEST_CASE("BernoulliPrior refuses bad sizes, shapes, samples and weights", "[bernoulli_prior]") {
  REQUIRE_THROWS_MESSAGE(BernoulliPrior<float>(0), "BernoulliPrior ('prior'): unit count must be positive");
  BernoulliPrior<float> prior(3);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(prior.backward(RowVector<float>::Zero(2)),
                         "BernoulliPrior::backward ('prior'): needs a forward in Mode::train first");
  REQUIRE_THROWS_MESSAGE(prior.forward(Matrix<float>::Zero(2, 2), ctx), "BernoulliPrior::forward ('prior'): input");
  Matrix<float> b = Matrix<float>::Zero(3, 2);
  b(1, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(prior.forward(b, ctx), "non-finite sample");
  b(1, 1) = 1;
  prior.forward(b, ctx);
  REQUIRE_THROWS_MESSAGE(prior.backward(RowVector<float>::Zero(3)), "BernoulliPrior::backward ('prior'): weight");
  RowVector<float> w = RowVector<float>::Zero(2);
  w[0] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_MESSAGE(prior.backward(w), "non-finite weight");
  prior.logits().value(0, 0) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(prior.forward(b, ctx), "the prior logits are not finite");
}
