// stoch — the noisy rectifier (Sec. 2.1): h = max(0, a + c + z), with the firing-rate mechanism that pushes
// a dead unit's offset c up, and the optional adaptive L1 sparsity penalty (Eq. 15, App. A.1).
#pragma once

#include <optional>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/gates/binary_gate.hpp"
#include "stoch/gates/threshold.hpp"
#include "stoch/regularizers/l1_sparsity.hpp"

namespace stoch {

/// The noise z of the noisy rectifier.
enum class RectifierNoise {
  gaussian,  ///< N(0, scale^2): "in practice Gaussian noise is appropriate" (Sec. 2.1); std 1.0 (App. A.4)
  logistic,  ///< density sigm(z/s)(1 - sigm(z/s))/s; with s = 1, Proposition 1: P(h > 0) = sigm(a),
             ///< E[h] = softplus(a)
};

/// Sec. 2.1, end: "if the moving average of being non-zero falls below a threshold, the bias is pushed up
/// until that average comes back above the threshold." Once per training batch (at the end of backward):
///   r_i <- (1 - average_rate) r_i + average_rate * mean_b 1[h_ib > 0]     (r_i starts at `target`)
///   c_i <- c_i + step   if r_i < target;   c_i <- c_i - step   if r_i > target and two_sided.
template <class T>
struct FiringRateControl {
  T target = T(0.1);         ///< firing rate below which the offset is raised, in (0, 1)
  T average_rate = T(0.01);  ///< weight of the newest batch in the moving average, in (0, 1)
  T step = T(0.01);          ///< change of the offset per batch, > 0
  bool two_sided = false;    ///< also lower the offset of units firing more than `target`
};

template <class T>
struct NoisyRectifierOptions {
  RectifierNoise noise = RectifierNoise::gaussian;
  /// Gaussian: standard deviation; logistic: scale s. >= 0; 0 gives the paper's "Baseline Rectifier".
  T noise_scale = T(1);
  std::optional<FiringRateControl<T>> firing_rate = std::nullopt;  ///< off when empty
  /// Eq. 15 on h with App. A.1's adaptive lambda; its saved lambda is renamed "<gate name>.<its name>".
  std::optional<AdaptiveL1<T>> l1 = std::nullopt;
};

/// h = max(0, a + c + z) on pre-activations `a` (`units x batch`), with z drawn per entry in training and
/// c a per-unit offset moved only by the firing-rate mechanism (not by gradient descent).
///
/// Backward: dL/da = (dL/dh + dL1/dh) * 1[a + c + z > 0] (the penalty's gradient is added before masking).
/// At the end of each backward (once per training batch) the firing-rate averages and offsets are updated
/// and the L1 lambda adapted to the batch's effective density.
///
/// Evaluation (deterministic counterpart): score = a + c; an open unit (score > t, t the calibratable
/// threshold, default 0) outputs the noisy rectifier's EXPECTED output given its score,
///     h = E_z[max(0, score + z)]   (Gaussian: mu Phi(mu/sigma) + sigma phi(mu/sigma); logistic: s softplus(mu/s),
///                                   Proposition 1(b); no noise: max(0, score)),
/// and a closed one outputs 0. Replacing h by its mean keeps the scale the next layer was trained on, and
/// stays >= 0 when calibration picks a negative t (at 10% density it does): the output `score` itself
/// would then be negative for open units, which the next layer never saw in training.
///
/// Saved state (trainable == false): "<name>.offset" (c, units x 1), "<name>.firing_rate" (r, units x 1),
/// "<name>.threshold" (1 x 1), and the L1 lambda when configured.
template <class T>
class NoisyRectifier : public internal::GateBase<NoisyRectifier<T>, T> {
  using Base = internal::GateBase<NoisyRectifier<T>, T>;

 public:
  /// A zero output has zero derivative, so a closed gate needs no expert value.
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;

