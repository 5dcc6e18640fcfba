// stoch — what the gates share: the test-time threshold (App. A.3), the scores it is applied to, the
// optional KL sparsity hook (Eq. 14), App. A.2's Beta noise, and the sigmoid-Bernoulli unit h = 1[u < sigm(a)]
// of SBN and ST.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/layers/elementwise.hpp"
#include "stoch/regularizers/kl_sparsity.hpp"

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
/// The paper uses it for STS; StraightThrough takes it too, as an option (StraightThroughOptions::beta_noise).
template <class T>
struct BetaNoise {
  T beta = T(40.1);   ///< the hyper-parameter tuned in App. A.2, > 1
  T target = T(0.1);  ///< sparsity target s, in (0, 1)

  T alpha() const { return (T(1) + target * (beta - T(2))) / (T(1) - target); }
  T scale() const { return logit(target) / target; }
  T mean() const { return scale() * alpha() / (alpha() + beta); }

  /// `kind` names the gate in the error message (e.g. "StochasticTimesSmooth ('sts')").
  void validate(const std::string& kind) const {
    if (!(beta > T(1)))
      internal::fail(kind + ": beta_noise.beta must be > 1 (the Beta mode must exist), got " + std::to_string(beta));
    internal::check_open_unit_interval((kind + ": beta_noise.target").c_str(), target);
  }
};

namespace internal {

/// CRTP base of the thresholded gates (NoisyRectifier, StochasticTimesSmooth, StochasticBinary,
/// StraightThrough). On top of Elementwise it owns
///   - the test-time threshold t (App. A.3): a `1 x 1` Parameter with trainable == false, named
///     "<name>.threshold", so that a calibrated t is saved and loaded with the model;
///   - `scores()`: what the evaluation forward compared with t (`units x batch`), for calibration;
///   - the optional KL penalty of Eq. 14 on the sigmoid probabilities (used by the sigmoid-based gates);
///   - the optional Beta noise of App. A.2 on the sigmoid's input (STS; StraightThrough as an option).
/// Its messages start with internal::where(kind, method, name), e.g. "StraightThrough::forward ('gate')".
/// `Derived` implements compute()/differentiate() as for Elementwise, and calls eval_binary() or
/// eval_valued() in evaluation mode.
template <class Derived, class T>
class GateBase : public Elementwise<Derived, T> {
  using Base = Elementwise<Derived, T>;

 public:
  /// `kind` is the class name used in error messages; `name` prefixes the saved state's names.
  GateBase(Index units, const char* kind, std::string name, T initial_threshold,
           std::optional<KlSparsity<T>> kl = std::nullopt, std::optional<BetaNoise<T>> beta_noise = std::nullopt)
      : Base(units, kind, name), name_(std::move(name)), kl_(kl), beta_noise_(beta_noise),
        threshold_(name_ + ".threshold", 1, 1, /*trainable=*/false) {
    if (kl_) kl_->validate();
    if (beta_noise_) beta_noise_->validate(where(kind, "", name_));
    set_threshold(initial_threshold);
  }

  /// The test-time threshold t (App. A.3): evaluation outputs are non-zero only where score > t.
  T threshold() const { return threshold_.value(0, 0); }
  void set_threshold(T t) {
    if (!std::isfinite(t))
      fail(where(this->class_name_, "set_threshold", name_) + ": threshold must be finite, got " + std::to_string(t));
    threshold_.value(0, 0) = t;
  }

  /// What the last evaluation forward thresholded (`units x batch`; empty before any evaluation forward):
  /// p = sigm(a) for SBN and ST, sqrt(p) for STS, a + c for the noisy rectifier.
  const Matrix<T>& scores() const { return scores_; }

  /// Number of non-zero entries of the last forward's output (the gated layer's active set size).
  Index active_count() const { return (this->output_.array() != T(0)).count(); }

  /// The prefix of the saved state's names ("<name>.threshold", ...).
  const std::string& name() const { return name_; }

  const std::optional<KlSparsity<T>>& kl() const { return kl_; }

