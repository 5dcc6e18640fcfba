// stoch — weight initialisation from an explicit generator.
#pragma once

#include <cmath>

#include "stoch/core/distributions.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/random.hpp"

namespace stoch {

/// Uniform on [-r, r] with r = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), the usual choice for
/// tanh and sigmoid layers; the paper does not state its initialisation.
template <class T>
void glorot_uniform(Generator& rng, MatrixRef<T> weights, Index fan_in, Index fan_out) {
  const T radius = std::sqrt(T(6) / static_cast<T>(fan_in + fan_out));
  fill_uniform<T>(rng, weights);
  weights.array() = (weights.array() * T(2) - T(1)) * radius;
}

}  // namespace stoch
