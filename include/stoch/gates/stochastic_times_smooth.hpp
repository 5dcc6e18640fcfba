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

/// App. A.2's Beta noise on the sigmoid's input, as we read the (terse) appendix:
///   - "make the alpha parameter a function of this beta such that the mode of the distribution is equal
///     to our sparsity target s": mode = (alpha - 1) / (alpha + beta - 2) = s gives
///         alpha = (1 + s (beta - 2)) / (1 - s)                         (requires beta > 1, then alpha > 1);
///   - "scale the samples from the distribution such that the sigmoid of the mode is equal to 0.1": the
///     scale k with sigm(k * s) = s, i.e.
///         k = logit(s) / s                                              (k < 0 for s < 1/2);
///   - training adds noise = k x, x ~ Beta(alpha, beta), to a; evaluation adds its mean
///         k * alpha / (alpha + beta)                                    (App. A.4: "the mean of this
///     distribution replaces it at test time").
/// With s = 0.1 and the paper's best beta = 40.1: alpha = 5.344, k = -21.97, mean noise = -2.584.
template <class T>
struct BetaNoise {
  T beta = T(40.1);   ///< the hyper-parameter tuned in App. A.2, > 1
  T target = T(0.1);  ///< sparsity target s, in (0, 1)

  T alpha() const { return (T(1) + target * (beta - T(2))) / (T(1) - target); }
  T scale() const { return logit(target) / target; }
  T mean() const { return scale() * alpha() / (alpha() + beta); }

  void validate() const {
    if (!(beta > T(1)))
      internal::fail("StochasticTimesSmooth: beta_noise.beta must be > 1 (the Beta mode must exist), got " +
                     std::to_string(beta));
    internal::check_open_unit_interval("StochasticTimesSmooth: beta_noise.target", target);
  }
};

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
      : Base(units, "StochasticTimesSmooth", std::move(name), T(0.5), options.kl), options_(options) {
    if (options_.beta_noise) options_.beta_noise->validate();
  }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training()) {
      this->scores_.resize(a.rows(), a.cols());
      this->scores_.array() = sigmoid(a.array() + noise_mean()).sqrt();
      this->eval_valued(h);
      return;
    }
    p_.resize(a.rows(), a.cols());
    if (const auto& noise = options_.beta_noise) {
      fill_beta<T>(ctx.generator(), p_, noise->alpha(), noise->beta);
      p_.array() = sigmoid(a.array() + noise->scale() * p_.array());
    } else {
      p_.array() = sigmoid(a.array());
    }
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
  /// E[noise]: what evaluation adds to a (0 without Beta noise).
  T noise_mean() const { return options_.beta_noise ? options_.beta_noise->mean() : T(0); }
  /// Eq. 14 on the last training forward's p (0 without a KL penalty).
  T sparsity_penalty() const { return this->kl_value(p_); }
  const StochasticTimesSmoothOptions<T>& options() const { return options_; }

 private:
  StochasticTimesSmoothOptions<T> options_;
  Matrix<T> p_, b_;
};

}  // namespace stoch
