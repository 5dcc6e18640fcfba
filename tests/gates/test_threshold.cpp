// Test-time thresholds (App. A.3): exact calibration (ties included), the bounded-memory histogram, and a
// calibrated gate hitting its target fraction of ones on fresh data.
#include <cmath>
#include <cstdio>
#include <vector>

#include "stoch/gates/straight_through.hpp"
#include "stoch/gates/threshold.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {
template <class T>
double fraction_above(const std::vector<T>& scores, T t) {
  double above = 0;
  for (const T s : scores) above += s > t;
  return above / static_cast<double>(scores.size());
}
}  // namespace

TEMPLATE_TEST_CASE("calibrate_threshold hits the target fraction on distinct scores", "[gates]", float, double) {
  using T = TestType;
  const Matrix<T> m = test::random_matrix<T>(1, 1000, 3);
  const std::vector<T> scores(m.data(), m.data() + m.size());
  for (const T target : {T(0), T(0.1), T(0.25), T(0.5), T(0.937), T(1)}) {
    const T t = calibrate_threshold<T>(scores, target);
    CHECK(fraction_above(scores, t) == Approx(std::round(double(target) * 1000) / 1000).margin(1e-12));
  }
}

TEST_CASE("calibrate_threshold with ties picks the closest achievable fraction", "[gates]") {
  const std::vector<double> scores{0, 0, 0, 1, 1, 1, 1, 2, 2, 3};  // achievable: 0, 0.1, 0.3, 0.7, 1
  CHECK(fraction_above(scores, calibrate_threshold<double>(scores, 0.25)) == Approx(0.3));
  CHECK(fraction_above(scores, calibrate_threshold<double>(scores, 0.5)) == Approx(0.3));  // tie 0.3/0.7: sparser
  CHECK(fraction_above(scores, calibrate_threshold<double>(scores, 0.55)) == Approx(0.7));
  CHECK(fraction_above(scores, calibrate_threshold<double>(scores, 0.04)) == Approx(0.0));
  CHECK(fraction_above(scores, calibrate_threshold<double>(scores, 0.96)) == Approx(1.0));
  const double t = calibrate_threshold<double>(scores, 0.3);
  CHECK(t > 1.0);  // half-way between the kept and the dropped value
  CHECK(t < 2.0);
  const std::vector<double> same(5, 0.5);
  CHECK(fraction_above(same, calibrate_threshold<double>(same, 0.4)) == 0.0);
  CHECK(fraction_above(same, calibrate_threshold<double>(same, 0.6)) == 1.0);
  REQUIRE_THROWS_MESSAGE(calibrate_threshold<double>(std::vector<double>{}, 0.1), "no scores");
  REQUIRE_THROWS_MESSAGE(calibrate_threshold<double>(scores, 1.5), "target_fraction");
  REQUIRE_THROWS_MESSAGE(calibrate_threshold<double>(std::vector<double>{0.1, NAN}, 0.1), "NaN");
}

TEST_CASE("ScoreHistogram calibrates over many batches to within one bin of the exact answer", "[gates]") {
  ScoreHistogram<float> histogram(0.0f, 1.0f, 1 << 12);
  std::vector<float> all;
  for (int batch = 0; batch < 20; ++batch) {
    const Matrix<float> scores = test::random_matrix<float>(50, 32, 100 + batch).array().logistic().matrix();
    histogram.add(scores);
    all.insert(all.end(), scores.data(), scores.data() + scores.size());
  }
  CHECK(histogram.count() == 20 * 50 * 32);
  const float t = histogram.threshold_for(0.1f);
  const double exact_t = calibrate_threshold<float>(all, 0.1f);
  std::printf("histogram threshold %.5f (exact %.5f, bin width %.5f); fraction above %.5f (target 0.1)\n", t,
              exact_t, 1.0 / 4096, fraction_above(all, t));
  CHECK(std::abs(t - exact_t) <= 1.0 / 4096 + 1e-6);
  // The error in fraction is at most the mass of one bin around t.
  const double bin_mass = fraction_above(all, t - 1.0f / 4096) - fraction_above(all, t);
  CHECK(std::abs(fraction_above(all, t) - 0.1) <= bin_mass + 1e-12);
  CHECK(histogram.threshold_for(0.0f) == 1.0f);
  histogram.clear();
  REQUIRE_THROWS_MESSAGE(histogram.threshold_for(0.1f), "no scores");
  REQUIRE_THROWS_MESSAGE(ScoreHistogram<float>(1.0f, 1.0f), "lower < upper");
  REQUIRE_THROWS_MESSAGE(ScoreHistogram<float>(0.0f, 1.0f, 0), "bins");
}

TEST_CASE("a gate calibrated on validation scores keeps the target fraction of ones on fresh data", "[gates]") {
  StraightThrough<float> gate(200);
  Context<float> eval(Mode::eval);
  ScoreHistogram<float> histogram;
  for (int batch = 0; batch < 10; ++batch) {
    gate.forward(test::random_matrix<float>(200, 32, 200 + batch, 2.0f), eval);
    histogram.add(gate.scores());
  }
  gate.set_threshold(histogram.threshold_for(0.1f));
  CHECK(gate.threshold() > 0.5f);  // the default 0.5 would open about half of the gates
  // Fresh data: 200 x 320 Bernoulli-like indicators; the fraction is 0.1 up to sampling noise.
  double ones = 0;
  const double n = 200.0 * 32 * 10;
  for (int batch = 0; batch < 10; ++batch) ones += gate.forward(test::random_matrix<float>(200, 32, 900 + batch, 2.0f), eval).sum();
  const double fraction = ones / n, se = std::sqrt(0.1 * 0.9 / n);
  std::printf("calibrated gate on fresh data: fraction of ones %.5f (target 0.1, se %.5f)\n", fraction, se);
  CHECK(std::abs(fraction - 0.1) < 5 * se);
}

TEST_CASE("calibrate_threshold on a gate's score matrix", "[gates]") {
  StraightThrough<double> gate(50);
  Context<double> eval(Mode::eval);
  gate.forward(test::random_matrix<double>(50, 40, 7), eval);
  gate.set_threshold(calibrate_threshold(gate.scores(), 0.2));
  CHECK(gate.forward(test::random_matrix<double>(50, 40, 7), eval).mean() == Approx(0.2));
}
