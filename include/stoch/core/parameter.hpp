// stoch — a named parameter (or a piece of saved layer state) with its gradient and optimiser state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

/// Which axis of `value` holds one unit's incoming weights, for the max-norm constraint (App. A.4).
/// `rows`: W is `out x in` (Linear); `columns`: stored transposed, `in x out` (the gated expert); `blocks`:
/// the block layout of a gated layer with block gates, `(k in) x (out / k)` with k = Parameter::block, column j
/// holding units jk .. jk + k - 1 as a `k x in` column-major matrix (unit jk + r's weights are its row r).
enum class FanIn { rows, columns, blocks };

/// A trainable parameter or a piece of layer state.
///
/// Layers own their parameters and expose pointers through `parameters()`. Backward *accumulates* into
/// `grad` until the optimiser clears it. Layer state that must survive save/load but is not optimised
/// (running averages, thresholds, adaptive penalties) is a Parameter with `trainable == false`.
template <class T>
struct Parameter {
  std::string name;
  Matrix<T> value;
  Matrix<T> grad;      ///< same shape as value once the layer is built; zero until backward
  Matrix<T> velocity;  ///< optimiser state (momentum); sized lazily by the optimiser
  T learning_rate_scale = T(1);  ///< multiplies the optimiser's rate: per-group rates (App. A.4)
  std::optional<T> max_norm;     ///< bound on each unit's incoming weight vector (App. A.4)
  /// L2 penalty (weight_decay / 2) ||value||^2: the optimiser descends on grad + weight_decay * value. Not in the
  /// paper; 0 (the default) leaves the update exactly as without it.
  T weight_decay = T(0);
  FanIn fan_in = FanIn::rows;
  Index block = 1;  ///< FanIn::blocks: the units per block, k
  bool trainable = true;
  /// Which columns of `grad` backward wrote since the optimiser last cleared it, for a layer that leaves most
  /// of them at zero and says so (GatedLayer's expert weights: a unit, or block, closed in the whole batch
  /// leaves its column untouched): empty when not kept (every column counts), else one flag per column, with
  /// `all_columns_written` set when a backward wrote every column. An optimiser whose update of a parameter
  /// with zero gradient leaves it as it is (Sgd without momentum or weight decay) then updates the flagged
  /// columns only. Code that writes `grad` by other means sets all_columns_written.
  std::vector<std::uint8_t> written_columns;
  bool all_columns_written = true;
  /// Set by `Sgd::set_fused_steps(true)` (plain SGD: no momentum, no weight decay): the optimiser's learning
  /// rate, which lets the layer apply the step itself inside backward, column by column, as soon as a column's
  /// gradient is computed (`learning_rate_scale` and `max_norm` included), without writing `grad`: a gated
  /// layer with block gates does so, which saves the passes of the gradient through memory
  /// (docs/conditional-computation.md#the-optimiser-step). A layer that did sets `stepped`, and the optimiser's
  /// next step leaves the parameter as it is. Layers that cannot fuse accumulate into `grad` as usual.
  std::optional<T> fused_rate;
  bool stepped = false;  ///< backward applied the step (fused_rate); cleared by the optimiser's step

  Parameter() = default;
  Parameter(std::string name_, Index rows, Index cols, bool trainable_ = true)
      : name(std::move(name_)),
        value(Matrix<T>::Zero(rows, cols)),
        grad(Matrix<T>::Zero(trainable_ ? rows : 0, trainable_ ? cols : 0)),
        trainable(trainable_) {}
};

