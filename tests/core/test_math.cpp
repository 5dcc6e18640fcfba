// Tests for include/stoch/core/math.hpp: the scalar and array sigmoids agree and are stable at large
// inputs; softplus and logit against their definitions; the noisy rectifier's expected outputs (Sec. 2.1,
// Proposition 1(b)) against numerical integration of E[max(0, mu + z)]; the thresholded evaluation output
// against long-double references; and indicator_above (1[a > t], 0 at t and for NaN). The packet erfc and
// append_above under it: tests/detail/test_packet_math.cpp.
#include "stoch/core/math.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "support/catch.hpp"

using namespace stoch;

namespace {

/// The integral of f over [lo, hi], composite Simpson with n (even) intervals.
double simpson(const std::function<double(double)>& f, double lo, double hi, int n = 20000) {
  const double h = (hi - lo) / n;
  double sum = f(lo) + f(hi);
  for (int i = 1; i < n; ++i) sum += f(lo + i * h) * (i % 2 == 1 ? 4 : 2);
  return sum * h / 3;
}

constexpr double kPi = 3.14159265358979323846;

/// E[max(0, mu + z)], z ~ N(0, sigma^2), in long double.
long double exact_expected_rectified_gaussian(long double mu, long double sigma) {
  const long double u = mu / sigma;
  return mu * 0.5L * std::erfc(-u / std::sqrt(2.0L)) + sigma * std::exp(-0.5L * u * u) / std::sqrt(2.0L * kPi);
}

/// Distance in units in the last place between two non-negative finite floats.
std::int64_t ulps_apart(float a, float b) {
  return std::abs(static_cast<std::int64_t>(std::bit_cast<std::int32_t>(a)) -
                  static_cast<std::int64_t>(std::bit_cast<std::int32_t>(b)));
}

}  // namespace

TEMPLATE_TEST_CASE("sigmoid: scalar and array forms agree and stay in [0, 1] at any input", "[math]", float, double) {
  using T = TestType;
  Eigen::Array<T, 7, 1> a;
  a << T(-1000), T(-30), T(-1), T(0), T(0.5), T(30), T(1000);
  const Eigen::Array<T, 7, 1> p = sigmoid(a);
  for (Index i = 0; i < a.size(); ++i) {
    CHECK(p(i) == Approx(static_cast<double>(sigmoid(a(i)))).epsilon(1e-6).margin(1e-30));
    CHECK(std::isfinite(sigmoid(a(i))));
    CHECK((sigmoid(a(i)) >= T(0) && sigmoid(a(i)) <= T(1)));
  }
  CHECK(sigmoid(T(0)) == T(0.5));
  CHECK(sigmoid(T(-1)) == Approx(1 / (1 + std::exp(1.0))).epsilon(1e-6));
}

TEST_CASE("softplus is log(1 + exp(a)) without overflow, and logit inverts the sigmoid", "[math]") {
  for (const double a : {-40.0, -3.0, -1e-3, 0.0, 0.7, 5.0, 30.0})
    CHECK(softplus(a) == Approx(std::log1p(std::exp(a))).epsilon(1e-14));
  CHECK(softplus(1000.0) == 1000.0);
  CHECK(softplus(-1000.0) == 0.0);
  CHECK(softplus(800.0f) == 800.0f);
  for (const double a : {-3.0, 2.0, 11.0}) CHECK(softplus(a) - softplus(-a) == Approx(a).epsilon(1e-14));
  for (const double a : {-20.0, -2.5, 0.0, 1.0, 15.0}) CHECK(logit(sigmoid(a)) == Approx(a).epsilon(1e-9).margin(1e-12));
  CHECK(logit(0.5) == 0.0);
  CHECK(logit(0.0) == -std::numeric_limits<double>::infinity());
}

TEST_CASE("expected_rectified_gaussian is E[max(0, mu + z)], z ~ N(0, sigma^2)", "[math]") {
  for (const double sigma : {0.5, 1.0, 2.5})
    for (const double mu : {-4.0, -1.0, 0.0, 0.3, 2.0, 6.0}) {
      const double integral = simpson(
          [&](double z) { return std::max(0.0, mu + z) * std::exp(-0.5 * z * z / (sigma * sigma)) / (sigma * std::sqrt(2 * kPi)); },
          -12 * sigma, 12 * sigma);
      INFO("mu " << mu << ", sigma " << sigma);
      CHECK(expected_rectified_gaussian(mu, sigma) == Approx(integral).epsilon(1e-7).margin(1e-10));
    }
  CHECK(expected_rectified_gaussian(1.5, 0.0) == 1.5);  // no noise: the rectifier itself
  CHECK(expected_rectified_gaussian(-1.5, 0.0) == 0.0);
  CHECK(expected_rectified_gaussian(2.0f, 1.0f) == Approx(expected_rectified_gaussian(2.0, 1.0)).epsilon(1e-6));
}