  /// Throws stoch::Error naming the option when one is out of its domain.
  explicit NoisyRectifier(Index units, NoisyRectifierOptions<T> options = {},
                          std::string name = "noisy_rectifier")
      : Base(units, "NoisyRectifier", std::move(name), T(0)),
        options_(std::move(options)),
        offset_(this->name_ + ".offset", units, 1, false),
        firing_rate_(this->name_ + ".firing_rate", units, 1, false) {
    const std::string who = internal::where("NoisyRectifier", "", this->name_);
    internal::check_non_negative((who + ": noise_scale").c_str(), options_.noise_scale);
    if (const auto& f = options_.firing_rate) {
      internal::check_open_unit_interval((who + ": firing_rate.target").c_str(), f->target);
      internal::check_open_unit_interval((who + ": firing_rate.average_rate").c_str(), f->average_rate);
      internal::check_positive((who + ": firing_rate.step").c_str(), f->step);
      firing_rate_.value.setConstant(f->target);
    }
    if (options_.l1) options_.l1->state().name = this->name_ + "." + options_.l1->state().name;
  }

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training()) {
      this->scores_ = a;
      this->scores_.colwise() += offset_.value.col(0);
      expected_output(h);
      return;
    }
    if (options_.noise_scale > T(0)) {
      if (options_.noise == RectifierNoise::gaussian)
        fill_gaussian<T>(ctx.generator(), h, options_.noise_scale);
      else
        fill_logistic<T>(ctx.generator(), h, options_.noise_scale);
      h += a;
    } else {
      h = a;  // Baseline Rectifier: no noise, no generator needed
    }
    h.colwise() += offset_.value.col(0);
    h.array() = h.array().max(T(0));
  }

  // h > 0 exactly where a + c + z > 0.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    const Matrix<T>& h = this->output_;
    da = dh;
    if (options_.l1) options_.l1->add_gradient_wrt_output(h, da);
    da.array() = (h.array() > T(0)).select(da.array(), T(0));
    end_of_batch(h);
  }

  ParameterList<T> parameters() {
    ParameterList<T> list{&offset_, &firing_rate_, &this->threshold_};
    if (options_.l1) list.push_back(&options_.l1->state());
    return list;
  }

  /// Eq. 15 on the last forward's output (0 without the L1 penalty): add it to the reported criterion.
  T sparsity_penalty() const {
    return options_.l1 && this->output_.cols() > 0 ? options_.l1->value(this->output_) : T(0);
  }

  /// The per-unit offset c (`units x 1`) and the firing-rate moving averages r (`units x 1`).
  const Matrix<T>& offset() const { return offset_.value; }
  const Matrix<T>& firing_rate() const { return firing_rate_.value; }
  const NoisyRectifierOptions<T>& options() const { return options_; }
  const std::optional<AdaptiveL1<T>>& l1() const { return options_.l1; }

 private:
  void expected_output(Matrix<T>& h) {
    const T t = this->threshold(), scale = options_.noise_scale;
    const Matrix<T>& score = this->scores_;
    if (options_.noise == RectifierNoise::gaussian) {
      thresholded_expected_rectified_gaussian(score, t, scale, h, scratch_);
      return;
    }
    for (Index k = 0; k < score.size(); ++k) {
      const T mu = score.data()[k];
      h.data()[k] = mu > t ? expected_rectified_logistic(mu, scale) : T(0);
    }
  }

  void end_of_batch(const Matrix<T>& h) {
    if (options_.l1) options_.l1->adapt(AdaptiveL1<T>::effective_density(h));
    if (!options_.firing_rate) return;
    const FiringRateControl<T>& f = *options_.firing_rate;
    fired_.setZero(h.rows());
    for (Index j = 0; j < h.cols(); ++j) fired_.array() += indicator_above(h.col(j).array(), T(0));
    Matrix<T>& rate = firing_rate_.value;  // units x 1
    rate.array() = (T(1) - f.average_rate) * rate.array() +
                   (f.average_rate / static_cast<T>(h.cols())) * fired_.array();
    offset_.value.array() += f.step * (rate.array() < f.target).template cast<T>();
    if (f.two_sided) offset_.value.array() -= f.step * (rate.array() > f.target).template cast<T>();
  }

  NoisyRectifierOptions<T> options_;
  Parameter<T> offset_, firing_rate_;
  Vector<T> fired_;
  ExpectedOutputScratch scratch_;  // of the evaluation's expected outputs
};

}  // namespace stoch
