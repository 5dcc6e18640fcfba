// Small valid inputs for the fuzzers' seed corpora (and for the robustness tests).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace stoch::fuzz {

inline void append_big_endian(std::vector<std::uint8_t>& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(value >> shift));
}

/// An IDX images file (magic 2051): `count` images of `rows x cols` bytes with varied pixel values.
inline std::vector<std::uint8_t> idx_images(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  std::vector<std::uint8_t> out;
  append_big_endian(out, 2051);
  append_big_endian(out, count);
  append_big_endian(out, rows);
  append_big_endian(out, cols);
  for (std::uint32_t i = 0; i < count * rows * cols; ++i) out.push_back(static_cast<std::uint8_t>(37 * i + 11));
  return out;
}

/// An IDX labels file (magic 2049).
inline std::vector<std::uint8_t> idx_labels(std::initializer_list<std::uint8_t> labels) {
  std::vector<std::uint8_t> out;
  append_big_endian(out, 2049);
  append_big_endian(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

}  // namespace stoch::fuzz