TEST_CASE("expected_rectified_logistic is s softplus(mu / s) = E[max(0, mu + z)] for logistic z", "[math]") {
  for (const double s : {0.5, 1.0, 2.0})
    for (const double mu : {-3.0, 0.0, 1.2, 5.0}) {
      const double integral = simpson(
          [&](double z) {
            const double e = std::exp(-std::abs(z) / s);
            return std::max(0.0, mu + z) * e / (s * (1 + e) * (1 + e));  // the logistic density of scale s
          },
          -60 * s, 60 * s);
      INFO("mu " << mu << ", s " << s);
      CHECK(expected_rectified_logistic(mu, s) == Approx(integral).epsilon(1e-7).margin(1e-10));
    }
  CHECK(expected_rectified_logistic(0.8, 1.0) == softplus(0.8));  // Proposition 1(b)
  CHECK(expected_rectified_logistic(-0.8, 0.0) == 0.0);
}

TEST_CASE("thresholded_expected_rectified_gaussian in float is within one ulp of the exact value", "[math]") {
  // Every packet length and position: 1,281 scores per sigma, all open (threshold below them all).
  for (const float sigma : {0.25f, 1.0f, 3.5f}) {
    Matrix<float> mu(61, 21);
    for (Index k = 0; k < mu.size(); ++k) mu.data()[k] = sigma * (-8.0f + static_cast<float>(k) / 64.0f);
    Matrix<float> h;
    ExpectedOutputScratch scratch;
    thresholded_expected_rectified_gaussian<float>(mu, -1e30f, sigma, h, scratch);
    REQUIRE(h.rows() == 61);
    REQUIRE(h.cols() == 21);
    std::int64_t worst = 0;
    for (Index k = 0; k < mu.size(); ++k) {
      const auto exact = static_cast<float>(exact_expected_rectified_gaussian(mu.data()[k], sigma));
      worst = std::max(worst, ulps_apart(h.data()[k], exact));
    }
    INFO("sigma " << sigma);
    CHECK(worst <= 1);
  }
}

TEMPLATE_TEST_CASE("thresholded_expected_rectified_gaussian: closed entries are 0, open ones the expected output",
                   "[math]", float, double) {
  using T = TestType;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Matrix<T> mu(3, 4);
  mu << T(-2), T(0.5), nan, T(3), T(-0.4), T(-0.5), T(1e-3), T(-7), T(40), T(-0.6), T(0), T(2);
  ExpectedOutputScratch scratch;
  Matrix<T> h;
  for (const T sigma : {T(1.5), T(0)}) {
    thresholded_expected_rectified_gaussian<T>(mu, T(-0.5), sigma, h, scratch);
    for (Index k = 0; k < mu.size(); ++k) {
      const T m = mu.data()[k];
      INFO("mu " << m << ", sigma " << sigma);
      if (!(m > T(-0.5))) {
        CHECK(h.data()[k] == T(0));  // at the threshold itself, below it, and NaN
      } else if (std::is_same_v<T, double> || sigma == T(0)) {
        CHECK(h.data()[k] == expected_rectified_gaussian(m, sigma));  // the scalar function itself
      } else {
        CHECK(h.data()[k] == Approx(expected_rectified_gaussian(static_cast<double>(m), 1.5)).epsilon(1e-6));
      }
    }
  }
}

TEMPLATE_TEST_CASE("indicator_above is 1[a > t]: 0 at t itself, below it and for NaN", "[math]", float, double) {
  using T = TestType;
  Matrix<T> a(2, 4);
  a << T(-1), T(0.25), std::numeric_limits<T>::quiet_NaN(), T(0.2500001), T(7), -std::numeric_limits<T>::infinity(),
      std::numeric_limits<T>::infinity(), T(0.24);
  Matrix<T> expected(2, 4);
  expected << T(0), T(0), T(0), T(1), T(1), T(0), T(1), T(0);
  const Matrix<T> h = indicator_above(a.array(), T(0.25)).matrix();
  CHECK(h == expected);
  const Eigen::Array<T, Eigen::Dynamic, 1> column = indicator_above(a.col(3).array(), T(0.25));
  CHECK(column.matrix() == expected.col(3));
}
