// stoch — the sigmoid gates of the baselines of Sec. 5: "Baseline Sigmoid" (no noise) and "Baseline
// Sigmoid+Noise" (Gaussian noise on the sigmoid's input during training).
#pragma once

#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/layers/elementwise.hpp"

namespace stoch {

template <class T>
struct NoisySigmoidOptions {
  T noise_std = T(0);  ///< standard deviation of z, >= 0; 0 is the "Baseline Sigmoid"
};

/// On pre-activations `a` (`units x batch`): train h = sigm(a + z), z ~ N(0, noise_std^2) per entry;
/// eval h = sigm(a) (the noise replaced by its mean). Backward dL/da = dL/dh * h (1 - h), z held fixed.
/// Its output is never exactly zero, so it gates densely (no threshold, nothing to skip).
template <class T>
class NoisySigmoid : public internal::Elementwise<NoisySigmoid<T>, T> {
  using Base = internal::Elementwise<NoisySigmoid<T>, T>;

 public:
  /// Smooth and never closed: every gate needs dL/dh, hence the expert value everywhere.
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = true;

  /// Throws stoch::Error naming the option when noise_std < 0.
  explicit NoisySigmoid(Index units, NoisySigmoidOptions<T> options = {})
      : Base(units, "NoisySigmoid"), options_(options) {
    internal::check_non_negative("NoisySigmoid: noise_std", options_.noise_std);
  }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (ctx.training() && options_.noise_std > T(0)) {
      fill_gaussian<T>(ctx.generator(), h, options_.noise_std);
      h.array() = sigmoid(h.array() + a.array());
    } else {
      h.array() = sigmoid(a.array());
    }
  }

  // sigm'(x) = sigm(x) (1 - sigm(x)) at x = a + z, from the stored output.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = dh.array() * this->output_.array() * (T(1) - this->output_.array());
  }

  const NoisySigmoidOptions<T>& options() const { return options_; }

 private:
  NoisySigmoidOptions<T> options_;
};

}  // namespace stoch
