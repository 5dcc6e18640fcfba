// not part of the public API; included by stoch/core/math.hpp.
//
// stoch — packet math of the noisy rectifier's evaluation output (Sec. 2.1, App. A.3): erfc and the expected
// rectified Gaussian on whole Eigen packets of doubles, and the vector compare that lists the open scores.
#pragma once

#include <cmath>
#include <cstdint>
#include <iterator>
#include <numbers>

#include <Eigen/Core>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "stoch/core/matrix.hpp"
#include "stoch/detail/bit_sets.hpp"

// GCC 12's AVX-512 min, max and round intrinsics, which Eigen's packet exp uses, trip -Wuninitialized where they
// are inlined (GCC bug 105593: their _mm512_undefined_pd); the warning is about the intrinsics, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace stoch::internal {

/// Chebyshev coefficients c_k of log(exp(z^2) erfc(z) / t) in x = 2t - 1, t = 2 / (2 + z), for z >= 0 (the change
/// of variable of Numerical Recipes' erfccheb: the function is smooth and bounded up to z = infinity, x = -1).
/// Computed by scripts/erfc-chebyshev, which also measures the relative error of perfc_nonnegative's formula with
/// these 20 terms: 4.1e-13 at most for z in [0, 10].
inline constexpr double kErfcChebyshev[] = {
    -0.6513268598908539,    0.6419697923564888,    0.0194764732041866,     -0.009561514786808577,
    -0.0009465953444828812, 0.0003668394978541059, 4.252332480526172e-05,  -2.027857811116862e-05,
    -1.6242900051643971e-06, 1.3036558352760852e-06, 1.5626443708449678e-08, -8.523809858634879e-08,
    6.5290561776509826e-09, 5.0593432152079565e-09, -9.913647819326243e-10, -2.2736354465813235e-10,
    9.646625165338207e-11,  2.3958751649288956e-12, -6.886810566264501e-12, 8.936601458842119e-13,
};

/// erfc(z) for z >= 0 (+infinity included), in place on B Eigen packets of doubles:
/// t exp(-z^2 + sum_k c_k T_k(2t - 1)), t = 2 / (2 + z), the sum by Clenshaw's recurrence. The B recurrences are
/// interleaved: one alone is a chain of dependent operations whose latency, not the arithmetic, bounds it.
template <int B, class P>
void perfc_nonnegative(P (&z)[B]) {
  namespace ei = Eigen::internal;
  const P two = ei::pset1<P>(2.0);
  P t[B], x[B], b1[B], b2[B];
  for (int j = 0; j < B; ++j) {
    t[j] = ei::pdiv(two, ei::padd(two, z[j]));
    x[j] = ei::psub(ei::pmul(two, t[j]), ei::pset1<P>(1.0));
    b1[j] = b2[j] = ei::pset1<P>(0.0);
  }
  for (std::size_t k = std::size(kErfcChebyshev) - 1; k >= 1; --k) {
    const P c = ei::pset1<P>(kErfcChebyshev[k]);
    for (int j = 0; j < B; ++j) {
      const P b = ei::padd(ei::psub(ei::pmul(ei::padd(x[j], x[j]), b1[j]), b2[j]), c);
      b2[j] = b1[j];
      b1[j] = b;
    }
  }
  for (int j = 0; j < B; ++j) {
    const P sum = ei::padd(ei::psub(ei::pmul(x[j], b1[j]), b2[j]), ei::pset1<P>(kErfcChebyshev[0]));
    z[j] = ei::pmul(t[j], ei::pexp(ei::psub(sum, ei::pmul(z[j], z[j]))));
  }
}

/// expected_rectified_gaussian(mu, sigma), sigma > 0, in place on B Eigen packets of doubles: mu Phi(u) +
/// sigma phi(u), u = mu / sigma, with Phi(u) = erfc(|u| / sqrt 2) / 2 for u < 0 and 1 minus that for u >= 0 (no
/// cancellation).
template <int B, class P>
void pexpected_rectified_gaussian(P (&mu)[B], double sigma) {
  namespace ei = Eigen::internal;
  const P scale = ei::pset1<P>(sigma);
  P u[B], half_tail[B];
  for (int j = 0; j < B; ++j) {
    u[j] = ei::pdiv(mu[j], scale);
    half_tail[j] = ei::pmul(ei::pabs(u[j]), ei::pset1<P>(1.0 / std::numbers::sqrt2));
  }
  perfc_nonnegative(half_tail);
  for (int j = 0; j < B; ++j) {
    half_tail[j] = ei::pmul(ei::pset1<P>(0.5), half_tail[j]);
    const P cdf = ei::pselect(ei::pcmp_lt(u[j], ei::pset1<P>(0.0)), half_tail[j],
                              ei::psub(ei::pset1<P>(1.0), half_tail[j]));
    const P density = ei::pmul(ei::pset1<P>(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2),
                               ei::pexp(ei::pmul(ei::pset1<P>(-0.5), ei::pmul(u[j], u[j]))));
    mu[j] = ei::padd(ei::pmul(mu[j], cdf), ei::pmul(scale, density));
  }
}

/// Appends to `positions` the indices first + i (i < count <= 16) of the scores values[i] > threshold, increasing;
/// returns how many (internal::append_set_lanes: 16 entries of slack). The scores past `count` are not read (a
/// masked load with AVX-512). The compare is one vector instruction with AVX-512, a loop that compilers vectorise
/// elsewhere, instead of a scalar compare-and-append per score (docs/performance-notes.md#packet-erfc).
inline std::int32_t append_above(const float* values, std::int32_t first, std::int32_t count, float threshold,
                                 std::int32_t* positions) noexcept {
#if defined(__AVX512F__)
  const auto present = static_cast<__mmask16>((1u << count) - 1u);
  const std::uint32_t open = _mm512_mask_cmp_ps_mask(present, _mm512_maskz_loadu_ps(present, values),
                                                     _mm512_set1_ps(threshold), _CMP_GT_OQ);
#else
  std::uint32_t open = 0;
  for (std::int32_t i = 0; i < count; ++i) open |= static_cast<std::uint32_t>(values[i] > threshold) << i;
#endif
  return append_set_lanes(open, first, positions);
}

}  // namespace stoch::internal

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
