// stoch — hyperbolic tangent, the gater's hidden non-linearity (App. A: 400 tanh units).
#pragma once

#include "stoch/layers/elementwise.hpp"

namespace stoch {

template <class T>
class Tanh : public internal::Elementwise<Tanh<T>, T> {
 public:
  /// No parameters or state: backward only computes dL/dx (see layer.hpp).
  static constexpr bool backward_only_propagates = true;

  explicit Tanh(Index units) : internal::Elementwise<Tanh<T>, T>(units, "Tanh") {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h.array() = a.array().tanh(); }
  // d tanh(a) / da = 1 - tanh(a)^2, from the stored output.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = dh.array() * (T(1) - this->output_.array().square());
  }
};

}  // namespace stoch
