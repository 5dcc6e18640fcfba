// Test helper: IDX files written byte by byte (the format of the MNIST files, big-endian header), and a
// temporary directory to put them in. Used by the tests of data/idx.hpp and data/mnist.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <stoch/data/idx.hpp>

#include "support/catch.hpp"

namespace stoch::test {

using Bytes = std::vector<std::uint8_t>;

inline void put_u32(Bytes& bytes, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(value >> shift));
}

/// A valid images file: `count` images of `rows x cols`, pixel k of the file = k mod 256.
inline Bytes images_file(std::uint32_t count, std::uint32_t rows, std::uint32_t cols) {
  Bytes bytes;
  put_u32(bytes, stoch::kIdxImagesMagic);
  put_u32(bytes, count);
  put_u32(bytes, rows);
  put_u32(bytes, cols);
  for (std::uint32_t k = 0; k < count * rows * cols; ++k) bytes.push_back(static_cast<std::uint8_t>(k % 256));
  return bytes;
}

inline Bytes labels_file(const std::vector<std::uint8_t>& labels) {
  Bytes bytes;
  put_u32(bytes, stoch::kIdxLabelsMagic);
  put_u32(bytes, static_cast<std::uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

/// A fresh directory under the system's temporary directory, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("stoch_test_idx_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "_" +
            std::to_string(std::hash<std::string>{}(Catch::getResultCapture().getCurrentTestName())));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path write(const std::string& name, const Bytes& bytes) const {
    std::ofstream(path / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path / name;
  }
};

}  // namespace stoch::test
