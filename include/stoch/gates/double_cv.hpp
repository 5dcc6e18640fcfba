// stoch — REINFORCE leave-one-out with a second, global control variate from a first-order Taylor expansion
// of the loss: the "double control variate" estimator of Titsias & Shi, "Double Control Variates for Gradient
// Estimation in Discrete Latent Variable Models", AISTATS 2022 (arXiv:2111.05300).
//
// Source of the formula. The paper's text was not available to us beyond its abstract; the estimator below is
// the one of the authors' public code (github.com/thjashin/double-cv, src/networks.py, get_grad_estimation,
// grad_type "double_cv", written out for K = 4 there, and quadratic_loss.ipynb for K = 2), generalised to any
// K >= 2 in the way both instances share, with its scalar coefficient alpha learned to minimise the squared
// norm of the estimate as the authors' launcher does (they take Adam steps on alpha; we track the minimiser in
// closed form, see DoubleCvAlpha::adaptive). What we changed is listed under "Differences" below.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/gates/binary_gate.hpp"

namespace stoch {

/// How DoubleCv chooses the coefficient alpha of its second control variate.
enum class DoubleCvAlpha {
  fixed,     ///< alpha = DoubleCvOptions::alpha for every batch
  adaptive,  ///< alpha = -N / D from running averages over EARLIER batches (see DoubleCv)
};

template <class T>
struct DoubleCvOptions {
  DoubleCvAlpha alpha_rule = DoubleCvAlpha::adaptive;
  /// fixed: the coefficient; adaptive: the coefficient until the first batch has been seen. -1 subtracts the
  /// whole first-order term: the estimate is then exact (zero variance) for a loss linear in h.
  T alpha = T(-1);
  T average_rate = T(0.01);  ///< adaptive: weight of the newest batch in the running averages, in (0, 1)
  std::optional<KlSparsity<T>> kl = std::nullopt;  ///< Eq. 14 on p = sigm(a); off when empty
};

/// h = 1[u < sigm(a)] on pre-activations `a` (`units x batch`), the batch being K >= 2 tiled independent
/// samples of E examples (Context::samples, core/samples.hpp: column c = k E + e is sample k of example e).
/// Backward reads the K losses L_k of each example (ctx.example_loss) AND dL/dh at every sample (`dy`, what a
/// straight-through gate receives). With s_k = h_k - p_k (the score d log q(h_k) / d a), g_k = B dy_k the
/// gradient of L_k with respect to h at the sample (B = K E: dy carries the loss layer's 1 / B), and for any
/// per-sample x, xbar_{-k} = (1 / (K - 1)) sum_{j != k} x_j the mean of the example's other samples:
///
///     c_k   = gbar_{-k} . s_k                      (the centred linear term of the Taylor expansion of L
///                                                   around the other samples, evaluated at h_k)
///     A_k   = (L_k - Lbar_{-k}) s_k / B            (ReinforceLoo's estimate)
///     V_k   = (c_k - cbar_{-k}) s_k / B - p_k (1 - p_k) gbar_{-k} / B
///     dL/da = A_k + alpha V_k                      (+ the KL penalty's gradient when configured)
///
/// i.e. ReinforceLoo applied to L_k + alpha c_k, minus alpha times the closed-form expectation of what that
/// adds: E[c_k s_k | other samples] = Var(h_k) gbar_{-k} = p_k (1 - p_k) gbar_{-k}. Summed over the K columns of
/// an example with a shared p, the last term is alpha p (1 - p) mean_k g_k / E, the authors' "global
/// correction". V has mean zero, so the estimate is UNBIASED for every alpha chosen before the batch is drawn:
///   - E[c_k s_k - p_k (1 - p_k) gbar_{-k}] = 0 over h_k, since gbar_{-k} depends only on the other samples;
///   - the terms c_j s_k (j != k) have mean zero over h_j: c_j is linear in s_j, whose mean is 0 given the rest
///     (g_k enters c_j, but h_j is independent of everything in it);
///   - L_j s_k (j != k) as in ReinforceLoo.
/// This needs dy_j to depend on sample j alone (deterministic layers above the gate, or per-sample noise), and
/// independent samples: antithetic pairs (Context::antithetic) are refused. It does not need dy to be the exact
/// gradient: any dy with that property keeps the estimate unbiased, the Taylor gradient just makes V correlate
/// with A. Likewise p may differ between the samples of an example (a sampled layer below the gate).
///
/// alpha (DoubleCvOptions): fixed, or adaptive = the minimiser of the squared norm of the estimate, as the
/// authors learn it (they minimise mean(estimate^2) over alpha with Adam): with the per-example sums
/// A_e = sum_k A_k, V_e = sum_k V_k, E||A_e + alpha V_e||^2 is smallest at alpha = -E[A_e . V_e] / E[V_e . V_e];
/// we keep N and D, exponential moving averages (rate r) of the batch's sum_e A_e . V_e and sum_e V_e . V_e,
/// and use alpha = -N / D (the initial alpha until D > 0; the ratio needs no start-up correction). They are
/// updated AFTER the batch's estimate, so alpha depends only on earlier batches and the estimate stays unbiased.
///
/// Differences from the authors' code: any K (theirs: 2 or 4 written out); the correction uses each sample's
/// own p_k with the other samples' gbar_{-k} (theirs: the shared p with mean_k g_k, identical when p is shared);
/// alpha in closed form from running averages instead of Adam steps (the same objective), starting at -1, the
/// Taylor coefficient, where theirs starts at 0 (ReinforceLoo).
///
/// Cost: K loss evaluations per example, as ReinforceLoo, plus dL/dh at the gate, i.e. the backward pass
/// through the layers above it, which training computes anyway for their parameters.
///
/// Skipping in a GatedLayer: backward needs dL/dh at every unit, closed gates included (the Taylor gradient
/// there is dy * H, the expert's value), so needs_output_gradient == closed_gate_needs_gradient == true and the
/// layer computes the expert densely in training. GatedLayer::set_skip_closed_gates_in_training(true) sends 0
/// into closed gates instead: by the argument above the estimate stays unbiased, but the control variate then
/// no longer carries the closed units' gradient.
///
/// Evaluation: h = 1[p > t], t calibratable (default 0.5). Saved state: "<name>.threshold", and with the
/// adaptive alpha "<name>.alpha_numerator" / "<name>.alpha_denominator" (N and D, 1 x 1).
template <class T>
class DoubleCv : public internal::SigmoidBernoulliGate<DoubleCv<T>, T> {
  using Base = internal::SigmoidBernoulliGate<DoubleCv<T>, T>;

