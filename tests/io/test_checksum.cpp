// Tests for include/stoch/io/checksum.hpp: FNV-1a 64 against the published test vectors (Fowler, Noll, Vo),
// the same value from bytes and from text, and every single-byte change detected.
#include "stoch/io/checksum.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

#include "support/catch.hpp"

TEST_CASE("fnv1a64 gives the published FNV-1a 64 values", "[checksum]") {
  CHECK(stoch::fnv1a64(std::string_view()) == 0xcbf29ce484222325ULL);  // the offset basis
  CHECK(stoch::fnv1a64(std::string_view("a")) == 0xaf63dc4c8601ec8cULL);
  CHECK(stoch::fnv1a64(std::string_view("foobar")) == 0x85944171f73967e8ULL);
}

TEST_CASE("fnv1a64 of bytes and of text agree, and any one changed byte changes it", "[checksum]") {
  const std::string_view text = "stoch \xff\x80 model";  // bytes above 127 too
  const std::vector<std::uint8_t> bytes(text.begin(), text.end());
  const std::uint64_t hash = stoch::fnv1a64(bytes);
  CHECK(hash == stoch::fnv1a64(text));
  for (std::size_t k = 0; k < bytes.size(); ++k)
    for (const std::uint8_t flip : {std::uint8_t(1), std::uint8_t(0x80), std::uint8_t(0xff)}) {
      std::vector<std::uint8_t> changed = bytes;
      changed[k] = static_cast<std::uint8_t>(changed[k] ^ flip);
      CHECK(stoch::fnv1a64(changed) != hash);
    }
}
