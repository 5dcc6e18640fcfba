// Tests for include/stoch/detail/bit_sets.hpp: a mask becomes the increasing list of its set bits, every 16-bit
// mask checked, and nothing is written past the documented slack.
#include "stoch/detail/bit_sets.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "support/catch.hpp"

using namespace stoch;

namespace {

constexpr std::int32_t kUntouched = -7;

std::vector<std::int32_t> set_bits(std::uint64_t mask, std::int32_t first) {
  std::vector<std::int32_t> bits;
  for (std::int32_t i = 0; i < 64; ++i)
    if ((mask >> i) & 1u) bits.push_back(first + i);
  return bits;
}

}  // namespace

TEST_CASE("append_set_lanes lists first + i for the set bits i of every 16-bit mask, increasing", "[bit_sets]") {
  std::array<std::int32_t, 2 * internal::kLaneSlack> out{};
  std::uint32_t mask = 0;
  bool agree = true;
  for (; mask < (1u << 16) && agree; ++mask) {
    out.fill(kUntouched);
    const std::int32_t first = 1000 + static_cast<std::int32_t>(mask % 37);
    const std::int32_t count = internal::append_set_lanes(mask, first, out.data());
    const auto expected = set_bits(mask, first);
    agree = count == static_cast<std::int32_t>(expected.size()) &&
            std::equal(expected.begin(), expected.end(), out.begin()) &&
            std::all_of(out.begin() + internal::kLaneSlack, out.end(), [](std::int32_t v) { return v == kUntouched; });
  }
  INFO("first failing mask " << mask - 1);
  CHECK(agree);
}

TEST_CASE("append_set_lanes ignores the bits above the 16th", "[bit_sets]") {
  std::array<std::int32_t, internal::kLaneSlack> out{};
  CHECK(internal::append_set_lanes(0xffff0000u, 0, out.data()) == 0);
  CHECK(internal::append_set_lanes(0x00018001u, 3, out.data()) == 2);
  CHECK(out[0] == 3);
  CHECK(out[1] == 18);
}

TEST_CASE("append_set_bits lists the set bits of a 64-bit mask, increasing", "[bit_sets]") {
  const std::uint64_t masks[] = {0u, 1u, std::uint64_t(1) << 63, ~std::uint64_t(0), 0x8000000000000001u,
                                 0x0123456789abcdefu, 0xfedcba9876543210u, 0x00000000ffff0000u};
  for (const std::uint64_t mask : masks) {
    std::array<std::int32_t, 64 + internal::kLaneSlack> out{};
    const std::int32_t count = internal::append_set_bits(mask, out.data());
    const auto expected = set_bits(mask, 0);
    INFO("mask " << mask);
    REQUIRE(count == static_cast<std::int32_t>(expected.size()));
    CHECK(std::equal(expected.begin(), expected.end(), out.begin()));
  }
}

TEST_CASE("fill_lanes writes kLaneSlack copies of the value and nothing past them", "[bit_sets]") {
  std::array<std::int32_t, internal::kLaneSlack + 2> out;
  out.fill(kUntouched);
  internal::fill_lanes(-123456, out.data() + 1);
  CHECK(out.front() == kUntouched);
  CHECK(std::all_of(out.begin() + 1, out.end() - 1, [](std::int32_t v) { return v == -123456; }));
  CHECK(out.back() == kUntouched);
}
