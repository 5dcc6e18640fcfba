// stoch — the antithetic score-function gates: ARM (Yin & Zhou, "ARM: Augment-REINFORCE-Merge gradient for
// stochastic binary networks", 2019) and DisARM (Dong, Mnih & Tucker, "DisARM: An antithetic gradient
// estimator for binary latent variables", 2020; the same update as U2G). Both learn, like SBN (Sec. 3), from
// the per-example loss alone, here the two losses of an antithetic pair of samples of each example.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/gates/binary_gate.hpp"

namespace stoch {

/// Which estimator an AntitheticBinary gate computes from the pair.
enum class AntitheticEstimator { arm, disarm };

template <class T>
struct AntitheticBinaryOptions {
  std::optional<KlSparsity<T>> kl = std::nullopt;  ///< Eq. 14 on p = sigm(a); off when empty
};

/// h = 1[u < sigm(a)] on pre-activations `a` (`units x batch`), the batch being antithetic pairs of samples
/// (Context::samples == 2, Context::antithetic == true; see core/samples.hpp): column e is sample 0 of
/// example e with uniforms u, column E + e is sample 1 with uniforms 1 - u (one draw shared). With p the
/// probability of the pair's (common) pre-activation a,
///     b = 1[u < p]  (column e),    b~ = 1[1 - u < p]  (column E + e),
/// and f, f~ their losses (ctx.example_loss). Backward IGNORES dL/dh and returns, for unit i of example e,
/// the estimate g_i of d E[f] / d a_i (both unbiased; Yin & Zhou's Eq. with one shared u; Dong et al.'s
/// Eq. 6), spread over the pair's two columns:
///
///   ARM:     g_i = (f~ - f) (u_i - 1/2)
///   DisARM:  g_i = 1/2 (f - f~) 1[b_i != b~_i] (-1)^{b~_i} sigm(|a_i|)
///
///     dL/da (column e) = dL/da (column E + e) = g_i / (2 E)        (+ the KL penalty's gradient)
///
/// The 1 / (2 E): the loss layer reports the mean over the 2 E columns, and the pair's estimate counts once
/// per example, so each of its columns carries half of g / E (the two columns' sum is the example's share).
/// Both formulas are symmetric in the pair: read from column E + e (u' = 1 - u, b and b~ swapped) they give
/// the same g_i. DisARM is ARM averaged over u given (b, b~) (Rao-Blackwellised), so its variance per unit
/// is at most ARM's.
///
/// The pair must share its pre-activations (a deterministic path from the tiled input to the gate; no
/// dropout or other sampled layer below it): forward refuses pairs whose `a` differ by more than rounding,
/// since b and b~ would then not be an antithetic pair of one distribution and the estimate would be biased.
///
/// Skipping in a gated layer: backward needs neither dL/dh nor the expert value at closed gates
/// (needs_output_gradient == false), so a GatedLayer skips closed experts in training as in evaluation.
///
/// Evaluation: h = 1[p > t], t calibratable (default 0.5); saved state "<name>.threshold".
template <class T, AntitheticEstimator Estimator>
class AntitheticBinary : public internal::SigmoidBernoulliGate<AntitheticBinary<T, Estimator>, T> {
  using Base = internal::SigmoidBernoulliGate<AntitheticBinary<T, Estimator>, T>;

 public:
  /// Backward uses only the pair's losses: no dL/dh, hence no expert value for closed gates either.
  static constexpr bool needs_output_gradient = false;
  static constexpr bool closed_gate_needs_gradient = false;

  static constexpr const char* kind = Estimator == AntitheticEstimator::arm ? "Arm" : "DisArm";

  explicit AntitheticBinary(Index units, AntitheticBinaryOptions<T> options = {},
                            std::string name = Estimator == AntitheticEstimator::arm ? "arm" : "disarm")
      : Base(units, kind, std::move(name), options.kl) {}

