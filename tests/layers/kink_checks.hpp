// The exact check of a layer with a kink at 0 (Rectifier, LeakyRectifier) on one fixed 2 x 3 input that
// holds negative values, exactly 0, positive values and a tiny positive one.
#pragma once

#include <array>

#include "stoch/core/context.hpp"
#include "support/catch.hpp"

namespace stoch::test {

/// A 2 x 3 matrix from its entries row by row.
template <class T>
Matrix<T> from_rows(const std::array<T, 6>& entries) {
  return Eigen::Map<const Eigen::Matrix<T, 2, 3, Eigen::RowMajor>>(entries.data());
}

/// On the input -1, 0, 3 / 2, -0.5, 1e-30 (row by row), the forward is exactly `output` and the backward of
/// dh exactly `input_gradient` (both 2 x 3, row by row).
template <template <class> class LayerT, class T>
void check_at_kink_input(LayerT<T>& layer, const std::array<T, 6>& output, const std::array<T, 6>& dh,
                         const std::array<T, 6>& input_gradient) {
  const Matrix<T> x = from_rows<T>({T(-1), T(0), T(3), T(2), T(-0.5), T(1e-30)});
  Context<T> ctx;
  CHECK(layer.forward(x, ctx) == from_rows<T>(output));
  CHECK(layer.backward(from_rows<T>(dh), ctx) == from_rows<T>(input_gradient));
}

}  // namespace stoch::test
