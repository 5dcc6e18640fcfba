// stoch — the rectifier max(0, a) (Nair & Hinton 2010; Glorot et al. 2011), the paper's "Baseline Rectifier"
// gate when used with the L1 sparsity constraint (Sec. 5).
#pragma once

#include "stoch/layers/elementwise.hpp"

namespace stoch {

template <class T>
class Rectifier : public internal::Elementwise<Rectifier<T>, T> {
 public:
  /// A zero rectifier output has zero derivative, so the expert is not needed there.
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;
  /// No parameters or state: backward only computes dL/dx (see layer.hpp).
  static constexpr bool backward_only_propagates = true;

  explicit Rectifier(Index units) : internal::Elementwise<Rectifier<T>, T>(units, "Rectifier") {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h.array() = a.array().max(T(0)); }
  // Derivative 1[a > 0] = 1[h > 0].
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = (this->output_.array() > T(0)).select(dh.array(), T(0));
  }
};

}  // namespace stoch