  /// E[noise]: what evaluation adds to a (App. A.4); 0 without Beta noise.
  T noise_mean() const { return beta_noise_ ? beta_noise_->mean() : T(0); }

 protected:
  /// Eval for 0/1 gates: h = 1[score > t].
  void eval_binary(Matrix<T>& h) const {
    h.array() = indicator_above(scores_.array(), threshold());
  }
  /// Eval for valued gates: h = score where score > t, else 0.
  void eval_valued(Matrix<T>& h) const {
    h.array() = (scores_.array() > threshold()).select(scores_.array(), T(0));
  }

  /// Adds d(Eq. 14)/da to da when the KL penalty is configured; p = sigm(a) (`units x batch`).
  void add_kl_gradient(const Matrix<T>& p, Matrix<T>& da) const {
    if (kl_) kl_->add_gradient_wrt_pre_activation(p, da);
  }
  /// p = sigm(a + noise) (`units x batch`): noise = k x, x ~ Beta(alpha, beta) drawn from `rng` with Beta
  /// noise (App. A.2), no noise and no draw without it.
  void sigmoid_with_noise(const MatrixCRef<T>& a, Generator& rng, Matrix<T>& p) const {
    p.resize(a.rows(), a.cols());
    if (beta_noise_) {
      fill_beta<T>(rng, p, beta_noise_->alpha(), beta_noise_->beta);
      p.array() = sigmoid(a.array() + beta_noise_->scale() * p.array());
    } else {
      p.array() = sigmoid(a.array());
    }
  }

  /// Eq. 14's value on p, or 0 without the penalty.
  T kl_value(const Matrix<T>& p) const { return kl_ && p.cols() > 0 ? kl_->value(p) : T(0); }

  std::string name_;
  std::optional<KlSparsity<T>> kl_;
  std::optional<BetaNoise<T>> beta_noise_;
  Parameter<T> threshold_;
  Matrix<T> scores_;
};

/// The stochastic binary unit shared by StochasticBinary (Sec. 3) and StraightThrough (Sec. 4):
///   train: p = sigm(a + noise), h = 1[u < p], u ~ U(0, 1) — Eq. 3 with its erratum fixed (P(h = 1) = sigm(a),
///          as Theorem 1's proof requires); noise = 0 unless App. A.2's Beta noise is configured;
///   eval:  h = 1[p > t] with p = sigm(a + E[noise]), the deterministic counterpart with the calibratable
///          threshold t (App. A.3).
/// The two differ only in backward (the estimator), which `Derived` provides.
template <class Derived, class T>
class SigmoidBernoulliGate : public GateBase<Derived, T> {
  using Base = GateBase<Derived, T>;

 public:
  SigmoidBernoulliGate(Index units, const char* kind, std::string name, std::optional<KlSparsity<T>> kl,
                       std::optional<BetaNoise<T>> beta_noise = std::nullopt)
      : Base(units, kind, std::move(name), T(0.5), kl, beta_noise) {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training()) {
      deterministic_forward(a, this->scores_, h);
      return;
    }
    this->sigmoid_with_noise(a, ctx.generator(), p_);
    fill_bernoulli<T>(ctx.generator(), p_, h);
  }

  /// p = sigm(a + noise) of the last training forward (`units x batch`).
  const Matrix<T>& probabilities() const { return p_; }

  /// Eq. 14 on the last training forward's p (0 without a KL penalty): add it to the reported criterion.
  T sparsity_penalty() const { return this->kl_value(p_); }

  ParameterList<T> parameters() { return {&this->threshold_}; }

 protected:
  /// The deterministic unit: p = sigm(a + E[noise]), h = 1[p > t] (evaluation; StraightThrough's
  /// deterministic training forward, into p_).
  void deterministic_forward(const MatrixCRef<T>& a, Matrix<T>& p, Matrix<T>& h) const {
    p.resize(a.rows(), a.cols());
    p.array() = sigmoid(a.array() + this->noise_mean());
    h.array() = indicator_above(p.array(), this->threshold());
  }

  Matrix<T> p_;
};

}  // namespace internal

}  // namespace stoch
