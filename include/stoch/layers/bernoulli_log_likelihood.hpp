// stoch — the Bernoulli log-likelihood on logits: the reconstruction term of a variational autoencoder with
// binary observations (the binary-VAE benchmark, examples/binary_vae), and the per-column log-probability of
// binary vectors under factorised Bernoulli distributions (its prior and posterior terms).
#pragma once

#include <cmath>
#include <string>

#include "stoch/core/context.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

namespace internal {

/// softplus(l) = log(1 + exp(l)) and sigm(l) coefficient-wise from one exp(-|l|) (never overflows:
/// softplus(l) = max(l, 0) + log1p(exp(-|l|)); sigm(l) = 1 / (1 + e) for l >= 0, e / (1 + e) below, e = exp(-|l|)).
/// `sigm` may be null when only the softplus is wanted.
template <class T>
void softplus_and_sigmoid(const MatrixCRef<T>& logits, Matrix<T>& softplus_out, Matrix<T>* sigm) {
  softplus_out.resize(logits.rows(), logits.cols());
  softplus_out.array() = (-logits.array().abs()).exp();  // e
  if (sigm != nullptr) {
    sigm->resize(logits.rows(), logits.cols());
    sigm->array() = (logits.array() >= T(0)).select(T(1), softplus_out.array()) / (T(1) + softplus_out.array());
  }
  softplus_out.array() = logits.array().max(T(0)) + softplus_out.array().log1p();
}

}  // namespace internal

/// log p(v) = sum_i [v_i log sigm(l_i) + (1 - v_i) log sigm(-l_i)] = sum_i (v_i l_i - softplus(l_i)) per column,
/// for values `v` and logits `l` (both `units x batch`; v is binary, or in [0, 1] for a relaxed sample, not
/// checked here). `out` (`1 x batch`) is overwritten. Its derivatives, which callers use: d/dv_i = l_i,
/// d/dl_i = v_i - sigm(l_i). `scratch` keeps its capacity between calls.
template <class T>
void bernoulli_log_probability(const MatrixCRef<T>& logits, const MatrixCRef<T>& values, RowVector<T>& out,
                               Matrix<T>& scratch) {
  internal::check_shape("bernoulli_log_probability: values", values.rows(), values.cols(), logits.rows(),
                        logits.cols());
  internal::softplus_and_sigmoid<T>(logits, scratch, nullptr);
  scratch.array() = values.array() * logits.array() - scratch.array();
  out = scratch.colwise().sum();
}

/// Loss layer: not a `Layer` (it ends the graph). `forward` takes logits `l` (`features x batch`) and targets
/// `x` (`features x batch`, each in [0, 1]: binary pixels, or probabilities for the cross-entropy), writes
/// the per-example negative log-likelihood
///
///     L_j = -log p(x_j | l_j) = sum_i [softplus(l_ij) - x_ij l_ij]          (nats)
///
/// into ctx.example_loss (the L that score-function gates receive, Theorem 1; a caller that adds further
/// terms to the per-example loss, as the VAE's prior and posterior, adds them there before backward), and
/// returns its mean over the batch. `backward` returns dL/dl of the *mean* loss, (sigm(l) - x) / batch.
/// Numerically stable for any finite logits (softplus from exp(-|l|), no log of a sigmoid).
template <class T>
class BernoulliLogLikelihood {
 public:
  using Scalar = T;

  explicit BernoulliLogLikelihood(Index features) : features_(features) {
    if (features <= 0)
      internal::fail("BernoulliLogLikelihood: feature count must be positive, got " + std::to_string(features));
  }

  Index features() const { return features_; }

  T forward(const MatrixCRef<T>& logits, const MatrixCRef<T>& targets, Context<T>& ctx) {
    trained_.forget();  // a throwing forward leaves nothing for backward
    internal::check_rows("BernoulliLogLikelihood::forward: logits", logits.rows(), logits.cols(), features_);
    internal::check_batch("BernoulliLogLikelihood::forward", logits.cols());
    internal::check_shape("BernoulliLogLikelihood::forward: targets", targets.rows(), targets.cols(), features_,
                          logits.cols());
    check_targets(targets);
    const Index batch = logits.cols();
    internal::softplus_and_sigmoid<T>(logits, softplus_, ctx.training() ? &gradient_ : nullptr);
    softplus_.array() -= targets.array() * logits.array();
    ctx.example_loss = softplus_.colwise().sum();
    // NaN or Inf in the logits (diverging weights) gives a non-finite loss: stop there with a message rather
    // than carry NaN into every parameter.
    for (Index j = 0; j < batch; ++j)
      if (!std::isfinite(ctx.example_loss[j]))
        internal::fail("BernoulliLogLikelihood::forward: the loss of example " + std::to_string(j) +
                       " is not finite (NaN or Inf in the logits; check the input and the learning rate)");
    if (ctx.training()) {
      gradient_ -= targets;
      gradient_ /= static_cast<T>(batch);
    }
    trained_.remember(ctx.training());
    return ctx.example_loss.mean();
  }

  /// dL/dlogits for the mean loss: (sigm(l) - x) / batch (`features x batch`). Requires a training forward.
  const Matrix<T>& backward() const {
    trained_.require("BernoulliLogLikelihood::backward");
    return gradient_;
  }

 private:
  void check_targets(const MatrixCRef<T>& targets) const {
    for (Index j = 0; j < targets.cols(); ++j)
      for (Index i = 0; i < targets.rows(); ++i) {
        const T x = targets(i, j);
        if (!(x >= T(0) && x <= T(1)))
          internal::fail("BernoulliLogLikelihood::forward: target " + std::to_string(x) + " at feature " +
                         std::to_string(i) + " of example " + std::to_string(j) +
                         " is not in [0, 1] (binary pixels or probabilities)");
      }
  }

  Index features_;
  Matrix<T> softplus_, gradient_;
  internal::TrainingForward trained_;
};

}  // namespace stoch
