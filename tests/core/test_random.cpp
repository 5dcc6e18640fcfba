// Generator: Philox4x32-10 known answers, agreement with Random123, the bulk fill, positions and streams,
// and a chi-square / Kolmogorov–Smirnov check of the uniform bits.
#include "stoch/core/distributions.hpp"
#include "stoch/core/random.hpp"

#include <Random123/philox.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "support/catch.hpp"

using namespace stoch;

namespace {

struct KnownAnswer {
  std::uint32_t ctr[4], key[2], expected[4];
};

// Random123's kat_vectors for philox4x32 with 10 rounds (Salmon et al. 2011).
constexpr KnownAnswer kKnownAnswers[] = {
    {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u}, {0x00000000u, 0x00000000u},
     {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

/// Word w of Generator(seed, stream) computed by Random123 itself.
std::uint32_t random123_word(std::uint64_t seed, std::uint64_t stream, std::uint64_t w) {
  r123::Philox4x32 philox;
  const std::uint64_t block = w / 4;
  const r123::Philox4x32::ctr_type ctr = {{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                                           static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  const r123::Philox4x32::key_type key = {{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  return philox(ctr, key)[static_cast<int>(w % 4)];
}

std::vector<std::uint32_t> words(Generator rng, std::size_t n) {
  std::vector<std::uint32_t> out(n);
  rng.fill(out.data(), n);
  return out;
}

}  // namespace

TEST_CASE("Philox4x32-10 reproduces Random123's known-answer vectors", "[random]") {
  for (const KnownAnswer& kat : kKnownAnswers) {
    std::uint32_t out[4];
    internal::philox4x32_10(kat.ctr, kat.key, out);
    for (int i = 0; i < 4; ++i) CHECK(out[i] == kat.expected[i]);
  }
  // The zero vector through the Generator's mapping: key = seed, counter = (block, stream). (The other
  // two use blocks beyond 2^62, outside a stream's 2^64 words; the next test covers the mapping.)
  std::uint32_t out[4];
  Generator(0, 0).fill_at(0, out, 4);
  for (int i = 0; i < 4; ++i) CHECK(out[i] == kKnownAnswers[0].expected[i]);
}

TEST_CASE("Bulk fill equals Random123 word by word, across SIMD groups and a 2^32-block carry", "[random]") {
  const std::uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull;
  const Generator rng(seed, stream);
  // Starts at every offset within a block and within a SIMD group, lengths that cut groups and blocks.
  for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{61},
                              std::uint64_t{4 * 0xFFFFFFF9ull + 2}}) {
    for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{63}, std::size_t{64}, std::size_t{131}}) {
      std::vector<std::uint32_t> out(n);
      rng.fill_at(first, out.data(), n);
      for (std::size_t i = 0; i < n; ++i) REQUIRE(out[i] == random123_word(seed, stream, first + i));
    }
  }
}

TEST_CASE("fill is n calls of next(), and fills split anywhere concatenate", "[random]") {
  Generator a(42, 7), b(42, 7), c(42, 7);
  std::vector<std::uint32_t> one(1000), parts(1000);
  a.fill(one.data(), one.size());
  for (std::size_t i = 0; i < 1000; ++i) REQUIRE(b.next() == one[i]);
  c.fill(parts.data(), 3);
  c.fill(parts.data() + 3, 500);
  c.fill(parts.data() + 503, 497);
  CHECK(parts == one);
  CHECK(a.position() == 1000);
  CHECK(a == b);
  CHECK(a == c);
}

TEST_CASE("Position save and restore replays the stream; discard skips", "[random]") {
  Generator rng(9);
  rng.discard(17);
  const std::uint64_t saved = rng.position();
  const std::vector<std::uint32_t> first = words(rng, 100);
  std::vector<std::uint32_t> again(100);
  rng.fill(again.data(), 100);
  CHECK(again == first);
  rng.set_position(saved);
  rng.fill(again.data(), 100);
  CHECK(again == first);
  CHECK(Generator(9).word_at(17) == first[0]);
}

TEST_CASE("Same seed gives identical words; another seed or stream gives different ones", "[random]") {
  const auto base = words(Generator(1234, 0), 256);
  CHECK(words(Generator(1234, 0), 256) == base);
  for (const Generator& other : {Generator(1235, 0), Generator(1234, 1), Generator(1234, 0).with_stream(2)}) {
    const auto w = words(other, 256);
    // Independent streams agree on a word with probability 2^-32; allow none of 256 to be rare chance.
    std::size_t equal = 0;
    for (std::size_t i = 0; i < w.size(); ++i) equal += w[i] == base[i];
    CHECK(equal == 0);
  }
}

TEST_CASE("with_stream keeps the seed, replaces the stream and starts at position 0 (not hierarchical)",
          "[random]") {
  Generator rng(5, 3);
  rng.next();
  const Generator child = rng.with_stream(8);
  CHECK(child.stream() == 8);
  CHECK(child.seed() == 5);
  CHECK(child == Generator(5, 8));  // position 0 too
  // The parent's stream is dropped: two levels give what one gives.
  CHECK(rng.with_stream(1).with_stream(2) == rng.with_stream(2));
  CHECK(words(rng.with_stream(1).with_stream(2), 64) == words(Generator(5, 2), 64));
}

TEST_CASE("Uniform bits pass a chi-square test on every byte (fixed seed)", "[random]") {
  // 2^20 words; each of the 4 bytes histogrammed into 256 bins: chi^2 with k = 255 degrees of freedom.
  // Critical values from the Wilson–Hilferty approximation at z = 4.75 (two-sided p ~ 2e-6):
  // k (1 - 2/(9k) +- z sqrt(2/(9k)))^3.
  constexpr std::size_t n = std::size_t{1} << 20;
  const auto w = words(Generator(2024), n);
  const double k = 255, z = 4.75, h = 2.0 / (9.0 * k);
  const double upper = k * std::pow(1 - h + z * std::sqrt(h), 3), lower = k * std::pow(1 - h - z * std::sqrt(h), 3);
  for (int byte = 0; byte < 4; ++byte) {
    std::array<double, 256> count{};
    for (std::uint32_t x : w) count[(x >> (8 * byte)) & 0xFF] += 1;
    const double expected = static_cast<double>(n) / 256;
    double chi2 = 0;
    for (double c : count) chi2 += (c - expected) * (c - expected) / expected;
    INFO("byte " << byte << ": chi2 = " << chi2 << ", accept [" << lower << ", " << upper << "]");
    CHECK(chi2 < upper);
    CHECK(chi2 > lower);
  }
}

TEMPLATE_TEST_CASE("Uniform samples pass Kolmogorov–Smirnov and are never 0 or 1", "[random]", float, double) {
  using T = TestType;
  Generator rng(77);
  Matrix<T> u(1000, 100);
  fill_uniform<T>(rng, u);
  CHECK(u.minCoeff() > T(0));
  CHECK(u.maxCoeff() < T(1));
  std::vector<T> sorted(u.data(), u.data() + u.size());
  std::sort(sorted.begin(), sorted.end());
  const double n = static_cast<double>(sorted.size());
  double d = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const double x = static_cast<double>(sorted[i]);
    d = std::max({d, (static_cast<double>(i) + 1) / n - x, x - static_cast<double>(i) / n});
  }
  // Asymptotic KS critical value at level a: sqrt(-ln(a / 2) / 2) / sqrt(n); a = 1e-4.
  const double critical = std::sqrt(-std::log(1e-4 / 2) / 2) / std::sqrt(n);
  INFO("D = " << d << ", critical " << critical);
  CHECK(d < critical);
}
