// stoch — straight-through with slope annealing (Chung, Ahn, Bengio 2017, "Hierarchical multiscale recurrent
// neural networks", the slope annealing trick), on the sigmoid-Bernoulli unit of the paper's Sec. 4. Not in the
// paper (Bengio, Léonard, Courville 2013).
#pragma once

#include <cmath>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/gates/anneal.hpp"
#include "stoch/gates/binary_gate.hpp"

namespace stoch {

template <class T>
struct SlopeAnnealedStraightThroughOptions {
  T slope = T(1);  ///< m, finite and > 0 (m >= 1 in Chung et al.); grow it with set_slope (stoch::Anneal)
};

/// On pre-activations `a` (`units x batch`), with slope m:
///   train:    p = sigm(m a),  h = 1[u < p], u ~ U(0, 1) from ctx.generator() (as fill_bernoulli);
///   backward: dL/da = dL/dh * m p (1 - p)    (the straight-through estimator through sigm(m a), i.e. Sec. 4's
///             variant dL/dh * sigm'(a) at slope m; at m = 1 it is StraightThrough with sigmoid_derivative,
///             bit for bit);
///   eval:     h = 1[s > t] with s = sigm(m a); t = 1/2 by default, i.e. h = 1[a > 0], calibratable (App. A.3).
///
/// Why stochastic: Chung et al. forward the deterministic step 1[hard_sigm(m a) > 1/2] = 1[a > 0], which does
/// not depend on m at all; only the backward's slope anneals. Here h ~ Bernoulli(sigm(m a)), so the gate is an
/// estimator of the gradient of an expected loss like every other gate of the library (its bias can be measured
/// against exact enumeration), m = 1 is the paper's stochastic unit, and m -> infinity tends to Chung et al.'s
/// deterministic forward 1[a > 0]: annealing the slope moves the unit from the one to the other. The backward's
/// factor m p (1 - p) is the exact derivative of p = sigm(m a): the estimator is straight-through only across
/// the sampling step h = 1[u < p], as in Sec. 4.
/// The backward uses the slope of its forward.
///
/// Skipping rule in a GatedLayer: needs_output_gradient and closed_gate_needs_gradient are both true (a closed
/// gate learns from dL/dh = dy * H through m p (1 - p) > 0), so training computes the expert for every gate,
/// as for StraightThrough; evaluation skips closed gates.
///
/// Saved state (parameters(), not trainable): "<name>.threshold" and "<name>.slope". Bad input: m <= 0 or
/// non-finite, and a non-finite pre-activation, throw stoch::Error naming the layer.
template <class T>
class SlopeAnnealedStraightThrough : public internal::GateBase<SlopeAnnealedStraightThrough<T>, T> {
  using Base = internal::GateBase<SlopeAnnealedStraightThrough<T>, T>;
  static constexpr const char* kKind = "SlopeAnnealedStraightThrough";

 public:
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = true;

  explicit SlopeAnnealedStraightThrough(Index units, SlopeAnnealedStraightThroughOptions<T> options = {},
                                        std::string name = "slope_st")
      : Base(units, kKind, std::move(name), T(0.5)),
        slope_(this->name_ + ".slope", 1, 1, /*trainable=*/false) {
    set_slope(options.slope);
  }

  /// m for the next forwards (a training loop grows it, e.g. from stoch::Anneal::linear_growth). Throws
  /// stoch::Error naming the layer unless m is finite and > 0.
  void set_slope(T m) {
    if (!valid(m)) refuse(internal::where(kKind, "set_slope", this->name_), m);
    slope_.value(0, 0) = m;
  }
  T slope() const { return slope_.value(0, 0); }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    const T m = slope();
    if (!valid(m)) refuse(this->forward_what_, m);  // the saved state may have been overwritten (load_model)
    if (!ctx.training()) {
      this->scores_.resize(a.rows(), a.cols());
      this->scores_.array() = sigmoid(a.array() * m);
      this->eval_binary(h);
      return;
    }
    forward_slope_ = m;
    p_.resize(a.rows(), a.cols());
    p_.array() = sigmoid(a.array() * m);
    fill_bernoulli<T>(ctx.generator(), p_, h);
  }

  // dL/da = dL/dh * m p (1 - p), with p and m of the last training forward.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da.array() = dh.array() * forward_slope_ * p_.array() * (T(1) - p_.array());
  }

  /// p = sigm(m a) of the last training forward (`units x batch`).
  const Matrix<T>& probabilities() const { return p_; }

  ParameterList<T> parameters() { return {&this->threshold_, &slope_}; }

 private:
  static bool valid(T m) { return m > T(0) && std::isfinite(m); }
  [[noreturn]] static void refuse(const std::string& who, T m) {
    internal::fail(who + ": slope must be finite and > 0, got " + std::to_string(m));
  }

  Parameter<T> slope_;
  Matrix<T> p_;
  T forward_slope_ = T(1);
};

}  // namespace stoch