  /// Training: checks the layout and the pairs' pre-activations, draws the pair's uniforms
  /// (fill_sample_uniforms: sample 0's block, then 1 - u) and sets h = 1[u < sigm(a)]. Evaluation: as Base.
  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx) {
    if (!ctx.training()) {
      Base::compute(a, h, ctx);
      return;
    }
    const std::string& who = this->forward_what_;
    if (ctx.samples < 2 || !ctx.antithetic)
      internal::fail(who + ": needs antithetic pairs (Context::samples == 2 and Context::antithetic, e.g. "
                           "ctx.set_samples(2, true)); have samples = " + std::to_string(ctx.samples) +
                     ", antithetic = " + (ctx.antithetic ? "true" : "false"));
    const Index examples = ctx.examples_for_batch(who.c_str(), a.cols());
    check_pairs(who, a, examples);
    this->p_.resize(a.rows(), a.cols());
    this->p_.array() = sigmoid(a.array());
    uniforms_.resize(a.rows(), a.cols());
    fill_sample_uniforms<T>(ctx.generator(), uniforms_, 2, true);
    h.array() = (uniforms_.array() < this->p_.array()).template cast<T>();
    examples_ = examples;
  }

  /// `dy` is ignored (needs_output_gradient == false): pass dL/dh (`units x batch`) or an empty matrix.
  /// Requires a training forward and ctx.example_loss (`1 x batch`).
  const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>& ctx) {
    this->require_training_forward();
    const std::string& who = this->backward_what_;
    const Matrix<T>& h = this->output_;
    const Index batch = h.cols(), units = h.rows(), examples = examples_;
    if (dy.size() != 0) internal::check_shape(this->gradient_what_.c_str(), dy.rows(), dy.cols(), units, batch);
    if (ctx.samples != 2 || !ctx.antithetic)
      internal::fail(who + ": Context::samples and Context::antithetic changed since the forward (need 2, true)");
    const RowVector<T>& loss = ctx.loss_for_batch(who.c_str(), batch);

    Matrix<T>& da = this->input_gradient_;
    da.resize(units, batch);
    const T inv_batch = T(1) / static_cast<T>(batch);
    for (Index e = 0; e < examples; ++e) {
      const Index partner = examples + e;
      const T f = loss[e], f_tilde = loss[partner];
      auto g = da.col(e);
      if constexpr (Estimator == AntitheticEstimator::arm) {
        g.array() = (f_tilde - f) * inv_batch * (uniforms_.col(e).array() - T(0.5));
      } else {
        // 1[b != b~] (-1)^{b~} = b - b~ for 0/1 values; sigm(|a|) = max(p, 1 - p).
        const T scale = T(0.5) * (f - f_tilde) * inv_batch;
        const auto p = this->p_.col(e).array();
        g.array() = scale * (h.col(e).array() - h.col(partner).array()) * p.max(T(1) - p);
      }
      da.col(partner) = g;
    }
    this->add_kl_gradient(this->p_, da);
    return da;
  }

  /// The uniforms of the last training forward (`units x batch`; columns E .. 2E - 1 are 1 - columns 0 .. E - 1).
  const Matrix<T>& uniforms() const { return uniforms_; }

 private:
  /// a(:, e) and a(:, E + e) must agree up to rounding (relative sqrt(epsilon)); Elementwise::forward has
  /// already refused a non-finite a.
  static void check_pairs(const std::string& who, const MatrixCRef<T>& a, Index examples) {
    const T tolerance = std::sqrt(std::numeric_limits<T>::epsilon());
    for (Index e = 0; e < examples; ++e)
      for (Index i = 0; i < a.rows(); ++i) {
        const T x = a(i, e), y = a(i, examples + e);
        if (!(std::abs(x - y) <= tolerance * (T(1) + std::max(std::abs(x), std::abs(y)))))
          internal::fail(who + ": the antithetic pair of example " + std::to_string(e) + " has different "
                         "pre-activations at unit " + std::to_string(i) + " (" + std::to_string(x) +
                         " vs " + std::to_string(y) + "); the pair must see the same input through "
                         "deterministic layers (tile_samples, no sampled layer below the gate)");
      }
  }

  Index examples_ = 0;
  Matrix<T> uniforms_;
};

/// ARM (Yin & Zhou 2019) on antithetic pairs; see AntitheticBinary.
template <class T>
using Arm = AntitheticBinary<T, AntitheticEstimator::arm>;

/// DisARM (Dong, Mnih & Tucker 2020) on antithetic pairs; see AntitheticBinary.
template <class T>
using DisArm = AntitheticBinary<T, AntitheticEstimator::disarm>;

}  // namespace stoch
