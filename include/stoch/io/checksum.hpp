// stoch — the 64-bit FNV-1a hash: the checksum of the model files (io/serialization.hpp), and a stable
// fingerprint of a text (e.g. the settings of a run that a checkpoint must match).
//
// FNV-1a changes its state bijectively with every byte, so any single corrupted byte changes the hash. It is
// not a cryptographic hash: it detects accidents, not tampering.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace stoch {

/// 64-bit FNV-1a of `bytes` (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
inline std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

/// 64-bit FNV-1a of the bytes of `text` (as unsigned chars; no terminator).
inline std::uint64_t fnv1a64(std::string_view text) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

}  // namespace stoch
