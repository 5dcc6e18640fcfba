// stoch — the Gumbel-sigmoid gate, i.e. the binary Concrete relaxation (Maddison, Mnih, Teh 2017; Jang, Gu,
// Poole 2017, whose Gumbel-softmax with two classes it is), relaxed and straight-through. Not in the paper
// (Bengio, Léonard, Courville 2013); it is the relaxation the field moved to after it.
#pragma once

#include <cmath>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/gates/anneal.hpp"
#include "stoch/gates/binary_gate.hpp"

namespace stoch {

/// Which output the Gumbel-sigmoid gate forwards.
enum class GumbelForm {
  relaxed,           ///< `gumbel`: the relaxed sample y itself
  straight_through,  ///< `gumbel-st`: the hard sample h = 1[a + l > 0], backward through y
};

template <class T>
struct GumbelSigmoidOptions {
  T temperature = T(1);  ///< tau, finite and > 0; anneal it with set_temperature (stoch::Anneal)
};

/// On pre-activations `a` (`units x batch`), with logistic noise l = log u - log(1 - u), u ~ U(0, 1), one
/// uniform per entry drawn from ctx.generator() (fill_logistic):
///
///   relaxed sample     y = sigm((a + l) / tau)                     (the binary Concrete with location
///                                                                    alpha = exp(a), temperature lambda = tau)
///   train, relaxed:    h = y;             dL/da = dL/dh * y (1 - y) / tau   (exact: the noise is held fixed)
///   train, ST:         h = 1[a + l > 0];  dL/da = dL/dh * y (1 - y) / tau   (hard forward, relaxed backward)
///
/// 1[a + l > 0] = 1[u > sigm(-a)], so P(h = 1) = sigm(a): the straight-through form samples exactly the
/// sigmoid-Bernoulli unit of the paper's Eq. 3 (one uniform per entry, as fill_bernoulli, though another
/// function of it: 1[u > 1 - p] rather than 1[u < p]), and the relaxed y tends to
/// it as tau -> 0. Both estimators are biased for the gradient of E[L] under h ~ Bernoulli(sigm(a)); the
/// relaxed one is unbiased for its relaxed objective E_l[L(y)] instead. Small tau: lower bias, higher variance
/// (y (1 - y) / tau peaks at 1 / (4 tau) near a + l = 0). The backward uses the temperature of its forward.
///
/// Evaluation (no noise, the logistic noise replaced by its mean and median 0):
///   relaxed: h = s where s > t, else 0, with s = sigm(a / tau); threshold t = 0 by default (h = s exactly,
///            since s > 0 unless it underflows to 0), calibratable to make the test-time gates sparse;
///   ST:      h = 1[s > t] with s = sigm(a); t = 1/2 by default, i.e. h = 1[a > 0], calibratable like the
///            other binary gates (App. A.3).
///
/// Skipping rule in a GatedLayer (traits below): both forms need dL/dh (needs_output_gradient).
///   relaxed: closed_gate_needs_gradient = false. A relaxed gate is exactly 0 only where sigm((a + l) / tau)
///            underflows, and there its derivative y (1 - y) / tau is exactly 0 as well, so a skipped expert
///            loses nothing; in practice no gate is 0 in training, the density is 1 and the automatic path
///            computes the expert densely. In evaluation gates under the threshold are skipped.
///   ST:      closed_gate_needs_gradient = true: a closed gate (h = 0) learns from dL/dh = dy * H through
///            y (1 - y) / tau > 0, so training computes the expert for every gate (as for StraightThrough).
///
/// Saved state (parameters(), not trainable): "<name>.threshold" and "<name>.temperature", so that a loaded
/// model evaluates with the temperature it was saved with. Bad input: tau <= 0 or non-finite (or so small that
/// 1 / tau overflows), and a non-finite pre-activation, throw stoch::Error naming the layer.
template <class T, GumbelForm Form = GumbelForm::relaxed>
class GumbelSigmoid : public internal::GateBase<GumbelSigmoid<T, Form>, T> {
  using Base = internal::GateBase<GumbelSigmoid<T, Form>, T>;
  static constexpr bool straight_through = Form == GumbelForm::straight_through;
  static constexpr const char* kKind = straight_through ? "GumbelSigmoidStraightThrough" : "GumbelSigmoid";

