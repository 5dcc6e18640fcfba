// The small model the model-loader fuzzer loads into, and the seed files saved from it.
#pragma once

#include <cstdint>
#include <vector>

#include "stoch/core/parameter.hpp"
#include "stoch/io/serialization.hpp"

namespace stoch::fuzz {

/// Two layers' worth of parameters (3 -> 2 -> 1) plus a 1 x 1 layer state, filled with distinct values.
template <class T>
struct FuzzModel {
  Parameter<T> w1{"l1.W", 2, 3}, b1{"l1.b", 2, 1}, w2{"l2.W", 1, 2}, b2{"l2.b", 1, 1}, state{"gate.threshold", 1, 1, false};

  FuzzModel() {
    T v = T(0.25);
    for (Parameter<T>* p : parameters()) {
      for (Index k = 0; k < p->value.size(); ++k) p->value.data()[k] = (v += T(0.5));
      p->velocity = Matrix<T>::Constant(p->value.rows(), p->value.cols(), T(-1));
    }
  }
  ParameterList<T> parameters() { return {&w1, &b1, &w2, &b2, &state}; }
};

/// Seeds: float and double files, with and without velocities and metadata.
inline std::vector<std::vector<std::uint8_t>> model_seed_files() {
  ModelFileOptions with_state;
  with_state.save_velocities = true;
  with_state.metadata.integers = {{"epoch", 3}, {"batch", 17}};
  with_state.metadata.reals = {{"learning_rate", 0.1}};
  FuzzModel<float> f;
  FuzzModel<double> d;
  return {serialize_model(f.parameters()), serialize_model(f.parameters(), with_state),
          serialize_model(d.parameters()), serialize_model(d.parameters(), with_state)};
}

}  // namespace stoch::fuzz
