// stoch — the straight-through estimator (Sec. 4, Eq. 13; Hinton 2012, lecture 15b): a stochastic binary
// unit whose backward copies dL/dh as the gradient on the sigmoid's input.
#pragma once

#include <optional>
#include <string>

#include "stoch/gates/binary_gate.hpp"
#include "stoch/gates/threshold.hpp"

namespace stoch {

template <class T>
struct StraightThroughOptions {
  /// false: dL/da = dL/dh (Eq. 13, the paper's best, App. A.4); true: the variant dL/dh * sigm'(a).
  bool sigmoid_derivative = false;
  /// Eq. 14 on p = sigm(a), its exact gradient on a (with sigm'(a) = p (1 - p)); off when empty.
  std::optional<KlSparsity<T>> kl = std::nullopt;
  /// App. A.2's Beta noise on the sigmoid's input (off when empty). The paper did not add noise to ST, whose
  /// sigmoids it found decisive already; it is here to test that where they are not (examples/mnist/CHOICES.md).
  std::optional<BetaNoise<T>> beta_noise = std::nullopt;
  /// true: the training forward is the evaluation's, h = 1[p > t] with p = sigm(a + E[noise]) and the
  /// threshold t (no draw); backward unchanged. Not the paper's unit: a deterministic straight-through that
  /// trains the network on the computation it will run at test time (App. A.3's thresholded gates), e.g. for
  /// the last epochs once t is calibrated. Before that, t = 1/2 and a gate biased towards a sparse target
  /// (p < 1/2) would stay closed.
  bool deterministic = false;
};

/// h = 1[u < p], p = sigm(a + noise), on pre-activations `a` (`units x batch`) (Eq. 3 with its erratum fixed;
/// noise = 0 unless `beta_noise` is set, App. A.2).
/// Backward: dL/da = dL/dh (or dL/dh * p (1 - p)), plus the KL penalty's exact gradient when configured: a
/// biased estimator, back-propagating through the threshold as if it were the identity.
/// Evaluation: h = 1[p > t] with p = sigm(a + E[noise]), t calibratable (default 0.5). Saved state:
/// "<name>.threshold".
/// With `deterministic` (set_deterministic), training forwards as evaluation does; the backward and the KL
/// gradient are the same functions of p.
template <class T>
class StraightThrough : public internal::SigmoidBernoulliGate<StraightThrough<T>, T> {
  using Base = internal::SigmoidBernoulliGate<StraightThrough<T>, T>;

 public:
  /// A closed gate (h = 0) still receives dL/dh = dy * H: that is how it learns to open, so the expert value
  /// is needed for every gate in training (the gated layer computes the expert densely).
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = true;

  explicit StraightThrough(Index units, StraightThroughOptions<T> options = {},
                           std::string name = "straight_through")
      : Base(units, "StraightThrough", std::move(name), options.kl, options.beta_noise), options_(options) {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!options_.deterministic || !ctx.training()) {
      Base::compute(a, h, ctx);
      return;
    }
    this->deterministic_forward(a, this->p_, h);  // the evaluation forward, p kept for backward
  }

  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    const Matrix<T>& p = this->p_;
    if (options_.sigmoid_derivative)
      da.array() = dh.array() * p.array() * (T(1) - p.array());
    else
      da = dh;
    this->add_kl_gradient(p, da);
  }

  const StraightThroughOptions<T>& options() const { return options_; }
  /// Switches the training forward between sampling (false, Sec. 4) and thresholding (true); see the options.
  void set_deterministic(bool on) noexcept { options_.deterministic = on; }

 private:
  StraightThroughOptions<T> options_;
};

}  // namespace stoch
