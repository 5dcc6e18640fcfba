// Tests for include/stoch/data/mnist.hpp: the split (the last 10,000 training examples are the validation
// set), pixels scaled to [0, 1], --train-limit, the .gz names, and the errors that name a missing file or
// images and labels that disagree.
#include <cstdint>
#include <filesystem>
#include <vector>

#include <stoch/data/mnist.hpp>

#include "support/catch.hpp"
#include "support/idx_files.hpp"

using stoch::test::images_file;
using stoch::test::labels_file;
using stoch::test::TempDir;

namespace {

/// Writes a small MNIST-shaped data set: `train` training examples (labels i mod 10), 2 test examples.
void write_mnist(const TempDir& dir, std::uint32_t train, bool gzip_names = false) {
  const std::string suffix = gzip_names ? ".gz" : "";
  std::vector<std::uint8_t> labels(train);
  for (std::uint32_t i = 0; i < train; ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
  dir.write(stoch::kMnistFiles[0] + suffix, images_file(train, 28, 28));
  dir.write(stoch::kMnistFiles[1] + suffix, labels_file(labels));
  dir.write(stoch::kMnistFiles[2] + suffix, images_file(2, 28, 28));
  dir.write(stoch::kMnistFiles[3] + suffix, labels_file({5, 6}));
}

}  // namespace

TEST_CASE("load_mnist splits the last 10,000 training examples off for validation", "[mnist]") {
  TempDir dir;
  write_mnist(dir, 10003);
  const stoch::Mnist<float> mnist = stoch::load_mnist<float>(dir.path);
  REQUIRE(mnist.train.size() == 3);
  REQUIRE(mnist.valid.size() == 10000);
  REQUIRE(mnist.test.size() == 2);
  REQUIRE(mnist.valid.labels.front() == 3);
  REQUIRE(mnist.test.labels == std::vector<int>{5, 6});
  // Pixel k of the file is k mod 256, scaled by 1/255: the first validation image starts at byte 3 * 784.
  REQUIRE(mnist.valid.images(0, 0) == Approx(static_cast<float>((3 * 784) % 256) / 255.0f));
  REQUIRE(mnist.train.images.minCoeff() >= 0.0f);
  REQUIRE(mnist.train.images.maxCoeff() <= 1.0f);
  REQUIRE(mnist.train.images.rows() == stoch::kMnistPixels);
  // --train-limit keeps the first N training examples; validation is unchanged.
  const stoch::Mnist<double> limited = stoch::load_mnist<double>(dir.path, 2);
  REQUIRE(limited.train.size() == 2);
  REQUIRE(limited.valid.size() == 10000);
}

TEST_CASE("load_mnist finds the .gz names when the plain ones are missing", "[mnist]") {
  TempDir dir;
  REQUIRE_FALSE(stoch::has_mnist(dir.path));
  write_mnist(dir, 10001, /*gzip_names=*/true);  // plain IDX bytes: read_idx detects gzip by content
  REQUIRE(stoch::has_mnist(dir.path));
  REQUIRE(stoch::mnist_file(dir.path, stoch::kMnistFiles[0]).filename() == "train-images-idx3-ubyte.gz");
  REQUIRE(stoch::load_mnist<float>(dir.path).train.size() == 1);
}

TEST_CASE("load_mnist names a missing file, disagreeing files and too few examples", "[mnist]") {
  TempDir dir;
  write_mnist(dir, 10003);
  dir.write(stoch::kMnistFiles[3], labels_file({5, 6, 7}));
  REQUIRE_THROWS_MESSAGE(stoch::load_mnist<float>(dir.path), "holds 2 images but");
  std::filesystem::remove(dir.path / stoch::kMnistFiles[3]);
  REQUIRE_THROWS_MESSAGE(stoch::load_mnist<float>(dir.path), "fetch-mnist");
  write_mnist(dir, 10000);  // nothing left for training
  REQUIRE_THROWS_MESSAGE(stoch::load_mnist<float>(dir.path), "10000 training examples, need more than");
  dir.write(stoch::kMnistFiles[0], images_file(10000, 27, 28));  // not MNIST's 28 x 28
  REQUIRE_THROWS_MESSAGE(stoch::load_mnist<float>(dir.path), "training images have 756 pixels, expected 784");
}
