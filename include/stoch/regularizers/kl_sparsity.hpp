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
    for_each_row_block(p, [&](Index, Index rows, const T* pbar) {
      for (Index r = 0; r < rows; ++r) sum += target * std::log(pbar[r]) + (T(1) - target) * std::log1p(-pbar[r]);
    });
    return -strength * sum;
  }

  /// d(value)/d(pbar_i) = lambda * (pbar_i - s) / (pbar_i (1 - pbar_i)), at the clamped pbar_i.
  T gradient_wrt_mean(T pbar) const { return strength * (pbar - target) / (pbar * (T(1) - pbar)); }

  /// Adds d(value)/d(p) to `dp` (both `units x batch`): every entry of row i gets gradient_wrt_mean / batch.
  void add_gradient_wrt_activation(const MatrixCRef<T>& p, MatrixRef<T> dp) const {
    check_gradient_call("KlSparsity::add_gradient_wrt_activation", p, dp);
    for_each_row_block_scale(p, [&](Index first, Index rows, const T* scale) {
      for (Index b = 0; b < p.cols(); ++b) {
        T* out = dp.col(b).data() + first;
        for (Index r = 0; r < rows; ++r) out[r] += scale[r];
      }
    });
  }

  /// Adds d(value)/d(a) to `da`, given p = sigm(a) (both `units x batch`):
  /// lambda * (pbar_i - s) / (pbar_i (1 - pbar_i)) * p_ib (1 - p_ib) / batch.
  void add_gradient_wrt_pre_activation(const MatrixCRef<T>& p, MatrixRef<T> da) const {
    check_gradient_call("KlSparsity::add_gradient_wrt_pre_activation", p, da);
    for_each_row_block_scale(p, [&](Index first, Index rows, const T* scale) {
      for (Index b = 0; b < p.cols(); ++b) {
        const T* in = p.col(b).data() + first;
        T* out = da.col(b).data() + first;
        for (Index r = 0; r < rows; ++r) {
          const T term = scale[r] * in[r] * (T(1) - in[r]);  // apart, as in Eigen's `+=` of an expression
          out[r] += term;
        }
      }
    });
  }

 private:
  /// Rows per block of for_each_row_block: the block's sums (1 KB in float) stay in registers or L1.
  static constexpr Index kRowBlock = 256;

  /// Calls f(first, rows, pbar) for consecutive blocks of at most kRowBlock units, pbar[r] the clamped mean
  /// of row first + r. The means are summed column by column, so that the loads are contiguous (p is
  /// column-major: walking a row reads one value per cache line), in the order of Eigen's row mean
  /// (p(i, 0) + p(i, 1) + ... + p(i, batch - 1), then / batch), so the result is bit for bit what
  /// p.row(i).mean() gives.
  template <class F>
  static void for_each_row_block(const MatrixCRef<T>& p, F&& f) {
    T pbar[kRowBlock];
    const Index batch = p.cols();
    for (Index first = 0; first < p.rows(); first += kRowBlock) {
      const Index rows = std::min(kRowBlock, p.rows() - first);
      const T* column = p.col(0).data() + first;
      for (Index r = 0; r < rows; ++r) pbar[r] = column[r];
      for (Index b = 1; b < batch; ++b) {
        column = p.col(b).data() + first;
        for (Index r = 0; r < rows; ++r) pbar[r] += column[r];
      }
      for (Index r = 0; r < rows; ++r)
        pbar[r] = std::clamp(pbar[r] / static_cast<T>(batch), mean_clamp, T(1) - mean_clamp);
      f(first, rows, static_cast<const T*>(pbar));
    }
  }

  /// for_each_row_block with, instead of pbar, each unit's d(value)/d(pbar_i) / batch: what every entry of
  /// row i receives (times p (1 - p) for the pre-activation).
  template <class F>
  void for_each_row_block_scale(const MatrixCRef<T>& p, F&& f) const {
    const T inv_batch = T(1) / static_cast<T>(p.cols());
    for_each_row_block(p, [&](Index first, Index rows, const T* pbar) {
      T scale[kRowBlock];
      for (Index r = 0; r < rows; ++r) scale[r] = gradient_wrt_mean(pbar[r]) * inv_batch;
      f(first, rows, static_cast<const T*>(scale));
    });
  }

  void check_gradient_call(const char* what, const MatrixCRef<T>& p, const MatrixRef<T>& out) const {
    validate();
    internal::check_batch(what, p.cols());
    internal::check_shape(what, out.rows(), out.cols(), p.rows(), p.cols());
  }
};

}  // namespace stoch
