// stoch — the explicit, seedable, counter-based random number generator every stochastic layer draws from.
//
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): word `w` of the
// stream is lane `w % 4` of Philox(key = seed, counter = (w / 4, stream)). The generator's whole state is
// (seed, stream, position), so
//   - the same seed gives bit-identical noise, whatever the batch splitting (filling 2000 x 32 twice draws
//     exactly the words of one 2000 x 64 fill);
//   - any range of the stream can be computed independently, so threads may fill disjoint ranges and the
//     noise does not depend on the thread count;
//   - a checkpoint stores three integers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace stoch {

namespace internal {

inline constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u;
inline constexpr std::uint32_t kPhiloxM1 = 0xCD9E8D57u;
inline constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u;
inline constexpr std::uint32_t kPhiloxW1 = 0xBB67AE85u;

/// `Lanes` independent Philox4x32-10 blocks computed side by side (structure of arrays), so that the
/// 32x32->64 multiplies of neighbouring blocks vectorise.
template <int Lanes>
inline void philox4x32_10(std::uint32_t key0, std::uint32_t key1, std::uint64_t first_block,
                          std::uint32_t stream_lo, std::uint32_t stream_hi,
                          std::uint32_t* out /* 4 * Lanes words, block-major */) {
  std::uint32_t c0[Lanes], c1[Lanes], c2[Lanes], c3[Lanes];
  for (int l = 0; l < Lanes; ++l) {
    const std::uint64_t block = first_block + static_cast<std::uint64_t>(l);
    c0[l] = static_cast<std::uint32_t>(block);
    c1[l] = static_cast<std::uint32_t>(block >> 32);
    c2[l] = stream_lo;
    c3[l] = stream_hi;
  }
  std::uint32_t k0 = key0, k1 = key1;
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < Lanes; ++l) {
      const std::uint64_t p0 = static_cast<std::uint64_t>(kPhiloxM0) * c0[l];
      const std::uint64_t p1 = static_cast<std::uint64_t>(kPhiloxM1) * c2[l];
      const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
      const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
      const std::uint32_t n0 = hi1 ^ c1[l] ^ k0;
      const std::uint32_t n2 = hi0 ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = lo1;
      c2[l] = n2;
      c3[l] = lo0;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int l = 0; l < Lanes; ++l) {
    out[4 * l + 0] = c0[l];
    out[4 * l + 1] = c1[l];
    out[4 * l + 2] = c2[l];
    out[4 * l + 3] = c3[l];
  }
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
    internal::philox4x32_10<1>(key0(), key1(), w / 4, stream_lo(), stream_hi(), block);
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
    std::size_t done = 0;
    // Head: the rest of a partly used block.
    while (done < n && (first + done) % 4 != 0) {
      out[done] = word_at(first + done);
      ++done;
    }
    constexpr int kLanes = 16;
    std::uint32_t buffer[4 * kLanes];
    while (n - done >= 4 * kLanes) {
      internal::philox4x32_10<kLanes>(key0(), key1(), (first + done) / 4, stream_lo(), stream_hi(),
                                      out + done);
      done += 4 * kLanes;
    }
    if (n - done >= 4) {
      internal::philox4x32_10<kLanes>(key0(), key1(), (first + done) / 4, stream_lo(), stream_hi(),
                                      buffer);
      const std::size_t rest = n - done;
      for (std::size_t i = 0; i < rest && i < 4 * kLanes; ++i) out[done + i] = buffer[i];
      done = n;
    }
    while (done < n) {
      out[done] = word_at(first + done);
      ++done;
    }
  }

  /// Independent generator for a sub-task (a layer, a thread): same seed, another stream.
  Generator split(std::uint64_t stream) const noexcept { return Generator(seed_, stream); }

  friend bool operator==(const Generator& a, const Generator& b) noexcept {
    return a.seed_ == b.seed_ && a.stream_ == b.stream_ && a.position_ == b.position_;
  }

 private:
  std::uint32_t key0() const noexcept { return static_cast<std::uint32_t>(seed_); }
  std::uint32_t key1() const noexcept { return static_cast<std::uint32_t>(seed_ >> 32); }
  std::uint32_t stream_lo() const noexcept { return static_cast<std::uint32_t>(stream_); }
  std::uint32_t stream_hi() const noexcept { return static_cast<std::uint32_t>(stream_ >> 32); }

  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t position_ = 0;
};

}  // namespace stoch