namespace internal {

/// Keeps the flags of the columns of p's gradient that backward writes (Parameter::written_columns).
template <class T>
void track_written_columns(Parameter<T>& p) {
  p.written_columns.assign(static_cast<std::size_t>(p.value.cols()), 0);
  // Until the first step, which then updates every column: grad may hold anything, and the max-norm bound
  // then holds for every unit (a step that skips a column relies on it).
  p.all_columns_written = true;
}

/// Whether only the flagged columns of p's gradient can be non-zero.
template <class T>
bool only_written_columns(const Parameter<T>& p) {
  return !p.written_columns.empty() && !p.all_columns_written &&
         p.written_columns.size() == static_cast<std::size_t>(p.value.cols());
}

/// After the optimiser cleared p's gradient: no column written.
template <class T>
void clear_written_columns(Parameter<T>& p) {
  std::fill(p.written_columns.begin(), p.written_columns.end(), std::uint8_t{0});
  p.all_columns_written = p.written_columns.size() != static_cast<std::size_t>(p.value.cols());
}

/// scale_units for the k units of column j of a parameter in the block layout (FanIn::blocks): each unit's
/// row r of the block's `k x in` weights times `factor(its norm)`; `scale` holds the k norms.
template <class T, class Factor>
void scale_block_units(Parameter<T>& p, Index j, Vector<T>& scale, Factor factor) {
  const Index k = p.block, in = p.value.rows() / k;
  scale.resize(k);  // no-op once sized
  Eigen::Map<Matrix<T>> units(p.value.col(j).data(), k, in);
  scale.noalias() = units.rowwise().norm();
  for (Index r = 0; r < k; ++r) {
    const T f = factor(scale[r]);
    if (f != T(1)) units.row(r) *= f;
  }
}

/// The max-norm projection's factor (App. A.4): a unit's incoming weights of norm above `bound` are scaled
/// down to it, the others left as they are.
template <class T>
auto max_norm_factor(T bound) {
  return [bound](T norm) { return norm > bound ? bound / norm : T(1); };
}

/// Entries per chunk of Sgd's update: the chunk's velocity, gradient and value (8 KB each) stay in L1 from
/// one statement to the next. Why: docs/performance-notes.md#sgd-chunk.
template <class T>
inline constexpr Index kSgdChunk = 8192 / static_cast<Index>(sizeof(T));

/// The plain SGD update (no momentum, no weight decay) of `count` entries: value += -(rate * gradient), the
/// step computed into `step` (`count` entries, in L1), written only when every new value is finite. Returns
/// whether it was written. Shared by Sgd::step and the steps layers apply in backward (Parameter::fused_rate),
/// so both give the same bits.
template <class T>
bool plain_sgd_update(T* value, const T* gradient, T* step, Index count, T rate) {
  Eigen::Map<Vector<T>> v(value, count), next(step, count);
  next = -(rate * Eigen::Map<const Vector<T>>(gradient, count));
  if (!all_finite(v + next)) return false;
  v += next;
  return true;
}

/// Sgd's step of one written column of a parameter in the block layout (FanIn::blocks), from the column's
/// gradient given apart (`p.value.rows()` entries): the plain update at `rate`, chunk by chunk as Sgd::step,
/// then the max-norm projection of the column's units: what Sgd::step does to the column (the same bits).
/// For the step a layer applies in backward (Parameter::fused_rate). Returns false when a chunk's update is
/// not finite: that chunk and the rest are not written, nor the projection applied. `scale`: k norms.
template <class T>
bool sgd_block_step(Parameter<T>& p, Index j, const T* gradient, T rate, Vector<T>& scale) {
  constexpr Index kChunk = kSgdChunk<T>;
  alignas(64) T step[kChunk];
  const Index height = p.value.rows();
  T* value = p.value.col(j).data();
  for (Index first = 0; first < height; first += kChunk) {
    const Index count = std::min(kChunk, height - first);
    if (!plain_sgd_update(value + first, gradient + first, step, count, rate)) return false;
  }
  if (p.max_norm) scale_block_units(p, j, scale, max_norm_factor(*p.max_norm));
  return true;
}

/// Multiplies each unit's incoming weight vector of `p.value` (row or column, per `p.fan_in`) by
/// `factor(its norm)`; vectors whose factor is 1 are left bit-for-bit as they are. `scale` is a buffer for the
/// row norms (rows are strided in column-major storage: all of them are computed in one column-wise pass).
/// With `columns` (FanIn::columns and blocks only), only the units of the flagged columns. Shared by the
/// max-norm projection (App. A.4) and set_unit_norms.
template <class T, class Factor>
void scale_units(Parameter<T>& p, Vector<T>& scale, Factor factor, const std::uint8_t* columns = nullptr) {
  Matrix<T>& w = p.value;
  auto skip = [&](Index j) { return columns != nullptr && columns[j] == 0; };
  if (p.fan_in == FanIn::columns) {
    for (Index j = 0; j < w.cols(); ++j) {
      if (skip(j)) continue;
      const T f = factor(w.col(j).norm());
      if (f != T(1)) w.col(j) *= f;
    }
    return;
  }
  if (p.fan_in == FanIn::blocks) {
    for (Index j = 0; j < w.cols(); ++j)
      if (!skip(j)) scale_block_units(p, j, scale, factor);
    return;
  }
  scale.resize(w.rows());  // no-op once sized
  scale.noalias() = w.rowwise().norm();
  for (Index i = 0; i < scale.size(); ++i) scale[i] = factor(scale[i]);
  w.array().colwise() *= scale.array();
}

/// A trainable weight matrix, as opposed to a bias vector or layer state: what the max-norm bound and the
/// weight decay apply to.
template <class T>
bool is_weight_matrix(const Parameter<T>& p) {
  return p.trainable && ((p.value.cols() > 1 && p.value.rows() > 1) || p.fan_in == FanIn::blocks);
}

/// The domain of a weight-decay coefficient, checked where it is set and where the optimiser reads it.
template <class T>
void check_weight_decay(const std::string& what, T coefficient) {
  if (!(coefficient >= T(0) && std::isfinite(coefficient)))
    fail(what + " must be finite and >= 0, got " + std::to_string(coefficient));
}

/// The checks an optimiser makes of a parameter before stepping it (`optimizer` names it in the message,
/// e.g. "Sgd::step"). Builds a message only on failure: a step must not allocate.
template <class T>
void check_step_parameter(const char* optimizer, const Parameter<T>& p) {
  auto where = [&] { return std::string(optimizer) + ": parameter '" + p.name + "'"; };
  if (p.grad.rows() != p.value.rows() || p.grad.cols() != p.value.cols())
    fail(where() + ": gradient is " + shape_string(p.grad.rows(), p.grad.cols()) + " but the value is " +
         shape_string(p.value.rows(), p.value.cols()));
  if (!(p.learning_rate_scale >= T(0)))
    check_non_negative((where() + ": learning_rate_scale").c_str(), p.learning_rate_scale);
  if (p.max_norm && !(*p.max_norm > T(0))) check_positive((where() + ": max_norm").c_str(), *p.max_norm);
  check_weight_decay(where() + ": weight_decay", p.weight_decay);
}

/// For an optimiser whose update of entries [first, first + count) of `p` was not finite: throws naming the
/// first non-finite gradient or value there, if any (and returns otherwise, for the caller's own message).
/// `who` starts the message ("Sgd::step: parameter 'w'"), `state_note` says where the state left is told.
template <class T>
void refuse_non_finite_entry(const std::string& who, const Parameter<T>& p, Index first, Index count,
                             const char* state_note) {
  for (Index k = first; k < first + count; ++k) {
    const T g = p.grad.data()[k], v = p.value.data()[k];
    const auto entry = [&] {
      return " at entry " + std::to_string(k) + " of " + shape_string(p.value.rows(), p.value.cols());
    };
    if (!std::isfinite(g))
      fail(who + ": non-finite gradient " + std::to_string(g) + " (NaN or Inf)" + entry() +
           "; nothing of it written (a diverged layer upstream? " + state_note + ")");
    if (!std::isfinite(v)) fail(who + ": non-finite value " + std::to_string(v) + " (NaN or Inf)" + entry());
  }
}

}  // namespace internal

