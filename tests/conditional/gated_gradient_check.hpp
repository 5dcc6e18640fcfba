// The finite-difference check of a GatedLayer (plain or block gates) on one expert path.
#pragma once

#include "stoch/conditional/gated_layer.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

namespace stoch::test {

/// Sets the layer's expert path and checks its input and parameter gradients at x against central finite
/// differences. The density bounds require some gates closed and some open, so that both the skipped and
/// the computed entries are checked.
template <class Gater>
void check_gated_gradients(GatedLayer<Gater>& layer, ExpertPath path, const Matrix<double>& x) {
  layer.set_path(path);
  const auto result = check_gradients(layer, x);
  CHECK(layer.density() > 0.2);
  CHECK(layer.density() < 0.8);
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
  CHECK(result.max_parameter_error < 1e-7);
}

}  // namespace stoch::test
