// stoch — the stochastic binary neuron with the unbiased score-function gradient estimator (Sec. 3:
// Theorem 1, Corollary 1 and its minimum-variance baseline, Eq. 10).
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/gates/binary_gate.hpp"
#include "stoch/gates/threshold.hpp"

namespace stoch {

/// The baseline Lbar_i subtracted from the loss in the estimator (h_i - p_i)(L - Lbar_i) (Corollary 1).
enum class SbnBaseline {
  none,              ///< Lbar = 0: Theorem 1's estimator (h - p) L
  constant,          ///< Lbar = the option `constant_baseline` (Corollary 1, first part)
  moving_average,    ///< Lbar = a moving average of the per-example loss L (one value for all units)
  minimum_variance,  ///< Lbar_i = E[(h_i - p_i)^2 L] / E[(h_i - p_i)^2] (Eq. 10), both moving averages
};

template <class T>
struct StochasticBinaryOptions {
  SbnBaseline baseline = SbnBaseline::minimum_variance;
  T constant_baseline = T(0);  ///< Lbar for SbnBaseline::constant, finite
  T average_rate = T(0.01);    ///< weight of the newest batch in the moving averages, in (0, 1)
  std::optional<KlSparsity<T>> kl = std::nullopt;  ///< Eq. 14 on p = sigm(a); off when empty
};

/// h = 1[u < sigm(a)] on pre-activations `a` (`units x batch`), trained without any signal from above:
/// backward IGNORES dL/dh (it may be passed empty, 0 x 0) and reads the per-example loss L_b from
/// ctx.example_loss (written by the loss layer's forward), returning
///
///     dL/da_ib = (h_ib - p_ib) (L_b - Lbar_i) / B        (+ the KL penalty's gradient when configured)
///
/// The 1/B: the loss layer reports, and back-propagates, the MEAN loss (1/B) sum_b L_b, and Theorem 1's
/// (h - p) L estimates the derivative of E[L_b] w.r.t. a_ib; so the estimate for the mean is that over B.
///
/// Baselines (Corollary 1): the moving averages behind `moving_average` and `minimum_variance` are
/// weighted means Lbar = A / W of two exponential moving averages started at 0,
///     A <- (1 - r) A + r mean_b w_b L_b,   W <- (1 - r) W + r mean_b w_b,
/// with weight w = 1 (moving_average) or w = (h_ib - p_ib)^2 per unit (minimum_variance, Eq. 10's numerator
/// and denominator); the ratio needs no start-up bias correction, and Lbar = 0 until W > 0. They are updated
/// at the end of backward, AFTER the batch's estimate is computed, so the baseline used for a batch depends
/// only on earlier batches, never on the batch's own samples (which would bias the estimator).
///
/// Evaluation: h = 1[p > t], t calibratable (default 0.5). Saved state: "<name>.threshold", and for the
/// averaged baselines "<name>.baseline_numerator" / "<name>.baseline_denominator" (A and W; units x 1 for
/// minimum_variance, 1 x 1 for moving_average).
template <class T>
class StochasticBinary : public internal::SigmoidBernoulliGate<StochasticBinary<T>, T> {
  using Base = internal::SigmoidBernoulliGate<StochasticBinary<T>, T>;

 public:
  /// Backward uses only the broadcast loss: no dL/dh, hence no expert value for closed gates either.
  static constexpr bool needs_output_gradient = false;
  static constexpr bool closed_gate_needs_gradient = false;

  /// Throws stoch::Error naming the option when one is out of its domain.
  explicit StochasticBinary(Index units, StochasticBinaryOptions<T> options = {}, std::string name = "sbn")
      : Base(units, "StochasticBinary", std::move(name), options.kl), options_(options) {
    const std::string who = internal::where("StochasticBinary", "", this->name_);
    if (!std::isfinite(options_.constant_baseline))
      internal::fail(who + ": constant_baseline must be finite, got " + std::to_string(options_.constant_baseline));
    internal::check_open_unit_interval((who + ": average_rate").c_str(), options_.average_rate);
    const Index rows = options_.baseline == SbnBaseline::minimum_variance ? units : 1;
    numerator_ = Parameter<T>(this->name_ + ".baseline_numerator", rows, 1, false);
    denominator_ = Parameter<T>(this->name_ + ".baseline_denominator", rows, 1, false);
    baseline_.setZero(units);
  }

