// stoch — the IDX file format of MNIST (LeCun et al.), plain or gzip-compressed, read defensively.
//
// Layout (all integers big-endian): two zero bytes, a type code (0x08 = unsigned byte, the only one MNIST
// uses and the only one accepted here), the number of dimensions d, then d 32-bit sizes, then the
// product of the sizes in bytes, row-major (last dimension fastest). MNIST's magic numbers are 2051
// (0x00000803: images, count x rows x cols) and 2049 (0x00000801: labels, count); nothing else is accepted.
//
// Every check happens before anything is allocated for the payload: the dimensions (and their product,
// checked for overflow) must match the file size exactly, so a truncated file, a file with trailing bytes
// or a foreign file is reported (stoch::Error naming the file and the problem) instead of read.
// A gzip'd file (magic 1f 8b) is inflated with zlib when stoch is built with it (STOCH_WITH_ZLIB, set by
// the CMake package when zlib is found); its header is inflated first and its promised size is checked
// against deflate's maximum compression ratio before the payload is allocated, and inflation stops at the
// promised size, so a small malicious file cannot make the reader allocate or inflate without bound.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

#ifdef STOCH_WITH_ZLIB
#include <zlib.h>
#endif

namespace stoch {

/// A parsed IDX file: sizes (outermost first) and the unsigned bytes, row-major.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

/// The two IDX magic numbers of MNIST.
inline constexpr std::uint32_t kIdxImagesMagic = 2051;  // 0x00000803: unsigned bytes, 3 dimensions
inline constexpr std::uint32_t kIdxLabelsMagic = 2049;  // 0x00000801: unsigned bytes, 1 dimension

/// What the header says: the sizes, the header length and the payload length it promises.
struct IdxHeader {
  std::vector<std::uint32_t> dims;
  std::size_t header_bytes = 0;
  std::uint64_t data_bytes = 0;
};

namespace internal {

[[noreturn]] inline void fail_idx(std::string_view name, const std::string& problem) {
  fail("IDX file '" + std::string(name) + "': " + problem);
}

inline std::uint32_t read_big_endian_u32(std::span<const std::uint8_t> bytes, std::size_t at) {
  return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
         (std::uint32_t{bytes[at + 2]} << 8) | std::uint32_t{bytes[at + 3]};
}

/// Bytes of the header for `dims` dimensions.
constexpr std::size_t idx_header_bytes(std::size_t dims) { return 4 + 4 * dims; }

}  // namespace internal

/// Parses the header at the start of `bytes` (which may hold less or more than the payload). Throws
/// stoch::Error, naming `name`, on a short header, a foreign magic number or a size product that overflows.
inline IdxHeader parse_idx_header(std::span<const std::uint8_t> bytes, std::string_view name) {
  using internal::fail_idx;
  if (bytes.size() < 4)
    fail_idx(name, "truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the 4-byte magic number");
  if (bytes[0] != 0 || bytes[1] != 0)
    fail_idx(name, "not an IDX file (the magic number must start with two zero bytes)");
  if (bytes[2] != 0x08)
    fail_idx(name, "unsupported type code " + std::to_string(bytes[2]) + " (only 8, unsigned byte, is supported)");
  const std::uint32_t magic = internal::read_big_endian_u32(bytes, 0);
  if (magic != kIdxImagesMagic && magic != kIdxLabelsMagic)
    fail_idx(name, "magic number " + std::to_string(magic) + " is neither 2051 (images) nor 2049 (labels)");
  IdxHeader header;
  const std::size_t dims = bytes[3];
  header.header_bytes = internal::idx_header_bytes(dims);
  if (bytes.size() < header.header_bytes)
    fail_idx(name, "truncated header: " + std::to_string(bytes.size()) + " bytes, the header of " +
                       std::to_string(dims) + " dimensions needs " + std::to_string(header.header_bytes));
  header.data_bytes = 1;
  for (std::size_t d = 0; d < dims; ++d) {
    const std::uint32_t size = internal::read_big_endian_u32(bytes, 4 + 4 * d);
    if (size == 0) fail_idx(name, "dimension " + std::to_string(d) + " is zero");
    if (header.data_bytes > std::numeric_limits<std::uint64_t>::max() / size)
      fail_idx(name, "the dimensions' product overflows 64 bits");
    header.data_bytes *= size;
    header.dims.push_back(size);
  }
  return header;
}

/// Parses a whole IDX file held in memory (pure: no I/O; the fuzzing entry point). The payload must be
/// exactly the product of the dimensions; `name` only labels the error messages.
inline IdxArray parse_idx(std::span<const std::uint8_t> bytes, std::string_view name) {
  IdxHeader header = parse_idx_header(bytes, name);
  const std::uint64_t present = bytes.size() - header.header_bytes;
  if (present < header.data_bytes)
    internal::fail_idx(name, "truncated: the header promises " + std::to_string(header.data_bytes) +
                                 " data bytes but only " + std::to_string(present) + " follow it");
  if (present > header.data_bytes)
    internal::fail_idx(name, std::to_string(present - header.data_bytes) + " trailing bytes after the " +
                                 std::to_string(header.data_bytes) + " data bytes the header promises");
  IdxArray array;
  array.dims = std::move(header.dims);
  const auto payload = bytes.subspan(header.header_bytes);
  array.data.assign(payload.begin(), payload.end());
  return array;
}

namespace internal {

inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path, std::uintmax_t max_bytes) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) fail_idx(path.string(), "cannot read: " + error.message());
  if (size > max_bytes)
    fail_idx(path.string(), "too large: " + std::to_string(size) + " bytes (the limit is " +
                                std::to_string(max_bytes) + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_idx(path.string(), "cannot open for reading");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size()))
    fail_idx(path.string(), "read " + std::to_string(in.gcount()) + " of " + std::to_string(size) + " bytes");
  return bytes;
}

