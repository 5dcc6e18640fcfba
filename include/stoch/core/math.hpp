// stoch — scalar and array math shared by the layers (sigmoid, softplus, logit, the noisy rectifier's expected
// output).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <cmath>
#include <concepts>
#include <iterator>
#include <numbers>
#include <type_traits>
#include <vector>

#include "stoch/detail/bit_sets.hpp"
#include "stoch/core/matrix.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace stoch {

/// Numerically stable logistic sigmoid of an Eigen array expression: sigm(a) = 1 / (1 + exp(-a)).
/// Eigen's vectorised `logistic()` clamps internally and never overflows.
template <class Derived>
auto sigmoid(const Eigen::ArrayBase<Derived>& a) {
  return a.logistic();
}

/// 1[a > threshold] coefficient-wise (0 for NaN), in a's scalar type. Eigen 3.4 converts a comparison's bools to
/// float or double one coefficient at a time; a select between constants vectorises, and gives the same 0s and
/// 1s. Why: docs/performance-notes.md#indicator-select.
template <class Derived>
auto indicator_above(const Eigen::ArrayBase<Derived>& a, typename Derived::Scalar threshold) {
  using Scalar = typename Derived::Scalar;
  return (a > threshold).select(Derived::PlainObject::Constant(a.rows(), a.cols(), Scalar(1)), Scalar(0));
}

template <std::floating_point T>
T sigmoid(T a) {
  return a >= T(0) ? T(1) / (T(1) + std::exp(-a)) : std::exp(a) / (T(1) + std::exp(a));
}

/// softplus(a) = log(1 + exp(a)), Proposition 1's E[h] of the logistic noisy rectifier.
template <std::floating_point T>
T softplus(T a) {
  return a > T(0) ? a + std::log1p(std::exp(-a)) : std::log1p(std::exp(a));
}

/// E[max(0, mu + z)] for z ~ N(0, sigma^2): mu Phi(mu/sigma) + sigma phi(mu/sigma); max(0, mu) when sigma = 0.
/// The deterministic (mean-field) counterpart of the Gaussian noisy rectifier (Sec. 2.1).
template <std::floating_point T>
T expected_rectified_gaussian(T mu, T sigma) {
  if (!(sigma > T(0))) return mu > T(0) ? mu : T(0);
  const T u = mu / sigma;
  const T phi = std::exp(T(-0.5) * u * u) / std::sqrt(T(2) * std::numbers::pi_v<T>);
  return mu * T(0.5) * std::erfc(-u / std::numbers::sqrt2_v<T>) + sigma * phi;
}

// GCC 12's AVX-512 min, max and round intrinsics, which Eigen's packet exp uses, trip -Wuninitialized where they
// are inlined (GCC bug 105593: their _mm512_undefined_pd); the warning is about the intrinsics, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace internal {

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

}  // namespace internal

/// Scratch of thresholded_expected_rectified_gaussian, kept by the caller between calls to spare allocations.
struct ExpectedOutputScratch {
  std::vector<std::int32_t> positions;  // of the open entries, increasing (internal::kLaneSlack of slack)
  std::vector<double> values;           // their scores, then their outputs (padded to whole packets)
};

namespace internal {

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

}  // namespace internal

/// The noisy rectifier's evaluation output (Sec. 2.1, with App. A.3's test-time threshold), entry by entry:
/// h = expected_rectified_gaussian(mu, sigma) where mu > threshold, 0 elsewhere (NaN included); h takes mu's shape.
/// float: the open entries are gathered and computed by packets of doubles (internal::perfc_nonnegative, relative
/// error near 1e-12 before the rounding to float, so within one float ulp of the exact value), instead of one
/// std::erfc and one std::exp per open entry (docs/performance-notes.md#packet-erfc). double: the scalar
/// function, whose std::erfc is more accurate than the packet form.
template <std::floating_point T>
void thresholded_expected_rectified_gaussian(const Matrix<T>& mu, T threshold, T sigma, Matrix<T>& h,
                                             ExpectedOutputScratch& scratch) {
  h.setZero(mu.rows(), mu.cols());
  const Index n = mu.size();
  const T* m = mu.data();
  T* out = h.data();
  if (!std::is_same_v<T, float> || !(sigma > T(0)) || n > Index(std::numeric_limits<std::int32_t>::max() - 16)) {
    for (Index k = 0; k < n; ++k)
      if (m[k] > threshold) out[k] = expected_rectified_gaussian(m[k], sigma);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    // Positions of the open scores, then their values in a contiguous buffer: the packets then load and store
    // whole lines (a packet assembled from scalar stores would stall on the store forwarding).
    std::vector<std::int32_t>& positions = scratch.positions;
    positions.resize(static_cast<std::size_t>(n) + internal::kLaneSlack);
    std::int32_t count = 0;
    for (std::int32_t k = 0; k < n; k += 16)
      count += internal::append_above(m + k, k, static_cast<std::int32_t>(std::min<Index>(16, n - k)), threshold,
                                      positions.data() + count);
    // Blocks of 4 packets: 4 interleaved evaluations (see perfc_nonnegative).
    using P = typename Eigen::internal::packet_traits<double>::type;
    constexpr int kBlock = 4;
    constexpr Index kBlockValues = kBlock * Eigen::internal::packet_traits<double>::size;
    std::vector<double>& values = scratch.values;
    values.assign(static_cast<std::size_t>((count + kBlockValues - 1) / kBlockValues * kBlockValues), 0.0);
    for (std::int32_t i = 0; i < count; ++i)
      values[static_cast<std::size_t>(i)] = m[positions[static_cast<std::size_t>(i)]];
    constexpr Index kLanes = Eigen::internal::packet_traits<double>::size;
    for (std::size_t i = 0; i < values.size(); i += kBlockValues) {
      P block[kBlock];
      for (int j = 0; j < kBlock; ++j) block[j] = Eigen::internal::ploadu<P>(values.data() + i + j * kLanes);
      internal::pexpected_rectified_gaussian(block, static_cast<double>(sigma));
      for (int j = 0; j < kBlock; ++j) Eigen::internal::pstoreu(values.data() + i + j * kLanes, block[j]);
    }
    for (std::int32_t i = 0; i < count; ++i)
      out[positions[static_cast<std::size_t>(i)]] = static_cast<T>(values[static_cast<std::size_t>(i)]);
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// E[max(0, mu + z)] for logistic z of scale s: s softplus(mu / s) (Proposition 1(b) with s = 1).
template <std::floating_point T>
T expected_rectified_logistic(T mu, T scale) {
  if (!(scale > T(0))) return mu > T(0) ? mu : T(0);
  return scale * softplus(mu / scale);
}

/// logit(p) = log(p / (1 - p)), the inverse of the sigmoid.
template <std::floating_point T>
T logit(T p) {
  return std::log(p) - std::log1p(-p);
}

}  // namespace stoch
