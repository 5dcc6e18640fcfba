// stoch — the STS unit, Stochastic Times Smooth (Sec. 2.2, Eq. 2): h = b sqrt(p), b ~ Bernoulli(sqrt(p)),
// p = sigm(a), trained by back-propagating through the smooth factor sqrt(p) with b held fixed.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/gates/binary_gate.hpp"
#include "stoch/gates/threshold.hpp"

namespace stoch {

template <class T>
struct StochasticTimesSmoothOptions {
  std::optional<BetaNoise<T>> beta_noise = std::nullopt;  ///< off when empty
  std::optional<KlSparsity<T>> kl = std::nullopt;         ///< Eq. 14 on p = sigm(a + noise); off when empty
};

/// On pre-activations `a` (`units x batch`):
///   train: p = sigm(a + noise), b = 1[u < sqrt(p)], h = b sqrt(p)       (Eq. 2; noise = 0 without Beta noise)
///   backward: dL/da = dL/dh * b * d sqrt(p)/da = dL/dh * b sqrt(p) (1 - p) / 2  (b held fixed), plus the KL
///             penalty's gradient when configured;
///   eval: score = sqrt(p) with p = sigm(a + E[noise]); h = score * 1[score > t], t calibratable
///         (default 0.5, i.e. p > 1/4).
/// Proposition 2: E[h] = p and P(h > 0) = sqrt(p). Saved state: "<name>.threshold".
template <class T>
class StochasticTimesSmooth : public internal::GateBase<StochasticTimesSmooth<T>, T> {
  using Base = internal::GateBase<StochasticTimesSmooth<T>, T>;

 public:
  /// b = 0 gives a zero output and a zero derivative: closed gates need no expert value.
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;

  /// Throws stoch::Error naming the option when one is out of its domain.
  explicit StochasticTimesSmooth(Index units, StochasticTimesSmoothOptions<T> options = {},
                                 std::string name = "sts")
      : Base(units, "StochasticTimesSmooth", std::move(name), T(0.5), options.kl, options.beta_noise),
        options_(options) {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training()) {
      this->scores_.resize(a.rows(), a.cols());
      this->scores_.array() = sigmoid(a.array() + this->noise_mean()).sqrt();
      this->eval_valued(h);
      return;
    }
    this->sigmoid_with_noise(a, ctx.generator(), p_);
    h.array() = p_.array().sqrt();
    b_.resize(a.rows(), a.cols());
    fill_bernoulli<T>(ctx.generator(), h, b_);
    h.array() *= b_.array();  // b sqrt(p)
  }

  // With h = b sqrt(p): b sqrt(p) (1 - p) / 2 = h (1 - p) / 2.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = dh.array() * this->output_.array() * (T(1) - p_.array()) * T(0.5);
    this->add_kl_gradient(p_, da);
  }

  ParameterList<T> parameters() { return {&this->threshold_}; }

  /// p = sigm(a + noise) of the last training forward (`units x batch`).
  const Matrix<T>& probabilities() const { return p_; }
  /// Eq. 14 on the last training forward's p (0 without a KL penalty).
  T sparsity_penalty() const { return this->kl_value(p_); }
  const StochasticTimesSmoothOptions<T>& options() const { return options_; }

 private:
  StochasticTimesSmoothOptions<T> options_;
  Matrix<T> p_, b_;
};

}  // namespace stoch