inline bool is_gzip(std::span<const std::uint8_t> bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

/// Deflate never compresses better than about 1032:1 (a run of one byte, 258 bytes per 2-bit code), so a
/// gzip file of n bytes cannot inflate to more than this; larger promised sizes mean a truncated file.
inline std::uint64_t max_inflated_bytes(std::uint64_t compressed) { return 1032 * compressed + 1024; }

#ifdef STOCH_WITH_ZLIB
/// Inflates a gzip stream on demand, never more than asked for.
class GzipReader {
 public:
  GzipReader(std::span<const std::uint8_t> compressed, std::string_view name) : name_(name) {
    stream_.next_in = const_cast<Bytef*>(compressed.data());  // zlib's API is not const-correct
    stream_.avail_in = static_cast<uInt>(compressed.size());
    if (compressed.size() > std::numeric_limits<uInt>::max()) fail_idx(name_, "gzip file too large");
    if (inflateInit2(&stream_, 15 + 16) != Z_OK) fail_idx(name_, "zlib: inflateInit2 failed");
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;
  ~GzipReader() { inflateEnd(&stream_); }

  /// Appends up to `n` inflated bytes to `out`; fewer only at the end of the stream.
  void read(std::vector<std::uint8_t>& out, std::size_t n) {
    const std::size_t start = out.size();
    out.resize(start + n);
    std::size_t done = 0;
    while (done < n && !ended_) {
      stream_.next_out = out.data() + start + done;
      stream_.avail_out = static_cast<uInt>(std::min<std::size_t>(n - done, std::numeric_limits<uInt>::max()));
      const uInt before = stream_.avail_out;
      const int status = inflate(&stream_, Z_NO_FLUSH);
      done += before - stream_.avail_out;
      if (status == Z_STREAM_END) {
        ended_ = true;
        if (stream_.avail_in != 0) fail_idx(name_, "data after the end of the gzip stream");
      } else if (status == Z_BUF_ERROR && stream_.avail_in == 0) {
        fail_idx(name_, "truncated gzip stream");
      } else if (status != Z_OK) {
        fail_idx(name_, std::string("corrupt gzip stream (zlib: ") + (stream_.msg ? stream_.msg : "error") + ")");
      }
    }
    out.resize(start + done);
  }

 private:
  z_stream stream_{};
  std::string name_;
  bool ended_ = false;
};

/// Inflates exactly the IDX file the header inside promises, and checks that the stream ends there.
inline std::vector<std::uint8_t> inflate_idx(std::span<const std::uint8_t> compressed, std::string_view name) {
  GzipReader reader(compressed, name);
  std::vector<std::uint8_t> bytes;
  reader.read(bytes, 4);
  if (bytes.size() == 4) reader.read(bytes, idx_header_bytes(bytes[3]) - 4);
  const IdxHeader header = parse_idx_header(bytes, name);  // throws on a short or foreign header
  if (header.data_bytes > max_inflated_bytes(compressed.size()))
    fail_idx(name, "truncated: the header promises " + std::to_string(header.data_bytes) +
                       " data bytes, more than a gzip file of " + std::to_string(compressed.size()) +
                       " bytes can hold");
  bytes.reserve(header.header_bytes + header.data_bytes + 1);
  reader.read(bytes, static_cast<std::size_t>(header.data_bytes));
  reader.read(bytes, 1);  // one byte more than promised would be trailing data: parse_idx reports it
  return bytes;
}
#endif

}  // namespace internal

/// Reads an IDX file, plain or gzip'd (detected by its magic bytes 1f 8b, not by its name). Throws
/// stoch::Error naming the file and the problem if it cannot be read, is truncated, has trailing bytes,
/// or is not an unsigned-byte IDX file with magic 2051 or 2049.
inline IdxArray read_idx(const std::filesystem::path& path) {
  constexpr std::uintmax_t max_file_bytes = std::uintmax_t{1} << 32;  // MNIST's largest file: 47 MB
  const std::string name = path.string();
  const std::vector<std::uint8_t> bytes = internal::read_file_bytes(path, max_file_bytes);
  if (!internal::is_gzip(bytes)) return parse_idx(bytes, name);
#ifdef STOCH_WITH_ZLIB
  return parse_idx(internal::inflate_idx(bytes, name), name);
#else
  internal::fail_idx(name, "is gzip-compressed, but stoch was built without zlib (install zlib's development "
                           "files and reconfigure, or decompress the file with gunzip)");
#endif
}

/// Images (`count x rows x cols`, magic 2051) as a `rows*cols x count` matrix, one image per column,
/// pixels scaled from 0..255 to [0, 1].
template <class T>
Matrix<T> idx_images_to_matrix(const IdxArray& images, std::string_view name) {
  if (images.dims.size() != 3)
    internal::fail_idx(name, "expected images (3 dimensions), got " + std::to_string(images.dims.size()));
  const Index count = images.dims[0];
  const Index pixels = Index{images.dims[1]} * Index{images.dims[2]};
  Matrix<T> result(pixels, count);
  const Eigen::Map<const Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic>> raw(images.data.data(),
                                                                                           pixels, count);
  result = raw.template cast<T>() * (T(1) / T(255));
  return result;
}

/// Labels (`count`, magic 2049) as ints, each checked to be below `classes`.
inline std::vector<int> idx_labels(const IdxArray& labels, std::string_view name, int classes = 10) {
  if (labels.dims.size() != 1)
    internal::fail_idx(name, "expected labels (1 dimension), got " + std::to_string(labels.dims.size()));
  std::vector<int> result(labels.data.begin(), labels.data.end());
  for (std::size_t i = 0; i < result.size(); ++i)
    if (result[i] >= classes)
      internal::fail_idx(name, "label " + std::to_string(result[i]) + " of example " + std::to_string(i) +
                                   " is out of range [0, " + std::to_string(classes) + ")");
  return result;
}

}  // namespace stoch
