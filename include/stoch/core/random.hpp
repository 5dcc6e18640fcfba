// stoch — the explicit, seedable, counter-based random number generator every stochastic layer draws from.
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// generator of Random123, implemented here (about 100 lines) so that the library stays dependency-free;
// the tests check it bit for bit against Random123's own philox4x32 and its known-answer vectors.
// Why not use Random123 in the header: its scalar philox4x32 computes one block at a time; the bulk fill
// below computes 8 or 16 blocks per instruction (AVX2 / AVX-512), which is where the speed comes from.
//
// Word `w` of a stream is lane `w % 4` of Philox(key = (seed lo, seed hi),
// counter = (w / 4 lo, w / 4 hi, stream lo, stream hi)). The generator's whole state is
// (seed, stream, position), so
//   - the same seed gives bit-identical words, whatever the batch splitting (filling 2000 x 32 twice draws
//     exactly the words of one 2000 x 64 fill);
//   - any range of the stream can be computed independently (fill_at), so threads may fill disjoint
//     ranges and the noise does not depend on the thread count;
//   - a checkpoint stores three integers.
// Positions count words and stay below 2^64, so blocks stay below 2^62.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace stoch {

namespace internal {

inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;

/// Philox4x32-10 of one 128-bit counter `ctr` under the 64-bit key `key`; the reference (scalar) form.
inline void philox4x32_10(const std::uint32_t ctr[4], const std::uint32_t key[2], std::uint32_t out[4]) noexcept {
  std::uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0;
    const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/// The fixed parts of a stream: key and the upper half of the counter.
struct PhiloxStream {
  std::uint32_t key[2];
  std::uint32_t stream[2];

  void block(std::uint64_t index, std::uint32_t out[4]) const noexcept {
    const std::uint32_t ctr[4] = {static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                                  stream[0], stream[1]};
    philox4x32_10(ctr, key, out);
  }
};

#if defined(__AVX512F__)
// 16 blocks per call, one per 32-bit lane (structure of arrays); 32x32->64 multiplies with vpmuludq on
// the even and the odd lanes, then the 4 x 16 result is transposed to block-major order. The maskz forms
// with a full mask are the plain instructions; they avoid GCC 12's _mm512_undefined_epi32, which trips
// -Wuninitialized (GCC bug 105593).
inline constexpr int kPhiloxSimdBlocks = 16;

inline void philox_mulhilo(__m512i c, __m512i m, __m512i& hi, __m512i& lo) noexcept {
  // even: 64-bit products of the even lanes; odd: of the odd lanes (moved down by a swap of neighbours).
  const __m512i even = _mm512_maskz_mul_epu32(0xFF, c, m);
  const __m512i odd = _mm512_maskz_mul_epu32(0xFF, _mm512_maskz_shuffle_epi32(0xFFFF, c, _MM_PERM_CDAB), m);
  // hi: odd's high halves are already in the odd lanes; even's are swapped into the even lanes. lo: dual.
  hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_CDAB);
  lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, _MM_PERM_CDAB);
}

