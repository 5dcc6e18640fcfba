// libFuzzer target for the model loader (stoch/io/serialization.hpp: deserialize_model, the in-memory core
// of load_model). Any input must either load or throw stoch::Error; when it throws, the model must be left
// exactly as it was (the loader's promise). Inputs are tried as they are and, so that mutations get past
// the checksum to the shape checks and the copying, once more with the checksum recomputed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "model_fixture.hpp"

namespace {

template <class T>
bool same(const stoch::Parameter<T>& a, const stoch::Parameter<T>& b) {
  // Bitwise, so that NaN payloads count too.
  auto equal = [](const stoch::Matrix<T>& x, const stoch::Matrix<T>& y) {
    return x.rows() == y.rows() && x.cols() == y.cols() &&
           (x.size() == 0 || std::memcmp(x.data(), y.data(), sizeof(T) * static_cast<std::size_t>(x.size())) == 0);
  };
  return equal(a.value, b.value) && equal(a.velocity, b.velocity);
}

template <class T>
void try_load(std::span<const std::uint8_t> bytes) {
  static stoch::fuzz::FuzzModel<T> model;
  static const stoch::fuzz::FuzzModel<T> pristine;
  const stoch::ParameterList<T> params = model.parameters();
  try {
    stoch::deserialize_model<T>(bytes, params, "fuzz");
  } catch (const stoch::Error&) {
    const auto& p = pristine;
    if (!same(model.w1, p.w1) || !same(model.b1, p.b1) || !same(model.w2, p.w2) || !same(model.b2, p.b2) ||
        !same(model.state, p.state))
      std::abort();  // a refused file changed the model
    return;
  }
  model = pristine;  // loaded: start the next input from the same model
}

void try_both(std::span<const std::uint8_t> bytes) {
  try_load<float>(bytes);
  try_load<double>(bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try_both(bytes);
  if (size >= 8) {
    std::vector<std::uint8_t> fixed(data, data + size);
    const std::uint64_t checksum = stoch::fnv1a64(bytes.first(size - 8));
    for (int i = 0; i < 8; ++i) fixed[size - 8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(checksum >> (8 * i));
    try_both(fixed);
  }
  return 0;
}
