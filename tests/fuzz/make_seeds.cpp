// Writes the fuzzers' seed corpora: small valid inputs, generated at build time (no committed binaries).
//   make_seeds <dir>   ->  <dir>/idx/{images,labels}[.gz]   and, with the model loader, <dir>/model/*
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <iostream>
#include <string>
#include <vector>

#ifdef STOCH_WITH_ZLIB
#include <zlib.h>
#endif

#include "seeds.hpp"
#ifdef STOCH_FUZZ_MODEL
#include "model_fixture.hpp"
#endif

namespace {

void write(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

#ifdef STOCH_WITH_ZLIB
void write_gzip(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
  gzFile file = gzopen(path.string().c_str(), "wb9");
  if (file == nullptr || gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size()) ||
      gzclose(file) != Z_OK)
    throw std::runtime_error("cannot write " + path.string());
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds <dir>\n";
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "idx");
  const auto images = stoch::fuzz::idx_images(2, 3, 3);
  const auto labels = stoch::fuzz::idx_labels({0, 3, 9, 7});
  write(dir / "idx" / "images", images);
  write(dir / "idx" / "labels", labels);
#ifdef STOCH_WITH_ZLIB
  write_gzip(dir / "idx" / "images.gz", images);
  write_gzip(dir / "idx" / "labels.gz", labels);
#endif
#ifdef STOCH_FUZZ_MODEL
  std::filesystem::create_directories(dir / "model");
  int k = 0;
  for (const auto& file : stoch::fuzz::model_seed_files()) write(dir / "model" / ("model" + std::to_string(k++)), file);
#endif
  return 0;
}
