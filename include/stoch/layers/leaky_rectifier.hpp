// stoch — the leaky rectifier max(a, s a), 0 <= s < 1 (Maas, Hannun, Ng 2013), the hidden activation of the
// binary-VAE benchmark's non-linear encoder and decoder (s = 0.3, as in Dong, Mnih & Tucker 2020's code).
#pragma once

#include <cmath>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/layers/elementwise.hpp"

namespace stoch {

template <class T>
struct LeakyRectifierOptions {
  T slope = T(0.01);  ///< s, the slope for a < 0: finite, in [0, 1) (s = 0 is the Rectifier)
};

/// h = a for a > 0, s a otherwise; dL/da = dL/dh for a > 0, s dL/dh otherwise (the derivative at the kink
/// a = 0 is taken as s, the left one). Not a gate: with s > 0 its output is zero only where a is, so it has
/// no closed units to skip.
template <class T>
class LeakyRectifier : public internal::Elementwise<LeakyRectifier<T>, T> {
  using Base = internal::Elementwise<LeakyRectifier<T>, T>;

 public:
  /// No parameters or state: backward only computes dL/dx (see layer.hpp).
  static constexpr bool backward_only_propagates = true;

  /// Throws stoch::Error naming the layer unless options.slope is finite and in [0, 1).
  explicit LeakyRectifier(Index units, LeakyRectifierOptions<T> options = {})
      : Base(units, "LeakyRectifier"), slope_(options.slope) {
    if (!(slope_ >= T(0) && slope_ < T(1)))
      internal::fail("LeakyRectifier: slope must be finite and in [0, 1), got " + std::to_string(slope_));
  }

  T slope() const noexcept { return slope_; }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) {
    h.array() = (a.array() > T(0)).select(a.array(), slope_ * a.array());
  }
  // For s >= 0, h > 0 exactly where a > 0, so the output tells the side of the kink.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = (this->output_.array() > T(0)).select(dh.array(), slope_ * dh.array());
  }

 private:
  T slope_;
};

}  // namespace stoch