  /// `dy` is ignored (needs_output_gradient == false): pass dL/dh (`units x batch`) or an empty matrix.
  /// Requires a training forward and ctx.example_loss (`1 x batch`). Returns dL/da (`units x batch`).
  const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>& ctx) {
    this->require_training_forward();
    const Matrix<T>& h = this->output_;
    const Index batch = h.cols();
    if (dy.size() != 0) internal::check_shape(this->gradient_what_.c_str(), dy.rows(), dy.cols(), h.rows(), batch);
    const RowVector<T>& loss = ctx.loss_for_batch(this->backward_what_.c_str(), batch);

    current_baselines(baseline_);
    Matrix<T>& da = this->input_gradient_;
    da = h - this->p_;
    const T inv_batch = T(1) / static_cast<T>(batch);
    for (Index j = 0; j < batch; ++j) da.col(j).array() *= (loss[j] - baseline_.array()) * inv_batch;
    this->add_kl_gradient(this->p_, da);

    update_baselines(loss);
    return da;
  }

  /// The baseline Lbar_i the next backward will use for `unit`.
  T baseline(Index unit) const {
    if (unit < 0 || unit >= this->units_)
      internal::fail(internal::where("StochasticBinary", "baseline", this->name_) + ": unit " + std::to_string(unit) +
                     " out of range [0, " +
                     std::to_string(this->units_) + ")");
    switch (options_.baseline) {
      case SbnBaseline::none: return T(0);
      case SbnBaseline::constant: return options_.constant_baseline;
      case SbnBaseline::moving_average: return ratio(0);
      case SbnBaseline::minimum_variance: return ratio(unit);
    }
    return T(0);
  }

  ParameterList<T> parameters() {
    ParameterList<T> list{&this->threshold_};
    if (averaged()) {
      list.push_back(&numerator_);
      list.push_back(&denominator_);
    }
    return list;
  }

  const StochasticBinaryOptions<T>& options() const { return options_; }

 private:
  bool averaged() const {
    return options_.baseline == SbnBaseline::moving_average || options_.baseline == SbnBaseline::minimum_variance;
  }

  T ratio(Index row) const {
    const T w = denominator_.value(row, 0);
    return w > T(0) ? numerator_.value(row, 0) / w : T(0);
  }

  void current_baselines(Vector<T>& out) const {
    for (Index i = 0; i < out.size(); ++i) out[i] = baseline(i);
  }

  void update_baselines(const RowVector<T>& loss) {
    if (!averaged()) return;
    const T r = options_.average_rate;
    Matrix<T>& a = numerator_.value;
    Matrix<T>& w = denominator_.value;
    if (options_.baseline == SbnBaseline::moving_average) {
      a(0, 0) = (T(1) - r) * a(0, 0) + r * loss.mean();
      w(0, 0) = (T(1) - r) * w(0, 0) + r;
      return;
    }
    // Eq. 10, per unit: weights (h - p)^2, batch means of weight * L and of weight.
    const T r_mean = r / static_cast<T>(loss.size());
    weight_.array() = (this->output_ - this->p_).array().square();
    a *= T(1) - r;
    a.noalias() += r_mean * (weight_ * loss.transpose());
    w *= T(1) - r;
    w.noalias() += r_mean * weight_.rowwise().sum();
  }

  StochasticBinaryOptions<T> options_;
  Parameter<T> numerator_, denominator_;
  Vector<T> baseline_;
  Matrix<T> weight_;
};

}  // namespace stoch
