// Tests for include/stoch/layers/softmax_cross_entropy.hpp: the loss against its definition, the gradient
// of the mean loss against central finite differences, stability at large logits, count_errors, and the
// errors that name a bad label, a label count, a non-finite loss and a backward before forward.
#include "stoch/layers/softmax_cross_entropy.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "layers/loss_checks.hpp"
#include "support/catch.hpp"
#include "support/central_difference.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

/// -log softmax(z)[label], straight from the definition (double, no shift: only for moderate logits).
double reference_loss(const Matrix<double>& logits, Index column, int label) {
  double sum = 0;
  for (Index c = 0; c < logits.rows(); ++c) sum += std::exp(logits(c, column));
  return -std::log(std::exp(logits(label, column)) / sum);
}

}  // namespace

TEST_CASE("SoftmaxCrossEntropy gives -log softmax per example and their mean", "[softmax_cross_entropy]") {
  const Matrix<double> logits = test::random_matrix<double>(4, 5, 1, 2.0);
  const std::vector<int> labels = {0, 3, 1, 1, 2};
  SoftmaxCrossEntropy<double> loss(4);
  Context<double> ctx;
  const double mean = loss.forward(logits, labels, ctx);
  const test::ExampleLossSums sums = test::check_example_losses(
      ctx, 5, [&](Index j) { return reference_loss(logits, j, labels[static_cast<std::size_t>(j)]); });
  CHECK(mean == Approx(sums.expected / 5).epsilon(1e-12));
  for (Index j = 0; j < 5; ++j) CHECK(loss.probabilities().col(j).sum() == Approx(1.0).epsilon(1e-12));
}

TEST_CASE("SoftmaxCrossEntropy backward is the gradient of the mean loss", "[softmax_cross_entropy]") {
  const Matrix<double> logits = test::random_matrix<double>(10, 6, 2, 3.0);
  const std::vector<int> labels = {9, 0, 4, 4, 7, 2};
  SoftmaxCrossEntropy<double> loss(10);
  Context<double> ctx;
  loss.forward(logits, labels, ctx);
  const Matrix<double> analytic = loss.backward();
  const double worst = test::max_central_difference_error(
      logits, analytic, [&](const Matrix<double>& probe) { return loss.forward(probe, labels, ctx); });
  CHECK(worst < 1e-9);
  // Each column of (softmax - onehot) / batch sums to zero.
  CHECK(analytic.colwise().sum().cwiseAbs().maxCoeff() < 1e-15);
}

TEMPLATE_TEST_CASE("SoftmaxCrossEntropy is exact and finite at large logits", "[softmax_cross_entropy]", float,
                   double) {
  using T = TestType;
  Matrix<T> logits(3, 2);
  logits << T(1000), T(-1000), T(0), T(-1000), T(-1000), T(1000);
  const std::vector<int> labels = {0, 0};  // column 0: the label dominates; column 1: it is 2000 below the max
  SoftmaxCrossEntropy<T> loss(3);
  Context<T> ctx;
  loss.forward(logits, labels, ctx);
  CHECK(ctx.example_loss(0) == Approx(0.0).margin(1e-6));
  CHECK(ctx.example_loss(1) == Approx(2000.0).epsilon(1e-6));
  CHECK(loss.backward().allFinite());
  // Adding a constant to a column changes nothing (the shift by the column max).
  Matrix<T> shifted = logits;
  shifted.col(1).array() += T(500);
  const RowVector<T> before = ctx.example_loss;
  loss.forward(shifted, labels, ctx);
  CHECK(ctx.example_loss(1) == Approx(static_cast<double>(before(1))).epsilon(1e-6));
}

TEST_CASE("SoftmaxCrossEntropy refuses bad input, naming it", "[softmax_cross_entropy]") {
  REQUIRE_THROWS_MESSAGE(SoftmaxCrossEntropy<float>(1), "needs at least 2 classes, got 1");
  SoftmaxCrossEntropy<float> loss(3);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(loss.backward(), "SoftmaxCrossEntropy::backward: needs a forward in Mode::train first");
  const Matrix<float> logits = Matrix<float>::Zero(3, 2);
  const std::vector<int> two = {0, 1}, one = {0}, out_of_range = {0, 3}, negative = {-1, 0};
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, one, ctx), "1 labels for a batch of 2");
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, out_of_range, ctx), "label 3 of example 1 is out of range [0, 3)");
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, negative, ctx), "label -1 of example 0 is out of range [0, 3)");
  REQUIRE_THROWS_MESSAGE(loss.forward(Matrix<float>::Zero(4, 2), two, ctx),
                         "SoftmaxCrossEntropy::forward: logits: shape mismatch, expected 3 rows");
  Matrix<float> bad = logits;
  bad(2, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(loss.forward(bad, two, ctx), "the loss of example 1 is not finite");
  CHECK(loss.forward(logits, two, ctx) == Approx(std::log(3.0)));
}

TEST_CASE("count_errors counts the columns whose arg-max is not the label", "[softmax_cross_entropy]") {
  Matrix<float> scores(3, 4);
  scores << 0.9f, 0.1f, 0.2f, 0.5f,  //
      0.05f, 0.8f, 0.2f, 0.5f,       //
      0.05f, 0.1f, 0.6f, 0.0f;
  const std::vector<int> labels = {0, 1, 1, 1};  // column 2 is wrong; column 3 ties 0 and 1: the first wins
  CHECK(count_errors<float>(scores, labels) == 2);
  const std::vector<int> right = {0, 1, 2, 0};
  CHECK(count_errors<float>(scores, right) == 0);
  const std::vector<int> short_labels = {0, 1};
  REQUIRE_THROWS_MESSAGE(count_errors<float>(scores, short_labels), "count_errors: labels: shape mismatch");
}
