// stoch — REINFORCE with the leave-one-out baseline over K samples per example (Kool, van Hoof, Welling,
// "Buy 4 REINFORCE samples, get a baseline for free!", 2019): the score-function estimator of Sec. 3
// (Theorem 1) whose baseline for one sample is the mean loss of the example's other K - 1 samples.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/gates/binary_gate.hpp"

namespace stoch {

template <class T>
struct ReinforceLooOptions {
  std::optional<KlSparsity<T>> kl = std::nullopt;  ///< Eq. 14 on p = sigm(a); off when empty
};

/// h = 1[u < sigm(a)] on pre-activations `a` (`units x batch`), the batch being K >= 2 tiled samples of E
/// examples (Context::samples, see core/samples.hpp: column k E + e is sample k of example e). Like SBN,
/// backward IGNORES dL/dh and reads the per-example loss from ctx.example_loss (`1 x K E`), returning for
/// sample k of example e
///
///     dL/da = (h - p) (L_k - Lbar_k) / (K E),     Lbar_k = (1 / (K - 1)) sum_{j != k} L_j,
///
/// with L_j the losses of the same example's samples (+ the KL penalty's gradient when configured). The
/// 1 / (K E): the loss layer reports the mean over all K E columns, i.e. the mean over the K samples of the
/// mean loss over the E examples, and (h - p) L_k estimates the derivative of E[L_e] (Theorem 1), so each
/// column carries 1/K of its example's estimate and 1/E of the batch's, as SBN's 1/B with B = K E. The
/// baseline Lbar_k depends only on the other samples, which are independent of h_k given the example, so
/// the estimator stays unbiased (Corollary 1's argument per sample); for that reason the samples must be
/// independent draws, and antithetic pairs (Context::antithetic) are refused.
///
/// Skipping in a gated layer: backward needs neither dL/dh nor the expert value at closed gates
/// (needs_output_gradient == false), so a GatedLayer skips closed experts in training as in evaluation.
///
/// Evaluation: h = 1[p > t], t calibratable (default 0.5); saved state "<name>.threshold".
template <class T>
class ReinforceLoo : public internal::SigmoidBernoulliGate<ReinforceLoo<T>, T> {
  using Base = internal::SigmoidBernoulliGate<ReinforceLoo<T>, T>;

 public:
  /// Backward uses only the per-example losses: no dL/dh, hence no expert value for closed gates either.
  static constexpr bool needs_output_gradient = false;
  static constexpr bool closed_gate_needs_gradient = false;

  explicit ReinforceLoo(Index units, ReinforceLooOptions<T> options = {}, std::string name = "rloo")
      : Base(units, "ReinforceLoo", std::move(name), options.kl) {}

  /// Training: checks the layout (K >= 2, independent samples, batch a multiple of K), then draws
  /// h ~ Bernoulli(sigm(a)) exactly as StochasticBinary does (same words, same bits). Evaluation: as Base.
  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (ctx.training()) {
      internal::leave_one_out_examples(this->forward_what_, ctx, a.cols());
      samples_ = ctx.samples;
    }
    Base::compute(a, h, ctx);
  }

  /// `dy` is ignored (needs_output_gradient == false): pass dL/dh (`units x batch`) or an empty matrix.
  /// Requires a training forward, the same Context::samples, and ctx.example_loss (`1 x batch`).
  const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>& ctx) {
    this->require_training_forward();
    const Matrix<T>& h = this->output_;
    const Index batch = h.cols();
    const std::string& who = this->backward_what_;
    if (dy.size() != 0) internal::check_shape(this->gradient_what_.c_str(), dy.rows(), dy.cols(), h.rows(), batch);
    if (ctx.samples != samples_)
      internal::fail(who + ": Context::samples is " + std::to_string(ctx.samples) + " but the forward ran with " +
                     std::to_string(samples_));
    const RowVector<T>& loss = ctx.loss_for_batch(who.c_str(), batch);

    // centred_[c] = L_c - Lbar_c = (K L_c - S_e) / (K - 1), S_e the example's sum over its K samples.
    internal::leave_one_out_centre(loss, samples_, centred_);
    Matrix<T>& da = this->input_gradient_;
    da = h - this->p_;
    const T inv_batch = T(1) / static_cast<T>(batch);
    for (Index c = 0; c < batch; ++c) da.col(c) *= centred_[c] * inv_batch;
    this->add_kl_gradient(this->p_, da);
    return da;
  }

  /// K of the last training forward.
  Index samples() const noexcept { return samples_; }

 private:
  Index samples_ = 0;
  RowVector<T> centred_;
};

}  // namespace stoch
