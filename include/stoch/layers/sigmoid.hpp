// stoch — logistic sigmoid sigm(a) = 1 / (1 + exp(-a)).
#pragma once

#include "stoch/layers/elementwise.hpp"
#include "stoch/core/math.hpp"

namespace stoch {

template <class T>
class Sigmoid : public internal::Elementwise<Sigmoid<T>, T> {
 public:
  /// No parameters or state: backward only computes dL/dx (see layer.hpp).
  static constexpr bool backward_only_propagates = true;

  explicit Sigmoid(Index units) : internal::Elementwise<Sigmoid<T>, T>(units, "Sigmoid") {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h.array() = sigmoid(a.array()); }
  // sigm'(a) = sigm(a) (1 - sigm(a)), from the stored output.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    const auto& p = this->output_.array();
    da.array() = dh.array() * p * (T(1) - p);
  }
};

}  // namespace stoch
