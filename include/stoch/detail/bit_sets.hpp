// not part of the public API; included by stoch/core/math.hpp, stoch/detail/zero_skipping_product.hpp and
// stoch/detail/active_set.hpp.
//
// stoch — sets of indices kept as bit masks, and the branch-free step that turns a mask into a list of indices
// (which gates are open, which examples a unit serves, which inputs are non-zero).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace stoch::internal {

/// The width of the lane masks these helpers take and give (16 entries: one AVX-512 vector of floats, two of
/// doubles), and so how many entries append_set_lanes may write past the ones it counts: the output needs
/// this much slack.
inline constexpr int kLaneSlack = 16;

/// Writes first + i for every set bit i < 16 of `lanes`, increasing, to `out`, and returns how many.
/// With AVX-512 branch-free: the 16 indices compressed in a register and stored whole, so up to kLaneSlack
/// entries past the count are written (a compressing store straight to memory is microcoded and slow on
/// some cores). The loop over the set bits, the fallback elsewhere, mispredicts its exit about once per
/// call. Why: docs/performance-notes.md#branch-free-lists.
inline std::int32_t append_set_lanes(std::uint32_t lanes, std::int32_t first, std::int32_t* out) noexcept {
  lanes &= 0xffffu;
#if defined(__AVX512F__)
  const __m512i indices =
      _mm512_add_epi32(_mm512_set1_epi32(first), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(static_cast<__mmask16>(lanes), indices));
  return std::popcount(lanes);
#else
  std::int32_t count = 0;
  for (; lanes != 0; lanes &= lanes - 1) out[count++] = first + std::countr_zero(lanes);
  return count;
#endif
}

/// Writes kLaneSlack copies of `value` to `out` (one vector store with AVX-512).
inline void fill_lanes(std::int32_t value, std::int32_t* out) noexcept {
#if defined(__AVX512F__)
  _mm512_storeu_si512(out, _mm512_set1_epi32(value));
#else
  for (int i = 0; i < kLaneSlack; ++i) out[i] = value;
#endif
}

/// Writes the set bits of a 64-bit mask (increasing) to `out` and returns how many; kLaneSlack of slack.
inline std::int32_t append_set_bits(std::uint64_t mask, std::int32_t* out) noexcept {
  std::int32_t count = 0;
  for (std::int32_t first = 0; mask != 0; first += 16, mask >>= 16)
    count += append_set_lanes(static_cast<std::uint32_t>(mask & 0xffffu), first, out + count);
  return count;
}

/// Whether *value != 0, tested on the bits with the sign bit masked off (so -0 is zero and NaN non-zero,
/// exactly like `*value != 0`): integer tests vectorise without -ffast-math, floating-point ones did not.
template <class T>
bool is_nonzero(const T* value) noexcept {
  static_assert(std::is_floating_point_v<T> && (sizeof(T) == 4 || sizeof(T) == 8));
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits bits;
  std::memcpy(&bits, value, sizeof(T));
  return (bits & static_cast<Bits>(~Bits(0) >> 1)) != 0;
}

/// Bit k set iff values[k] != 0, k < count <= 16, one value at a time.
template <class T>
std::uint32_t scalar_nonzero_mask(const T* values, int count = kLaneSlack) noexcept {
  std::uint32_t mask = 0;
  for (int k = 0; k < count; ++k) mask |= static_cast<std::uint32_t>(is_nonzero(values + k)) << k;
  return mask;
}

/// Bit k set iff values[k] != 0, k < 16: one or two vector tests where the target has them.
inline std::uint32_t nonzero_mask(const float* values) noexcept {
#if defined(__AVX512F__)
  return _mm512_test_epi32_mask(_mm512_loadu_si512(values), _mm512_set1_epi32(0x7fffffff));
#elif defined(__AVX__)
  const __m256 zero = _mm256_setzero_ps();
  const auto low = static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(values), zero, _CMP_NEQ_UQ)));
  const auto high = static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(values + 8), zero, _CMP_NEQ_UQ)));
  return low | (high << 8);
#else
  return scalar_nonzero_mask(values);
#endif
}
inline std::uint32_t nonzero_mask(const double* values) noexcept {
#if defined(__AVX512F__)
  const __m512i magnitude = _mm512_set1_epi64(0x7fffffffffffffff);
  const auto low = static_cast<std::uint32_t>(_mm512_test_epi64_mask(_mm512_loadu_si512(values), magnitude));
  const auto high = static_cast<std::uint32_t>(_mm512_test_epi64_mask(_mm512_loadu_si512(values + 8), magnitude));
  return low | (high << 8);
#else
  return scalar_nonzero_mask(values);
#endif
}

/// Writes first + i for every non-zero values[i], i < count <= 16, increasing, to `out` and returns how many
/// (append_set_lanes: kLaneSlack of slack). A block of fewer than 16 values is tested one by one (a vector
/// load would read past its end).
template <class T>
std::int32_t append_nonzero(const T* values, std::int32_t first, int count, std::int32_t* out) noexcept {
  const std::uint32_t nonzero = count == kLaneSlack ? nonzero_mask(values) : scalar_nonzero_mask(values, count);
  return append_set_lanes(nonzero, first, out);
}

}  // namespace stoch::internal
