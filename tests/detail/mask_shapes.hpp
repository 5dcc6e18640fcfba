// The masks on which the active-set and sparse-kernel tests run: shapes and densities of
// test::exact_mask (conditional/mask_gates.hpp).
#pragma once

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

namespace stoch::test {

struct MaskShape {
  Index units, batch;
};

// Unit counts around the 16-gate blocks of the list building (15, 16, 17, 33) and a batch of 1.
inline constexpr MaskShape kMaskShapes[] = {{1, 1}, {15, 3}, {16, 16}, {17, 40}, {33, 7}, {200, 32}, {5, 130}};
inline constexpr double kMaskDensities[] = {0.0, 0.02, 0.1, 0.5, 1.0};

}  // namespace stoch::test
