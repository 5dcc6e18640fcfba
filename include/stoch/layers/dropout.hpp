// stoch — dropout (Hinton et al., 2012), the multiplicative noise of Sec. 2: "dropout noise ... is multiplied
// (just after the neuron non-linearity)". Not part of the paper's experiment; a regulariser its Sec. 2 names.
#pragma once

#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/layers/elementwise.hpp"

namespace stoch {

/// Inverted dropout on `units x batch` activations: in training each entry is kept with probability
/// 1 - rate and scaled by 1 / (1 - rate), so that E[output] = input and evaluation is the identity (the
/// "spirit of dropout" of App. A.3: deterministic at test time, with the training-time mean).
///
///   train: h = a ⊙ m / (1 - rate), m ~ Bernoulli(1 - rate) per entry, drawn from ctx.generator();
///   eval:  h = a, nothing drawn;
///   backward: dL/da = dL/dh ⊙ m / (1 - rate) (the same mask).
///
/// rate = 0 is the identity in both modes and draws nothing, so a model built with it reproduces, draw for
/// draw, the same model without the layer. rate must be in [0, 1).
template <class T>
class Dropout : public internal::Elementwise<Dropout<T>, T> {
 public:
  /// No parameters or state: backward only computes dL/dx (see layer.hpp).
  static constexpr bool backward_only_propagates = true;

  Dropout(Index units, T rate) : internal::Elementwise<Dropout<T>, T>(units, "Dropout"), rate_(rate) {
    if (!(rate >= T(0) && rate < T(1)))
      internal::fail("Dropout: rate must be in [0, 1) (the probability of dropping an entry), got " +
                     std::to_string(rate));
  }

  T rate() const noexcept { return rate_; }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training() || rate_ == T(0)) {
      h = a;
      scaled_mask_.resize(0, 0);  // backward passes dL/dh through unchanged
      return;
    }
    scaled_mask_.resize(a.rows(), a.cols());
    fill_bernoulli<T>(ctx.generator(), T(1) - rate_, scaled_mask_);
    scaled_mask_ *= T(1) / (T(1) - rate_);
    h.array() = a.array() * scaled_mask_.array();
  }

  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    if (scaled_mask_.size() == 0) da = dh;
    else da.array() = dh.array() * scaled_mask_.array();
  }

 private:
  T rate_;
  Matrix<T> scaled_mask_;  // m / (1 - rate) of the last training forward; empty when nothing was dropped
};

}  // namespace stoch
