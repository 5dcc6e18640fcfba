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

#include "stoch/core/matrix.hpp"
#include "stoch/detail/packet_math.hpp"

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

/// Scratch of thresholded_expected_rectified_gaussian, kept by the caller between calls to spare allocations.
struct ExpectedOutputScratch {
  std::vector<std::int32_t> positions;  // of the open entries, increasing (internal::kLaneSlack of slack)
  std::vector<double> values;           // their scores, then their outputs (padded to whole packets)
};

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