/// Blocks first .. first + 16 (first + 15 must not wrap the low 32 bits) into out[0 .. 64).
inline void philox_simd(const PhiloxStream& s, std::uint64_t first, std::uint32_t* out) noexcept {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first))), iota);
  __m512i c1 = _mm512_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first >> 32)));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(s.stream[0]));
  __m512i c3 = _mm512_set1_epi32(static_cast<int>(s.stream[1]));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(kPhiloxM1));
  std::uint32_t k0 = s.key[0], k1 = s.key[1];
  for (int round = 0; round < 10; ++round) {
    __m512i hi0, lo0, hi1, lo1;
    philox_mulhilo(c0, m0, hi0, lo0);
    philox_mulhilo(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  // Transpose: after the two unpack stages, 128-bit lane j of r_k holds block 4j + k.
  const __m512i t0 = _mm512_maskz_unpacklo_epi32(0xFFFF, c0, c1), t1 = _mm512_maskz_unpackhi_epi32(0xFFFF, c0, c1);
  const __m512i t2 = _mm512_maskz_unpacklo_epi32(0xFFFF, c2, c3), t3 = _mm512_maskz_unpackhi_epi32(0xFFFF, c2, c3);
  const __m512i r0 = _mm512_maskz_unpacklo_epi64(0xFF, t0, t2), r1 = _mm512_maskz_unpackhi_epi64(0xFF, t0, t2);
  const __m512i r2 = _mm512_maskz_unpacklo_epi64(0xFF, t1, t3), r3 = _mm512_maskz_unpackhi_epi64(0xFF, t1, t3);
  const __m512i a = _mm512_maskz_shuffle_i32x4(0xFFFF, r0, r1, 0x44), b = _mm512_maskz_shuffle_i32x4(0xFFFF, r2, r3, 0x44);
  const __m512i c = _mm512_maskz_shuffle_i32x4(0xFFFF, r0, r1, 0xEE), d = _mm512_maskz_shuffle_i32x4(0xFFFF, r2, r3, 0xEE);
  _mm512_storeu_si512(out, _mm512_maskz_shuffle_i32x4(0xFFFF, a, b, 0x88));
  _mm512_storeu_si512(out + 16, _mm512_maskz_shuffle_i32x4(0xFFFF, a, b, 0xDD));
  _mm512_storeu_si512(out + 32, _mm512_maskz_shuffle_i32x4(0xFFFF, c, d, 0x88));
  _mm512_storeu_si512(out + 48, _mm512_maskz_shuffle_i32x4(0xFFFF, c, d, 0xDD));
}
#elif defined(__AVX2__)
// 8 blocks per call; as above with 256-bit vectors.
inline constexpr int kPhiloxSimdBlocks = 8;

inline void philox_mulhilo(__m256i c, __m256i m, __m256i& hi, __m256i& lo) noexcept {
  const __m256i even = _mm256_mul_epu32(c, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

inline void philox_simd(const PhiloxStream& s, std::uint64_t first, std::uint32_t* out) noexcept {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first))), iota);
  __m256i c1 = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first >> 32)));
  __m256i c2 = _mm256_set1_epi32(static_cast<int>(s.stream[0]));
  __m256i c3 = _mm256_set1_epi32(static_cast<int>(s.stream[1]));
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kPhiloxM0));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(kPhiloxM1));
  std::uint32_t k0 = s.key[0], k1 = s.key[1];
  for (int round = 0; round < 10; ++round) {
    __m256i hi0, lo0, hi1, lo1;
    philox_mulhilo(c0, m0, hi0, lo0);
    philox_mulhilo(c2, m1, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
    c1 = lo1;
    c3 = lo0;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i r0 = _mm256_unpacklo_epi64(t0, t2), r1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i r2 = _mm256_unpacklo_epi64(t1, t3), r3 = _mm256_unpackhi_epi64(t1, t3);
  auto* o = reinterpret_cast<__m256i*>(out);
  _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(r0, r1, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(r2, r3, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(r0, r1, 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(r2, r3, 0x31));
}
#else
// Portable form: 8 blocks side by side (structure of arrays) so that the compiler may vectorise it.
inline constexpr int kPhiloxSimdBlocks = 8;

inline void philox_simd(const PhiloxStream& s, std::uint64_t first, std::uint32_t* out) noexcept {
  constexpr int L = kPhiloxSimdBlocks;
  std::uint32_t c0[L], c1[L], c2[L], c3[L];
  for (int l = 0; l < L; ++l) {
    c0[l] = static_cast<std::uint32_t>(first) + static_cast<std::uint32_t>(l);
    c1[l] = static_cast<std::uint32_t>(first >> 32);
    c2[l] = s.stream[0];
    c3[l] = s.stream[1];
  }
  std::uint32_t k0 = s.key[0], k1 = s.key[1];
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < L; ++l) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0[l];
      const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2[l];
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<std::uint32_t>(p1);
      c3[l] = static_cast<std::uint32_t>(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int l = 0; l < L; ++l) {
    out[4 * l + 0] = c0[l];
    out[4 * l + 1] = c1[l];
    out[4 * l + 2] = c2[l];
    out[4 * l + 3] = c3[l];
  }
}
#endif

/// Blocks first .. first + count into out[0 .. 4 count), block-major.
inline void philox_blocks(const PhiloxStream& s, std::uint64_t first, std::size_t count,
                          std::uint32_t* out) noexcept {
  constexpr std::size_t L = kPhiloxSimdBlocks;
  const std::size_t groups = count / L;
  for (std::size_t g = 0; g < groups; ++g) {
    const std::uint64_t block = first + g * L;
    std::uint32_t* o = out + 4 * L * g;
    // The SIMD form adds the lane to the low counter word only; a group that would carry into the high
    // word is rare (once every 2^32 blocks) and takes the scalar path.
    if (static_cast<std::uint32_t>(block) <= 0xFFFFFFFFu - (L - 1)) {
      philox_simd(s, block, o);
    } else {
      for (std::size_t l = 0; l < L; ++l) s.block(block + l, o + 4 * l);
    }
  }
  const std::size_t rest = count % L;
  for (std::size_t l = 0; l < rest; ++l) s.block(first + groups * L + l, out + 4 * (groups * L + l));
}

}  // namespace internal

/// Counter-based generator of 32-bit words. Cheap to copy; copies continue the same stream independently.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0, std::uint64_t stream = 0) noexcept
      : seed_(seed), stream_(stream) {}

  std::uint64_t seed() const noexcept { return seed_; }
  std::uint64_t stream() const noexcept { return stream_; }
  /// Number of 32-bit words drawn so far.
  std::uint64_t position() const noexcept { return position_; }
  /// Jump anywhere in the stream (restoring a checkpoint, or a thread's share of a fill).
  void set_position(std::uint64_t position) noexcept { position_ = position; }
  /// Skip `n` words without computing them.
  void discard(std::uint64_t n) noexcept { position_ += n; }

  /// Word `w` of this stream, without moving the position.
  std::uint32_t word_at(std::uint64_t w) const noexcept {
    std::uint32_t block[4];
    philox().block(w / 4, block);
    return block[w % 4];
  }

  /// Next word.
  std::uint32_t next() noexcept { return word_at(position_++); }

  /// Fills `out[0..n)` with the next `n` words; bit-identical to `n` calls of next().
  void fill(std::uint32_t* out, std::size_t n) noexcept {
    fill_at(position_, out, n);
    position_ += n;
  }

  /// Fills `out[0..n)` with words `first .. first + n` of the stream (position unchanged). Thread-safe on
  /// a shared const generator: this is how a fill is split across threads.
  void fill_at(std::uint64_t first, std::uint32_t* out, std::size_t n) const noexcept {
    const internal::PhiloxStream s = philox();
    std::uint32_t block[4];
    std::size_t done = 0;
    // Head: the rest of a partly used block.
    if (first % 4 != 0 && n > 0) {
      s.block(first / 4, block);
      for (std::uint64_t lane = first % 4; lane < 4 && done < n; ++lane) out[done++] = block[lane];
    }
    // Body: whole blocks straight into the output.
    const std::size_t whole = (n - done) / 4;
    internal::philox_blocks(s, (first + done) / 4, whole, out + done);
    done += 4 * whole;
    // Tail: the start of one more block.
    if (done < n) {
      s.block((first + done) / 4, block);
      for (std::size_t lane = 0; done < n; ++lane) out[done++] = block[lane];
    }
  }

  /// A generator with this one's seed and `stream` in place of its stream, at position 0: an independent
  /// sequence for a sub-task (a layer, a thread). Not hierarchical: the parent's stream and position are
  /// dropped, so rng.with_stream(1).with_stream(2) == rng.with_stream(2); give every sub-task its own stream
  /// number.
  Generator with_stream(std::uint64_t stream) const noexcept { return Generator(seed_, stream); }

  friend bool operator==(const Generator& a, const Generator& b) noexcept {
    return a.seed_ == b.seed_ && a.stream_ == b.stream_ && a.position_ == b.position_;
  }

 private:
  internal::PhiloxStream philox() const noexcept {
    return {{static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)},
            {static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)}};
  }

  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t position_ = 0;
};

}  // namespace stoch
