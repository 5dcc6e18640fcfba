// Tests for include/stoch/detail/sampling.hpp: the uniform conversions are open at both ends, and the
// vectorisable sin/cos of 2 pi t matches std::sin and std::cos.
#include "stoch/detail/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <type_traits>

#include "support/catch.hpp"

using namespace stoch;

TEST_CASE("Uniform conversions are open at both ends, even for all-zero and all-one words", "[sampling]") {
  const std::uint32_t zeros[2] = {0u, 0u}, ones[2] = {0xFFFFFFFFu, 0xFFFFFFFFu};
  CHECK(internal::UniformBits<float>::convert(zeros) == 0x1.0p-24f);
  CHECK(internal::UniformBits<float>::convert(ones) == 1.0f - 0x1.0p-24f);
  CHECK(internal::UniformBits<float>::convert(ones) < 1.0f);
  CHECK(internal::UniformBits<double>::convert(zeros) == 0x1.0p-53);
  CHECK(internal::UniformBits<double>::convert(ones) == 1.0 - 0x1.0p-53);
  CHECK(internal::UniformBits<double>::convert(ones) < 1.0);
  CHECK(std::isfinite(std::log(internal::UniformBits<float>::convert(zeros))));
  CHECK(std::isfinite(std::log1p(-internal::UniformBits<float>::convert(ones))));
}

TEMPLATE_TEST_CASE("The vectorisable sin/cos of 2 pi t matches std::sin/std::cos", "[sampling]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 1e-6 : 1e-15;
  double worst = 0;
  for (int i = 1; i < 100000; ++i) {
    const T t = T(i) / T(100000);
    T s, c;
    internal::sincos_2pi(t, s, c);
    const double angle = 2 * std::numbers::pi * double(t);
    worst = std::max({worst, std::abs(double(s) - std::sin(angle)), std::abs(double(c) - std::cos(angle))});
  }
  CHECK(worst < tolerance);
}
