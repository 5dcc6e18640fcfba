// stoch — the MNIST data set from its four IDX files, split as in the paper's experiments (Sec. 5):
// the first 50,000 training images for training, the last 10,000 for validation, the 10,000 test images.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "stoch/data/idx.hpp"

namespace stoch {

/// Images (`784 x N`, pixels in [0, 1], one example per column) and their labels (N values in 0..9).
template <class T>
struct LabeledImages {
  Matrix<T> images;
  std::vector<int> labels;

  Index size() const { return images.cols(); }
};

template <class T>
struct Mnist {
  LabeledImages<T> train, valid, test;
};

/// Pixels of an MNIST image (28 x 28), the rows of the image matrices.
inline constexpr Index kMnistPixels = 784;

/// The file names of the original distribution (also those of Fashion-MNIST).
inline constexpr const char* kMnistFiles[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/// `dir/name`, or `dir/name.gz` if only that exists (read_idx detects gzip by content either way).
inline std::filesystem::path mnist_file(const std::filesystem::path& dir, const std::string& name) {
  const std::filesystem::path plain = dir / name;
  const std::filesystem::path gzipped = dir / (name + ".gz");
  if (!std::filesystem::exists(plain) && std::filesystem::exists(gzipped)) return gzipped;
  return plain;
}

/// True if all four files (plain or .gz) are in `dir`.
inline bool has_mnist(const std::filesystem::path& dir) {
  for (const char* name : kMnistFiles)
    if (!std::filesystem::exists(mnist_file(dir, name))) return false;
  return true;
}

/// Where MNIST is: `dir` if not empty, else $STOCH_MNIST_DIR, else the cache of scripts/fetch-mnist
/// (${XDG_CACHE_HOME:-$HOME/.cache}/stoch/mnist); the first of these that holds the four files (has_mnist),
/// or an empty path if none does. `tried`, if given, receives the directories looked at, comma-separated
/// (for the caller's message).
inline std::filesystem::path find_mnist(const std::filesystem::path& dir = {}, std::string* tried = nullptr) {
  std::vector<std::filesystem::path> candidates;
  if (!dir.empty()) {
    candidates.push_back(dir);
  } else {
    if (const char* env = std::getenv("STOCH_MNIST_DIR"); env && *env) candidates.emplace_back(env);
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
      candidates.push_back(std::filesystem::path(xdg) / "stoch/mnist");
    else if (const char* home = std::getenv("HOME"); home && *home)
      candidates.push_back(std::filesystem::path(home) / ".cache/stoch/mnist");
  }
  for (const auto& candidate : candidates) {
    if (tried) {
      if (!tried->empty()) tried->append(", ");
      tried->append(candidate.string());
    }
    if (has_mnist(candidate)) return candidate;
  }
  return {};
}

/// Reads an images file and its labels file and checks they describe the same number of examples.
template <class T>
LabeledImages<T> read_labeled_images(const std::filesystem::path& images_path,
                                     const std::filesystem::path& labels_path) {
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  LabeledImages<T> result{idx_images_to_matrix<T>(images, images_path.string()),
                          idx_labels(labels, labels_path.string())};
  if (static_cast<Index>(result.labels.size()) != result.images.cols())
    internal::fail("MNIST: " + images_path.string() + " holds " + std::to_string(result.images.cols()) +
                   " images but " + labels_path.string() + " holds " + std::to_string(result.labels.size()) +
                   " labels");
  return result;
}

/// The first `count` examples starting at `first`.
template <class T>
LabeledImages<T> slice(const LabeledImages<T>& set, Index first, Index count) {
  return {set.images.middleCols(first, count),
          std::vector<int>(set.labels.begin() + first, set.labels.begin() + first + count)};
}

/// Loads MNIST from `dir`: train = first (N - 10,000) training examples (50,000 for MNIST), valid = the
/// last 10,000 training examples, test = the t10k files. `train_limit > 0` keeps only the first
/// `train_limit` training examples (quick runs); validation and test are never cut.
template <class T>
Mnist<T> load_mnist(const std::filesystem::path& dir, Index train_limit = 0) {
  constexpr Index valid_size = 10000;
  if (!has_mnist(dir))
    internal::fail("MNIST: the four IDX files (" + std::string(kMnistFiles[0]) + ", ...) are not all in '" +
                   dir.string() + "'; run scripts/fetch-mnist");
  const LabeledImages<T> full =
      read_labeled_images<T>(mnist_file(dir, kMnistFiles[0]), mnist_file(dir, kMnistFiles[1]));
  if (full.images.rows() != kMnistPixels)
    internal::fail("MNIST: training images have " + std::to_string(full.images.rows()) + " pixels, expected 784");
  if (full.size() <= valid_size)
    internal::fail("MNIST: " + std::to_string(full.size()) + " training examples, need more than " +
                   std::to_string(valid_size) + " for the train/valid split");
  Mnist<T> mnist;
  const Index train_size = full.size() - valid_size;
  mnist.train = slice(full, 0, train_limit > 0 ? std::min(train_limit, train_size) : train_size);
  mnist.valid = slice(full, train_size, valid_size);
  mnist.test = read_labeled_images<T>(mnist_file(dir, kMnistFiles[2]), mnist_file(dir, kMnistFiles[3]));
  if (mnist.test.images.rows() != kMnistPixels)
    internal::fail("MNIST: test images have " + std::to_string(mnist.test.images.rows()) + " pixels, expected 784");
  return mnist;
}

}  // namespace stoch
