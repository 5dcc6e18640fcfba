// stoch — a factorised Bernoulli prior p(b) = prod_i sigm(c_i)^b_i sigm(-c_i)^(1 - b_i) with learned logits c:
// the prior of the binary-VAE benchmark (examples/binary_vae: 200 latent units, c learned, started at 0 as in
// Dong, Mnih & Tucker 2020's code), whose ELBO is E_q[log p(x | b) + log p(b) - log q(b | x)].
#pragma once

#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"
#include "stoch/layers/bernoulli_log_likelihood.hpp"

namespace stoch {

/// log p(b_j) = sum_i (b_ij c_i - softplus(c_i)) for each column b_j of `b` (`units x batch`; binary samples,
/// or relaxed ones in [0, 1] for a relaxation of the bound). Not a `Layer`: it maps a batch to one number
/// per column, and its backward takes the weight of each column's log-probability in the loss,
/// w_j = dL/d log p(b_j) (e.g. -1 / batch for a loss that is the mean of -ELBO), and
///   - ACCUMULATES dL/dc = sum_j w_j (b_j - sigm(c)) into the logits' Parameter::grad;
///   - returns dL/db = w_j c for each column (`units x batch`), the signal a straight-through or relaxed
///     gate below receives from the prior term.
/// Parameter: "<name>.logits" (`units x 1`, trainable, zero at construction: p(b_i = 1) = 1/2).
template <class T>
class BernoulliPrior {
 public:
  using Scalar = T;

  explicit BernoulliPrior(Index units, std::string name = "prior")
      : units_(units), name_(std::move(name)) {
    if (units <= 0)
      internal::fail(internal::where("BernoulliPrior", "", name_) + ": unit count must be positive, got " +
                     std::to_string(units));
    logits_ = Parameter<T>(name_ + ".logits", units, 1, /*trainable=*/true);
    forward_what_ = internal::where("BernoulliPrior", "forward", name_);
    backward_what_ = internal::where("BernoulliPrior", "backward", name_);
  }

  Index units() const { return units_; }

  /// log p(b_j) per column (`1 x batch`), valid until the next forward. Refuses a wrong shape or a non-finite
  /// b. A training forward keeps b for backward.
  const RowVector<T>& forward(const MatrixCRef<T>& b, Context<T>& ctx) {
    trained_.forget();
    internal::check_rows((forward_what_ + ": input").c_str(), b.rows(), b.cols(), units_);
    internal::check_batch(forward_what_.c_str(), b.cols());
    internal::check_finite(forward_what_.c_str(), b, "sample");
    const auto c = logits_.value.col(0);
    if (!c.allFinite()) internal::fail(forward_what_ + ": the prior logits are not finite (a diverged update?)");
    // sum_i b_i c_i - sum_i softplus(c_i): one product and one constant per column.
    T log_normaliser = T(0);
    for (Index i = 0; i < units_; ++i) log_normaliser += softplus(c[i]);
    log_prob_.noalias() = c.transpose() * b;
    log_prob_.array() -= log_normaliser;
    if (ctx.training()) samples_ = b;
    trained_.remember(ctx.training());
    return log_prob_;
  }

  /// `weight` = dL/d log p(b_j) per column (`1 x batch`, the batch of the last training forward). Returns
  /// dL/db (`units x batch`) and accumulates dL/dc into logits().grad.
  const Matrix<T>& backward(const RowVector<T>& weight) {
    trained_.require(backward_what_);
    const Index batch = samples_.cols();
    internal::check_shape((backward_what_ + ": weight").c_str(), weight.rows(), weight.cols(), 1, batch);
    internal::check_finite(backward_what_.c_str(), weight, "weight");
    const auto c = logits_.value.col(0);
    // dL/dc = sum_j w_j b_j - (sum_j w_j) sigm(c).
    Vector<T> sigm_c(units_);
    for (Index i = 0; i < units_; ++i) sigm_c[i] = sigmoid(c[i]);
    logits_.grad.col(0).noalias() += samples_ * weight.transpose();
    logits_.grad.col(0) -= weight.sum() * sigm_c;
    input_gradient_.noalias() = c * weight;
    return input_gradient_;
  }

  ParameterList<T> parameters() { return {&logits_}; }

  /// The logits c (`units x 1`).
  Parameter<T>& logits() { return logits_; }
  const Parameter<T>& logits() const { return logits_; }

 private:
  Index units_;
  std::string name_, forward_what_, backward_what_;
  Parameter<T> logits_;
  Matrix<T> samples_, input_gradient_;
  RowVector<T> log_prob_;
  internal::TrainingForward trained_;
};

}  // namespace stoch
