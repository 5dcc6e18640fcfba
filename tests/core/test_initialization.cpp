// Tests for include/stoch/core/initialization.hpp: Glorot-uniform weights lie in [-r, r] with
// r = sqrt(6 / (fan_in + fan_out)), have the uniform's mean and variance (within 5 standard errors), and
// the same generator state gives the same weights.
#include "stoch/core/initialization.hpp"

#include <cmath>

#include "support/catch.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("glorot_uniform fills [-r, r] uniformly, r = sqrt(6 / (fan_in + fan_out))", "[initialization]",
                   float, double) {
  using T = TestType;
  const Index fan_in = 784, fan_out = 400;
  Generator rng(21);
  Matrix<T> w(fan_out, fan_in);
  glorot_uniform<T>(rng, w, fan_in, fan_out);
  const double r = std::sqrt(6.0 / (fan_in + fan_out));
  const double n = static_cast<double>(w.size());
  CHECK(w.cwiseAbs().maxCoeff() <= static_cast<T>(r));
  CHECK(w.cwiseAbs().maxCoeff() > static_cast<T>(0.999 * r));  // the range is used to its ends
  // Uniform on [-r, r]: mean 0, variance r^2 / 3, fourth central moment r^4 / 5.
  const double mean = w.template cast<double>().mean();
  const double variance = w.template cast<double>().array().square().mean();
  const double mean_se = std::sqrt(r * r / 3 / n);
  const double variance_se = std::sqrt((std::pow(r, 4) / 5 - std::pow(r * r / 3, 2)) / n);
  CHECK(std::abs(mean) < 5 * mean_se);
  CHECK(std::abs(variance - r * r / 3) < 5 * variance_se);
}

TEST_CASE("glorot_uniform: the same generator state gives the same weights", "[initialization]") {
  Generator a(5), b(5), c(6);
  Matrix<float> wa(30, 20), wb(30, 20), wc(30, 20);
  glorot_uniform<float>(a, wa, 20, 30);
  glorot_uniform<float>(b, wb, 20, 30);
  glorot_uniform<float>(c, wc, 20, 30);
  CHECK(wa == wb);
  CHECK(wa != wc);
}