 public:
  static constexpr GumbelForm form = Form;
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = straight_through;

  explicit GumbelSigmoid(Index units, GumbelSigmoidOptions<T> options = {},
                         std::string name = straight_through ? "gumbel_sigmoid_st" : "gumbel_sigmoid")
      : Base(units, kKind, std::move(name), straight_through ? T(0.5) : T(0)),
        temperature_(this->name_ + ".temperature", 1, 1, /*trainable=*/false) {
    set_temperature(options.temperature);
  }

  /// tau for the next forwards (a training loop steps it, e.g. from stoch::Anneal). Throws stoch::Error
  /// naming the layer unless tau is finite and > 0.
  void set_temperature(T tau) {
    if (!valid(tau)) refuse(internal::where(kKind, "set_temperature", this->name_), tau);
    temperature_.value(0, 0) = tau;
  }
  T temperature() const { return temperature_.value(0, 0); }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    const T tau = temperature();
    if (!valid(tau)) refuse(this->forward_what_, tau);  // the saved state may have been overwritten (load_model)
    const T inv_tau = T(1) / tau;
    if (!ctx.training()) {
      this->scores_.resize(a.rows(), a.cols());
      if constexpr (straight_through) {
        this->scores_.array() = sigmoid(a.array());
        this->eval_binary(h);
      } else {
        this->scores_.array() = sigmoid(a.array() * inv_tau);
        this->eval_valued(h);
      }
      return;
    }
    forward_inv_tau_ = inv_tau;
    // Both forms compute y by the same statements, so that they give the same y (and dL/da) bit for bit.
    Matrix<T>& y = straight_through ? relaxed_ : h;
    y.resize(a.rows(), a.cols());
    fill_logistic<T>(ctx.generator(), y);
    y.array() += a.array();  // a + l
    if constexpr (straight_through) h.array() = indicator_above(y.array(), T(0));
    y.array() = sigmoid(y.array() * inv_tau);
  }

  // dL/da = dL/dh * y (1 - y) / tau, with y and tau of the last training forward.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    const Matrix<T>& y = relaxed();
    da.array() = dh.array() * y.array() * (T(1) - y.array()) * forward_inv_tau_;
  }

  /// The relaxed sample y = sigm((a + l) / tau) of the last training forward (`units x batch`); for the
  /// relaxed form it is the output itself.
  const Matrix<T>& relaxed() const {
    if constexpr (straight_through) return relaxed_;
    else return this->output_;
  }

  ParameterList<T> parameters() { return {&this->threshold_, &temperature_}; }

 private:
  // 1 / tau must be finite too: a subnormal tau would make a * (1 / tau) NaN at a = 0.
  static bool valid(T tau) { return tau > T(0) && std::isfinite(tau) && std::isfinite(T(1) / tau); }
  [[noreturn]] static void refuse(const std::string& who, T tau) {
    internal::fail(who + ": temperature must be finite and > 0 (with 1 / temperature finite), got " +
                   std::to_string(tau));
  }

  Parameter<T> temperature_;
  Matrix<T> relaxed_;  // y, for the straight-through form only (the relaxed form's y is its output)
  T forward_inv_tau_ = T(1);
};

/// The straight-through Gumbel-sigmoid (`gumbel-st`): hard Bernoulli(sigm(a)) forward, relaxed backward.
template <class T>
using GumbelSigmoidStraightThrough = GumbelSigmoid<T, GumbelForm::straight_through>;

}  // namespace stoch
