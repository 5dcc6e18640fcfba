// The IDX reader: valid files (plain and gzip) load; truncated, oversized and foreign files are refused
// with a message naming the file and the problem, before anything is allocated for the payload.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <stoch/data/idx.hpp>

#include "support/catch.hpp"
#include "support/idx_files.hpp"

using stoch::test::Bytes;
using stoch::test::images_file;
using stoch::test::labels_file;
using stoch::test::put_u32;
using stoch::test::TempDir;


TEST_CASE("parse_idx reads images and labels, big-endian, row-major") {
  const Bytes file = images_file(2, 3, 4);
  const stoch::IdxArray array = stoch::parse_idx(file, "images");
  REQUIRE(array.dims == std::vector<std::uint32_t>{2, 3, 4});
  REQUIRE(array.data.size() == 24);
  REQUIRE(array.data[23] == 23);

  const stoch::Matrix<float> m = stoch::idx_images_to_matrix<float>(array, "images");
  REQUIRE(m.rows() == 12);
  REQUIRE(m.cols() == 2);
  REQUIRE(m(0, 1) == Approx(12.0f / 255.0f));  // image 1 starts at byte 12
  REQUIRE(m(11, 1) == Approx(23.0f / 255.0f));

  const stoch::IdxArray labels = stoch::parse_idx(labels_file({7, 0, 9}), "labels");
  REQUIRE(stoch::idx_labels(labels, "labels") == std::vector<int>{7, 0, 9});
}

TEST_CASE("parse_idx refuses a file truncated anywhere") {
  const Bytes file = images_file(2, 3, 4);
  // Inside the magic number, inside the sizes, right after the header, inside the payload, one byte short.
  for (const std::size_t size : {0, 3, 7, 15, 16, 20, 39}) {
    const Bytes cut(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(size));
    REQUIRE_THROWS_MESSAGE(stoch::parse_idx(cut, "cut.idx"), "cut.idx");
    REQUIRE_THROWS_MESSAGE(stoch::parse_idx(cut, "cut.idx"), "truncated");
  }
}

TEST_CASE("parse_idx refuses trailing bytes, foreign magic numbers, other type codes, zero and huge sizes") {
  Bytes longer = images_file(2, 3, 4);
  longer.push_back(0);
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(longer, "long.idx"), "1 trailing bytes");

  Bytes png = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(png, "picture.png"), "picture.png': not an IDX file");

  Bytes floats = images_file(1, 1, 1);
  floats[2] = 0x0D;  // IDX type code of float
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(floats, "f.idx"), "unsupported type code 13");

  Bytes two_dims = images_file(1, 1, 1);
  two_dims[3] = 2;  // magic 2050: a valid IDX header, but not MNIST's
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(two_dims, "m.idx"), "magic number 2050");

  Bytes mismatch = labels_file({1, 2, 3});
  mismatch[7] = 4;  // promises 4 labels, holds 3
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(mismatch, "l.idx"), "promises 4 data bytes but only 3");

  Bytes zero = images_file(1, 1, 1);
  zero[11] = 0;  // rows = 0
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(zero, "z.idx"), "dimension 1 is zero");

  // 2^32-1 cubed overflows 64 bits; caught before multiplying further or allocating.
  Bytes huge;
  put_u32(huge, stoch::kIdxImagesMagic);
  for (int d = 0; d < 3; ++d) put_u32(huge, 0xFFFFFFFFu);
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(huge, "h.idx"), "overflows");
  // Large but representable: refused by the size check, nothing allocated.
  huge.resize(4);
  for (int d = 0; d < 3; ++d) put_u32(huge, 60000);
  REQUIRE_THROWS_MESSAGE(stoch::parse_idx(huge, "h.idx"), "promises 216000000000000 data bytes");
}

TEST_CASE("idx_labels refuses labels out of range and shapes of the wrong kind") {
  const stoch::IdxArray labels = stoch::parse_idx(labels_file({3, 10}), "labels");
  REQUIRE_THROWS_MESSAGE(stoch::idx_labels(labels, "labels"), "label 10 of example 1 is out of range");
  REQUIRE_THROWS_MESSAGE(stoch::idx_images_to_matrix<float>(labels, "labels"), "expected images");
  const stoch::IdxArray images = stoch::parse_idx(images_file(1, 2, 2), "images");
  REQUIRE_THROWS_MESSAGE(stoch::idx_labels(images, "images"), "expected labels");
}

TEST_CASE("read_idx reads a file and names it in errors") {
  TempDir dir;
  const auto path = dir.write("labels-idx1-ubyte", labels_file({4, 2}));
  REQUIRE(stoch::read_idx(path).data == Bytes{4, 2});
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.path / "missing"), "missing': cannot read");
  Bytes cut = labels_file({4, 2});
  cut.pop_back();
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("cut", cut)), "cut': truncated");
}

#ifdef STOCH_WITH_ZLIB
namespace {
Bytes gzip(const Bytes& bytes, const TempDir& dir) {
  const auto path = dir.path / "tmp.gz";
  gzFile out = gzopen(path.string().c_str(), "wb9");
  REQUIRE(out != nullptr);
  gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(out);
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST_CASE("read_idx inflates gzip'd files, detected by content, and refuses damaged ones") {
  TempDir dir;
  const Bytes plain = images_file(3, 28, 28);
  const Bytes packed = gzip(plain, dir);
  REQUIRE(packed.size() < plain.size());
  const stoch::IdxArray array = stoch::read_idx(dir.write("images.gz", packed));
  REQUIRE(array.dims == std::vector<std::uint32_t>{3, 28, 28});
  REQUIRE(array.data == Bytes(plain.begin() + 16, plain.end()));
  REQUIRE(stoch::read_idx(dir.write("no-suffix", packed)).data == array.data);

  // Cut inside the gzip header, inside the deflate data, inside the trailer (CRC and size).
  for (const std::size_t size : {std::size_t{5}, packed.size() / 2, packed.size() - 4}) {
    const Bytes cut(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(size));
    REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("cut.gz", cut)), "cut.gz");
  }
  // Valid gzip, but the IDX inside is one byte short / one byte long.
  const Bytes short_idx(plain.begin(), plain.end() - 1);
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("s.gz", gzip(short_idx, dir))), "truncated");
  Bytes long_idx = plain;
  long_idx.push_back(1);
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("l.gz", gzip(long_idx, dir))), "trailing bytes");
  // A header promising far more than the compressed file can hold: refused before the payload is allocated.
  Bytes bomb;
  put_u32(bomb, stoch::kIdxImagesMagic);
  for (int d = 0; d < 3; ++d) put_u32(bomb, 60000);
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("bomb.gz", gzip(bomb, dir))), "more than a gzip file");
  // Corrupt deflate data.
  Bytes corrupt = packed;
  corrupt[packed.size() / 2] ^= 0xFF;
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("bad.gz", corrupt)), "bad.gz");
}
#else
TEST_CASE("read_idx without zlib explains how to read a gzip'd file") {
  TempDir dir;
  const Bytes gz_magic = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  REQUIRE_THROWS_MESSAGE(stoch::read_idx(dir.write("x.gz", gz_magic)), "built without zlib");
}
#endif
