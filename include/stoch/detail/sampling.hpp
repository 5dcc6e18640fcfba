// not part of the public API; included by stoch/core/distributions.hpp.
//
// stoch — the samplers' machinery: the conversion of Philox words to uniforms, the vectorisable sin/cos of
// Box–Muller, the blocked loop that hands words to a vectorised kernel chunk by chunk (stack buffers, no
// allocation), the raw uniform and Bernoulli fills, and the Marsaglia–Tsang Beta kernel with its
// position-bound retries. The reproducibility contract they keep is stated in core/distributions.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/random.hpp"

namespace stoch::internal {

/// Kernels run on whole multiples of this many elements, 64-byte aligned (an AVX-512 float packet), so
/// that Eigen never falls back to its scalar path for a tail.
inline constexpr Index kSimdPad = 16;

/// Open-interval uniform (0, 1) from one word (float, 23 bits) or two words (double, 52 bits). Both use
/// exact arithmetic only, and vectorise.
template <class T>
struct UniformBits;

template <>
struct UniformBits<float> {
  static constexpr int words = 1;
  /// (m + 1/2) 2^-23 with m the top 23 bits: from 2^-24 to 1 - 2^-24, both representable (with 24 bits,
  /// (2^24 - 1/2) 2^-24 would round to 1).
  static float convert(const std::uint32_t* w) noexcept {
    return (static_cast<float>(static_cast<std::int32_t>(w[0] >> 9)) + 0.5f) * 0x1.0p-23f;
  }
};

template <>
struct UniformBits<double> {
  static constexpr int words = 2;
  /// (m + 1/2) 2^-52 with m the top 52 bits of (w[1] w[0]): the float in [1, 2) with mantissa m, minus
  /// 1 - 2^-53 (exact by Sterbenz's lemma). From 2^-53 to 1 - 2^-53.
  static double convert(const std::uint32_t* w) noexcept {
    const std::uint64_t m = (static_cast<std::uint64_t>(w[1]) << 32 | w[0]) >> 12;
    return std::bit_cast<double>(m | 0x3FF0000000000000ull) - (1.0 - 0x1.0p-53);
  }
};

template <class T>
inline void convert_uniform(const std::uint32_t* words, T* u, Index n) noexcept {
  constexpr int W = UniformBits<T>::words;
  for (Index i = 0; i < n; ++i) u[i] = UniformBits<T>::convert(words + W * i);
}

template <class T>
using AlignedArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>, Eigen::Aligned64>;

/// Taylor coefficients (-1)^n / (2n + 1)! (sine) and (-1)^n / (2n)! (cosine), n = 0 .. N - 1.
template <class T, int N>
struct SinCosCoefficients {
  T sin[N], cos[N];
  constexpr SinCosCoefficients() : sin(), cos() {
    double factorial = 1;  // (2n)!
    for (int n = 0; n < N; ++n) {
      if (n > 0) factorial *= (2 * n - 1) * (2 * n);
      const double sign = n % 2 == 0 ? 1 : -1;
      cos[n] = static_cast<T>(sign / factorial);
      sin[n] = static_cast<T>(sign / (factorial * (2 * n + 1)));
    }
  }
};

/// sin(2 pi t) and cos(2 pi t) for t in (0, 1), branch-free so that loops over it vectorise: reduce to the
/// nearest quarter turn k (exactly: 4t and 4t - k are exact), then Taylor polynomials on |phi| <= pi/4
/// (truncation error below 2e-10 in float and 1e-17 in double, under the types' rounding).
template <class T>
inline void sincos_2pi(T t, T& s, T& c) noexcept {
  constexpr int kTerms = std::is_same_v<T, float> ? 6 : 9;
  static constexpr SinCosCoefficients<T, kTerms> coef{};
  const T x = T(4) * t;
  const T k = static_cast<T>(static_cast<std::int32_t>(x + T(0.5)));  // x + 1/2 > 0: truncation = floor
  const T phi = (x - k) * T(std::numbers::pi / 2);
  const T p2 = phi * phi;
  T sp = coef.sin[kTerms - 1], cp = coef.cos[kTerms - 1];
  for (int n = kTerms - 2; n >= 0; --n) {
    sp = sp * p2 + coef.sin[n];
    cp = cp * p2 + coef.cos[n];
  }
  sp *= phi;
  const bool odd = (k == T(1)) | (k == T(3));
  const bool negate_sin = (k == T(2)) | (k == T(3));
  const bool negate_cos = (k == T(1)) | (k == T(2));
  const T s1 = odd ? cp : sp;
  const T c1 = odd ? sp : cp;
  s = negate_sin ? -s1 : s1;
  c = negate_cos ? -c1 : c1;
}

/// Runs `kernel(words, values, slots, first_word)` over whole blocks of `S` slots (each slot `W` words,
/// block b of the stream = slots [b S, (b + 1) S)) that cover the next `n` slots of `rng`, and copies the
/// covered values to `out`. Blocks are aligned to the stream's slot index, not to the call, so every value
/// is a function of its position alone; a kernel may therefore pair slots inside a block. `first_word` is
/// the word position of the first slot the kernel receives; `slots` is a multiple of kSimdPad and S.
template <class T, Index S, Index W, Index Chunk, class Kernel>
void sample_blocks(Generator& rng, T* out, Index n, Kernel&& kernel) {
  static_assert(Chunk % S == 0 && Chunk % kSimdPad == 0);
  if (n <= 0) return;
  const std::uint64_t start = rng.position();
  const std::uint64_t offset = start % W;  // slots sit at offset + s W
  const std::uint64_t first_slot = start / W;
  const std::uint64_t end_slot = first_slot + static_cast<std::uint64_t>(n);
  alignas(64) std::uint32_t words[Chunk * W];
  alignas(64) T values[Chunk];
  for (std::uint64_t slot = first_slot / S * S; slot < end_slot;) {
    const Index wanted = static_cast<Index>(std::min<std::uint64_t>(Chunk, end_slot - slot));
    const Index slots = (wanted + S - 1) / S * S;
    const Index padded = (slots + kSimdPad - 1) / kSimdPad * kSimdPad;
    const std::uint64_t first_word = offset + slot * W;
    rng.fill_at(first_word, words, static_cast<std::size_t>(padded * W));
    kernel(static_cast<const std::uint32_t*>(words), values, padded, first_word);
    const std::uint64_t lo = std::max(slot, first_slot), hi = std::min<std::uint64_t>(slot + slots, end_slot);
    std::memcpy(out + (lo - first_slot), values + (lo - slot), (hi - lo) * sizeof(T));
    slot += static_cast<std::uint64_t>(slots);
  }
  rng.set_position(start + static_cast<std::uint64_t>(n) * W);
}

template <class T>
void require_contiguous(const char* what, const MatrixRef<T>& out) {
  if (out.size() > 0 && out.outerStride() != out.rows())
    fail(std::string(what) + ": output must be contiguous (whole columns)");
}

/// Draws the words of `n` elements in stack chunks (W words per element, in order) and hands each chunk to
/// `consume(words, first_element, count)`: the one loop behind the samplers that need no block pairing.
template <class T, class Consume>
void for_each_word_chunk(Generator& rng, Index n, Consume&& consume) {
  constexpr Index kChunk = 1024;
  constexpr int W = UniformBits<T>::words;
  alignas(64) std::uint32_t words[kChunk * W];
  for (Index start = 0; start < n; start += kChunk) {
    const Index count = std::min<Index>(kChunk, n - start);
    rng.fill(words, static_cast<std::size_t>(count * W));
    consume(static_cast<const std::uint32_t*>(words), start, count);
  }
}

/// Fills `out[0..n)` with U(0, 1): exact arithmetic, so written directly without the block machinery.
template <class T>
void fill_uniform_raw(Generator& rng, T* out, Index n) {
  for_each_word_chunk<T>(rng, n, [out](const std::uint32_t* words, Index start, Index count) {
    convert_uniform(words, out + start, count);
  });
}

/// out[i] = 1[u_i < p[i]] for n elements, p either an array (`PStride` = 1) or one value (`PStride` = 0).
template <class T, int PStride>
void bernoulli_raw(Generator& rng, const T* p, T* out, Index n) {
  constexpr int W = UniformBits<T>::words;
  for_each_word_chunk<T>(rng, n, [p, out](const std::uint32_t* words, Index start, Index count) {
    const T* pc = p + PStride * start;
    T* oc = out + start;
    for (Index i = 0; i < count; ++i)
      oc[i] = UniformBits<T>::convert(words + W * i) < pc[PStride * i] ? T(1) : T(0);
  });
}

/// Marsaglia & Tsang (2000) Gamma(shape, 1), one attempt, in log space: from a standard normal x and
/// uniforms `accept_u` and `boost_u`, returns log G, or NaN if the attempt is rejected. Shape < 1 uses
/// Gamma(shape + 1) U^(1/shape). The "squeeze" shortcut is omitted: it never changes a decision.
struct GammaParams {
  double shape, d, c;
  explicit GammaParams(double a) : shape(a), d((a < 1 ? a + 1 : a) - 1.0 / 3.0), c(1.0 / std::sqrt(9.0 * d)) {}
};

template <class T>
T gamma_attempt(const GammaParams& g, T x, T accept_u, T boost_u) {
  const T v = T(1) + T(g.c) * x;
  if (!(v > T(0))) return std::numeric_limits<T>::quiet_NaN();
  const T v3 = v * v * v, log_v3 = std::log(v3);
  if (!(std::log(accept_u) < T(0.5) * x * x + T(g.d) * (T(1) - v3 + log_v3))) return std::numeric_limits<T>::quiet_NaN();
  return T(std::log(g.d)) + log_v3 + (g.shape < 1 ? std::log(boost_u) / T(g.shape) : T(0));
}

/// The uniforms of one Beta attempt: u0, u1 -> two normals (Box–Muller), u2 / u3 accept X / Y,
/// u4 / u5 boost X / Y (present only when a shape is below 1).
inline constexpr int kBetaUniforms = 6;

/// Scalar retry of the element whose `uniforms` uniforms start at word `word`: attempt a >= 1 reads
/// [word, word + uniforms W) of Generator(seed ^ a * golden, stream) — another Philox key, so retries
/// never overlap the main stream, and they still depend on the element's position only.
template <class T>
T beta_retry(const Generator& rng, std::uint64_t word, Index uniforms, const GammaParams& ga,
             const GammaParams& gb, T log_x, T log_y) {
  constexpr int W = UniformBits<T>::words;
  // fill_at writes whole SIMD groups (4 kPhiloxSimdBlocks words) only when asked for that many, never here;
  // the buffer holds one group anyway, since GCC cannot always prove it (a false -Warray-bounds).
  constexpr int kWords = kBetaUniforms * W > 4 * kPhiloxSimdBlocks ? kBetaUniforms * W : 4 * kPhiloxSimdBlocks;
  std::uint32_t w[kWords];
  T u[kBetaUniforms] = {T(0.5), T(0.5), T(0.5), T(0.5), T(0.5), T(0.5)};
  for (std::uint64_t attempt = 1; std::isnan(log_x) || std::isnan(log_y); ++attempt) {
    Generator(rng.seed() ^ (attempt * 0x9E3779B97F4A7C15ull), rng.stream())
        .fill_at(word, w, static_cast<std::size_t>(uniforms * W));
    convert_uniform(w, u, uniforms);
    const T r = std::sqrt(T(-2) * std::log(u[0]));
    T s, c;
    sincos_2pi(u[1], s, c);
    if (std::isnan(log_x)) log_x = gamma_attempt(ga, r * c, u[2], u[4]);
    if (std::isnan(log_y)) log_y = gamma_attempt(gb, r * s, u[3], u[5]);
  }
  return T(1) / (T(1) + std::exp(log_y - log_x));
}


/// Beta kernel with `U` uniforms per element (4 when both shapes are >= 1, 6 when a boost is needed).
template <class T, Index U>
void fill_beta_impl(Generator& rng, T* out, Index n, const GammaParams& ga, const GammaParams& gb) {
  constexpr Index kBlock = 16, kChunk = 128;
  constexpr int W = UniformBits<T>::words;
  const Generator& source = rng;
  auto kernel = [&](const std::uint32_t* words, T* values, Index slots, std::uint64_t first_word) {
    using Map = AlignedArrayMap<T>;
    alignas(64) T comp[kBetaUniforms][kChunk];  // component-major: comp[k][slot]
    alignas(64) T xa[kChunk], xb[kChunk], va[kChunk], vb[kChunk], la[kChunk], lb[kChunk];
    for (Index b = 0; b < slots / kBlock; ++b)
      for (Index k = 0; k < U; ++k) convert_uniform(words + (b * U + k) * kBlock * W, &comp[k][b * kBlock], kBlock);
    for (Index k = 2; k < U; ++k) Map(comp[k], slots) = Map(comp[k], slots).log();
    Map(comp[0], slots) = (T(-2) * Map(comp[0], slots).log()).sqrt();  // Box–Muller radius
    const T ca = T(ga.c), cb = T(gb.c);
    for (Index i = 0; i < slots; ++i) {  // normals, and v^3 of both gammas
      const T r = comp[0][i];
      T s, c;
      sincos_2pi(comp[1][i], s, c);
      xa[i] = r * c;
      xb[i] = r * s;
      const T a = T(1) + ca * xa[i], b = T(1) + cb * xb[i];
      va[i] = a * a * a;
      vb[i] = b * b * b;
      // log of a non-positive v^3 would be NaN; such attempts are rejected below.
      la[i] = a > T(0) ? va[i] : T(1);
      lb[i] = b > T(0) ? vb[i] : T(1);
    }
    Map(la, slots) = Map(la, slots).log();
    Map(lb, slots) = Map(lb, slots).log();
    const T da = T(ga.d), db = T(gb.d), log_da = T(std::log(ga.d)), log_db = T(std::log(gb.d));
    const T nan = std::numeric_limits<T>::quiet_NaN();
    for (Index i = 0; i < slots; ++i) {  // acceptance; log X, log Y (NaN when rejected)
      const bool ok_a = (T(1) + ca * xa[i] > T(0)) & (comp[2][i] < T(0.5) * xa[i] * xa[i] + da * (T(1) - va[i] + la[i]));
      const bool ok_b = (T(1) + cb * xb[i] > T(0)) & (comp[3][i] < T(0.5) * xb[i] * xb[i] + db * (T(1) - vb[i] + lb[i]));
      xa[i] = ok_a ? log_da + la[i] : nan;
      xb[i] = ok_b ? log_db + lb[i] : nan;
    }
    if constexpr (U == kBetaUniforms) {  // shapes below 1: Gamma(shape + 1) U^(1/shape)
      const T boost_a = ga.shape < 1 ? T(1 / ga.shape) : T(0), boost_b = gb.shape < 1 ? T(1 / gb.shape) : T(0);
      for (Index i = 0; i < slots; ++i) {
        xa[i] += boost_a * comp[4][i];
        xb[i] += boost_b * comp[5][i];
      }
    }
    Map v(values, slots);
    v = T(1) / (T(1) + (Map(xb, slots) - Map(xa, slots)).exp());
    for (Index i = 0; i < slots; ++i)
      if (std::isnan(values[i]))
        values[i] = beta_retry(source, first_word + static_cast<std::uint64_t>(i * U * W), U, ga, gb, xa[i], xb[i]);
  };
  sample_blocks<T, kBlock, U * W, kChunk>(rng, out, n, kernel);
}

}  // namespace stoch::internal
