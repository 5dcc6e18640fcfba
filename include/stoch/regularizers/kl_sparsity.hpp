// stoch — the KL-divergence sparsity penalty for sigmoid-based gates (App. A.1, Eq. 14).
#pragma once

#include <algorithm>
#include <cmath>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

/// Eq. 14 on the mini-batch mean activation `pbar_i = mean_b p_ib` of each gate unit i:
///
///   KL(s || pbar) = -lambda * sum_i ( s log pbar_i + (1 - s) log(1 - pbar_i) )
///
/// which is the KL divergence between Bernoulli(s) and Bernoulli(pbar_i) up to the constant lambda * H(s),
/// so it is smallest when every unit's mean activation equals the target s. `p` is `units x batch`
/// with entries in [0, 1] (the gate's probabilities, e.g. sigm(a)).
///
/// pbar_i is clamped to [mean_clamp, 1 - mean_clamp] before the logs, so the value and the gradient stay
/// finite when a whole unit saturates at 0 or 1 for a batch; the gradient uses the clamped pbar_i too, so it
/// still points towards s (a true derivative of the clamped value would vanish there and strand the unit).
///
/// An aggregate: `KlSparsity<float>{.target = 0.1f, .strength = 1.0f}`. The options are checked at every call.
template <class T>
struct KlSparsity {
  T target = T(0.1);  ///< s, in (0, 1)
  T strength = T(1);  ///< lambda, >= 0

  static constexpr T mean_clamp = T(1e-6);

  /// Throws stoch::Error naming the option unless 0 < target < 1 and strength >= 0.
  void validate() const {
    internal::check_open_unit_interval("KlSparsity: target", target);
    internal::check_non_negative("KlSparsity: strength", strength);
  }

  /// Eq. 14 for the probabilities `p` (`units x batch`).
  T value(const MatrixCRef<T>& p) const {
    validate();
    internal::check_batch("KlSparsity::value", p.cols());
    T sum = T(0);
    for (Index i = 0; i < p.rows(); ++i) {
      const T pbar = clamped_mean(p, i);
      sum += target * std::log(pbar) + (T(1) - target) * std::log1p(-pbar);
    }
    return -strength * sum;
  }

  /// d(value)/d(pbar_i) = lambda * (pbar_i - s) / (pbar_i (1 - pbar_i)), at the clamped pbar_i.
  T gradient_wrt_mean(T pbar) const { return strength * (pbar - target) / (pbar * (T(1) - pbar)); }

  /// Adds d(value)/d(p) to `dp` (both `units x batch`): every entry of row i gets gradient_wrt_mean / batch.
  void add_gradient_wrt_activation(const MatrixCRef<T>& p, MatrixRef<T> dp) const {
    check_gradient_call("KlSparsity::add_gradient_wrt_activation", p, dp);
    const T inv_batch = T(1) / static_cast<T>(p.cols());
    for (Index i = 0; i < p.rows(); ++i) dp.row(i).array() += gradient_wrt_mean(clamped_mean(p, i)) * inv_batch;
  }

  /// Adds d(value)/d(a) to `da`, given p = sigm(a) (both `units x batch`):
  /// lambda * (pbar_i - s) / (pbar_i (1 - pbar_i)) * p_ib (1 - p_ib) / batch.
  void add_gradient_wrt_pre_activation(const MatrixCRef<T>& p, MatrixRef<T> da) const {
    check_gradient_call("KlSparsity::add_gradient_wrt_pre_activation", p, da);
    const T inv_batch = T(1) / static_cast<T>(p.cols());
    for (Index i = 0; i < p.rows(); ++i) {
      const T scale = gradient_wrt_mean(clamped_mean(p, i)) * inv_batch;
      da.row(i).array() += scale * p.row(i).array() * (T(1) - p.row(i).array());
    }
  }

 private:
  static T clamped_mean(const MatrixCRef<T>& p, Index i) {
    return std::clamp(p.row(i).mean(), mean_clamp, T(1) - mean_clamp);
  }

  void check_gradient_call(const char* what, const MatrixCRef<T>& p, const MatrixRef<T>& out) const {
    validate();
    internal::check_batch(what, p.cols());
    internal::check_shape(what, out.rows(), out.cols(), p.rows(), p.cols());
  }
};

}  // namespace stoch