/// What `parameters()` returns: non-owning pointers, valid while the layer lives and is not moved.
template <class T>
using ParameterList = std::vector<Parameter<T>*>;

/// Appends `more` to `list` (composite layers gather their children's parameters).
template <class T>
void append(ParameterList<T>& list, const ParameterList<T>& more) {
  list.insert(list.end(), more.begin(), more.end());
}

/// Sets every parameter's learning-rate scale, e.g. the gater's 0.01 relative rate for SBN (App. A.4).
template <class T>
void set_learning_rate_scale(const ParameterList<T>& list, T scale) {
  for (Parameter<T>* p : list) p->learning_rate_scale = scale;
}

/// Sets the max-norm bound on every trainable weight matrix (not the biases: those are vectors).
template <class T>
void set_max_norm(const ParameterList<T>& list, T bound) {
  for (Parameter<T>* p : list)
    if (internal::is_weight_matrix(*p)) p->max_norm = bound;
}

/// Sets the L2 weight decay of every trainable weight matrix (not the biases, as for the max-norm bound).
template <class T>
void set_weight_decay(const ParameterList<T>& list, T coefficient) {
  internal::check_weight_decay("set_weight_decay: coefficient", coefficient);
  for (Parameter<T>* p : list)
    if (internal::is_weight_matrix(*p)) p->weight_decay = coefficient;
}

/// Sets every unit's incoming weight vector of `p` (row or column, per `p.fan_in`) to Euclidean norm `norm`,
/// keeping its direction: e.g. a layer drawn Glorot-uniform whose units should start at the max-norm bound.
/// All-zero vectors stay zero (they have no direction).
template <class T>
void set_unit_norms(Parameter<T>& p, T norm) {
  internal::check_non_negative(("set_unit_norms: '" + p.name + "': norm").c_str(), norm);
  Vector<T> scale;
  internal::scale_units(p, scale, [norm](T n) { return n > T(0) ? norm / n : T(1); });
}

}  // namespace stoch
