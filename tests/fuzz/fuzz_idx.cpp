// libFuzzer target for the IDX reader (stoch/data/idx.hpp), the code that reads files from outside.
// Any input must either parse into a consistent array or throw stoch::Error; a crash, a sanitizer report,
// an uncaught exception of another type or an inconsistent result is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "stoch/data/idx.hpp"

namespace {

void check_consistent(const stoch::IdxArray& array) {
  std::uint64_t product = 1;
  for (const std::uint32_t size : array.dims) product *= size;
  if (array.dims.empty() || product != array.data.size()) std::abort();
}

void convert(const stoch::IdxArray& array) {
  // The conversions MNIST loading applies next; they may refuse (wrong rank, label >= 10) but not crash.
  try {
    const auto images = stoch::idx_images_to_matrix<float>(array, "fuzz");
    if (images.size() != static_cast<stoch::Index>(array.data.size())) std::abort();
  } catch (const stoch::Error&) {
  }
  try {
    const auto labels = stoch::idx_labels(array, "fuzz");
    if (labels.size() != array.data.size()) std::abort();
  } catch (const stoch::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try {
    // What read_idx does after reading the file: gzip'd input is inflated first (bounded by the header).
#ifdef STOCH_WITH_ZLIB
    const stoch::IdxArray array = stoch::internal::is_gzip(bytes)
                                      ? stoch::parse_idx(stoch::internal::inflate_idx(bytes, "fuzz"), "fuzz")
                                      : stoch::parse_idx(bytes, "fuzz");
#else
    const stoch::IdxArray array = stoch::parse_idx(bytes, "fuzz");
#endif
    check_consistent(array);
    convert(array);
  } catch (const stoch::Error&) {
    // Refused with a message: the expected outcome for almost every input.
  }
  return 0;
}