 public:
  /// The Taylor control variate needs dL/dh at every sample and unit, open or closed.
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = true;

  /// Throws stoch::Error naming the option when one is out of its domain.
  explicit DoubleCv(Index units, DoubleCvOptions<T> options = {}, std::string name = "double_cv")
      : Base(units, "DoubleCv", std::move(name), options.kl), options_(options),
        numerator_(this->name_ + ".alpha_numerator", 1, 1, false),
        denominator_(this->name_ + ".alpha_denominator", 1, 1, false) {
    const std::string who = internal::where("DoubleCv", "", this->name_);
    if (!std::isfinite(options_.alpha))
      internal::fail(who + ": alpha must be finite, got " + std::to_string(options_.alpha));
    internal::check_open_unit_interval((who + ": average_rate").c_str(), options_.average_rate);
  }

  /// Training: checks the layout (K >= 2 independent samples, batch a multiple of K), then draws
  /// h ~ Bernoulli(sigm(a)) exactly as StochasticBinary does (same words, same bits). Evaluation: as Base.
  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (ctx.training()) {
      internal::leave_one_out_examples(this->forward_what_, ctx, a.cols());
      samples_ = ctx.samples;
    }
    Base::compute(a, h, ctx);
  }

  /// `dh` = dL/dh (`units x batch`, finite), the gradient of the mean loss over the batch's columns as the
  /// loss layers back-propagate it. Requires a training forward, the same Context::samples and
  /// ctx.example_loss (`1 x batch`). Called by Elementwise::backward, which has checked the shape.
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>& ctx) {
    const std::string& who = this->backward_what_;
    if (ctx.samples != samples_)
      internal::fail(who + ": Context::samples is " + std::to_string(ctx.samples) + " but the forward ran with " +
                     std::to_string(samples_));
    const Index batch = dh.cols();
    const RowVector<T>& loss = ctx.loss_for_batch(who.c_str(), batch);
    // One non-finite dL/dh would reach every sample of its example through the leave-one-out means.
    internal::check_finite(who.c_str(), dh, "output gradient dL/dh", "a diverged layer above the gate?");
    const Matrix<T>& h = this->output_;
    const Matrix<T>& p = this->p_;
    const T inv_batch = T(1) / static_cast<T>(batch);

    // gbar_{-k} / B = dy_k - (dy_k - mean of the other samples' dy): the leave-one-out mean of dy.
    internal::leave_one_out_centre(dh, samples_, gbar_);
    gbar_ = dh - gbar_;
    score_ = h - p;
    // c_k / B = (gbar_{-k} / B) . s_k, then both leave-one-out centrings.
    taylor_ = (gbar_.array() * score_.array()).colwise().sum().matrix();
    internal::leave_one_out_centre(taylor_, samples_, taylor_centred_);
    internal::leave_one_out_centre(loss, samples_, loss_centred_);

    // A into da, V into variate_ (both `units x batch`).
    variate_.resize(h.rows(), batch);
    da.resize(h.rows(), batch);
    for (Index c = 0; c < batch; ++c) {
      da.col(c) = (loss_centred_[c] * inv_batch) * score_.col(c);
      variate_.col(c).array() = taylor_centred_[c] * score_.col(c).array() -
                                p.col(c).array() * (T(1) - p.col(c).array()) * gbar_.col(c).array();
    }
    const T alpha = this->alpha();
    if (options_.alpha_rule == DoubleCvAlpha::adaptive) update_alpha(da, batch / samples_);
    da += alpha * variate_;
    this->add_kl_gradient(p, da);
  }

  /// The coefficient alpha the next backward uses.
  T alpha() const {
    if (options_.alpha_rule == DoubleCvAlpha::fixed) return options_.alpha;
    const T d = denominator_.value(0, 0);
    return d > T(0) ? -numerator_.value(0, 0) / d : options_.alpha;
  }

  /// K of the last training forward.
  Index samples() const noexcept { return samples_; }

  const DoubleCvOptions<T>& options() const { return options_; }

  ParameterList<T> parameters() {
    ParameterList<T> list{&this->threshold_};
    if (options_.alpha_rule == DoubleCvAlpha::adaptive) {
      list.push_back(&numerator_);
      list.push_back(&denominator_);
    }
    return list;
  }

 private:
  /// N <- (1 - r) N + r sum_e A_e . V_e,  D <- (1 - r) D + r sum_e V_e . V_e, with A_e, V_e the sums of A and
  /// V over the K columns of example e (the estimate of dL/da for the example's shared pre-activation).
  void update_alpha(const Matrix<T>& a_part, Index examples) {
    T cross = T(0), square = T(0);
    for (Index e = 0; e < examples; ++e)
      for (Index i = 0; i < a_part.rows(); ++i) {
        T sum_a = T(0), sum_v = T(0);
        for (Index k = 0; k < samples_; ++k) {
          sum_a += a_part(i, k * examples + e);
          sum_v += variate_(i, k * examples + e);
        }
        cross += sum_a * sum_v;
        square += sum_v * sum_v;
      }
    const T r = options_.average_rate;
    numerator_.value(0, 0) = (T(1) - r) * numerator_.value(0, 0) + r * cross;
    denominator_.value(0, 0) = (T(1) - r) * denominator_.value(0, 0) + r * square;
  }

  DoubleCvOptions<T> options_;
  Parameter<T> numerator_, denominator_;
  Index samples_ = 0;
  Matrix<T> gbar_, score_, variate_;
  RowVector<T> taylor_, taylor_centred_, loss_centred_;
};

}  // namespace stoch
