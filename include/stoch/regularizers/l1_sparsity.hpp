// stoch — the L1 sparsity penalty for rectifier gates with the adaptive strength of App. A.1 (Eq. 15).
#pragma once

#include <algorithm>
#include <limits>
#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch {

/// Eq. 15, L1(p) = lambda * sum_i |p_i|, on each unit's mini-batch mean activation p_i = mean_b h_ib, with
/// lambda adapted so that the effective density s_e (the fraction of non-zero gate outputs in a batch) stays
/// within `band` of the target s: lambda is multiplied by `adapt_factor` when s_e > s + band and divided by it
/// when s_e < s - band (App. A.1 says "increased"/"reduced"; a constant factor, e.g. 1.01, is our reading).
///
/// For rectifier outputs (h >= 0) sum_i |mean_b h_ib| = sum_i mean_b |h_ib|; we compute the latter, so value and
/// gradient (lambda * sign(h) / batch) agree for any sign of h. lambda lives in a 1 x 1 `trainable == false`
/// Parameter, so it is saved and restored with the model (`state()`, `parameters()`).
template <class T>
class AdaptiveL1 {
 public:
  /// Throws stoch::Error naming the option unless 0 < target < 1, initial_lambda >= 0, adapt_factor > 1 and
  /// band >= 0. `name` names the saved lambda (make it unique within a model, e.g. "gater.l1.lambda").
  AdaptiveL1(T target, T initial_lambda, T adapt_factor = T(1.01), T band = T(0.01),
             std::string name = "l1.lambda")
      : target_(target), factor_(adapt_factor), band_(band), lambda_(std::move(name), 1, 1, false) {
    internal::check_open_unit_interval("AdaptiveL1: target", target);
    internal::check_non_negative("AdaptiveL1: initial_lambda", initial_lambda);
    if (!(adapt_factor > T(1)))
      internal::fail("AdaptiveL1: adapt_factor must be > 1, got " + std::to_string(adapt_factor));
    internal::check_non_negative("AdaptiveL1: band", band);
    lambda_.value(0, 0) = initial_lambda;
  }

  /// lambda * sum_i mean_b |h_ib| for the gate outputs `h` (`units x batch`).
  T value(const MatrixCRef<T>& h) const {
    internal::check_batch("AdaptiveL1::value", h.cols());
    return lambda() * h.array().abs().sum() / static_cast<T>(h.cols());
  }

  /// Adds d(value)/d(h) = lambda * sign(h) / batch to `dh` (both `units x batch`).
  void add_gradient_wrt_output(const MatrixCRef<T>& h, MatrixRef<T> dh) const {
    internal::check_batch("AdaptiveL1::add_gradient_wrt_output", h.cols());
    internal::check_shape("AdaptiveL1::add_gradient_wrt_output", dh.rows(), dh.cols(), h.rows(), h.cols());
    dh.array() += (lambda() / static_cast<T>(h.cols())) * h.array().sign();
  }

  /// s_e: the fraction of non-zero entries of `h` (`units x batch`).
  static T effective_density(const MatrixCRef<T>& h) {
    internal::check_batch("AdaptiveL1::effective_density", h.cols());
    return static_cast<T>((h.array() != T(0)).count()) / static_cast<T>(h.size());
  }

  /// App. A.1's rule, called once per batch with that batch's s_e in [0, 1]. Once adapted, lambda is kept >= the
  /// smallest normal number, so neither a zero start nor a long run of too-sparse batches switches the rule off.
  void adapt(T effective_density) {
    if (!(effective_density >= T(0) && effective_density <= T(1)))
      internal::fail("AdaptiveL1::adapt: effective density must be in [0, 1], got " +
                     std::to_string(effective_density));
    T& lambda = lambda_.value(0, 0);
    if (effective_density > target_ + band_)
      lambda = std::max(lambda, std::numeric_limits<T>::min()) * factor_;
    else if (effective_density < target_ - band_)
      lambda = std::max(lambda / factor_, std::numeric_limits<T>::min());
  }

  T lambda() const { return lambda_.value(0, 0); }
  void set_lambda(T lambda) {
    internal::check_non_negative("AdaptiveL1: lambda", lambda);
    lambda_.value(0, 0) = lambda;
  }
  T target() const { return target_; }
  T adapt_factor() const { return factor_; }
  T band() const { return band_; }

  /// lambda as saved state (1 x 1, trainable == false).
  Parameter<T>& state() { return lambda_; }
  const Parameter<T>& state() const { return lambda_; }
  ParameterList<T> parameters() { return {&lambda_}; }

 private:
  T target_, factor_, band_;
  Parameter<T> lambda_;
};

}  // namespace stoch
