// stoch — stochastic gradient descent with momentum, per-group learning rates and the max-norm constraint
// (App. A.4: learning rate 0.1, 0.001 for the SBN gater; momentum for STS; incoming-weight norms <= 2), plus
// an optional L2 weight decay (not in the paper).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"
#include "stoch/core/threads.hpp"

namespace stoch {

template <class T>
struct SgdOptions {
  T learning_rate = T(0.1);  ///< > 0 (App. A.4's 0.1)
  T momentum = T(0);         ///< in [0, 1); 0 is plain SGD
};

/// Updates every `trainable` Parameter of the list; non-trainable state (running averages, thresholds, the
/// adaptive L1 lambda) is skipped, so the list a model's `parameters()` returns can be passed as it is.
///
/// `step()`, for each trainable parameter, with rate = learning_rate * parameter.learning_rate_scale:
///   velocity = momentum * velocity - rate * (grad + weight_decay * value);   value += velocity;
/// (`Parameter::weight_decay`, 0 unless set, e.g. by set_weight_decay: then the term is not computed at all)
/// then, if `max_norm` is set, rescales each unit's incoming weight vector (row i of `value` for FanIn::rows,
/// column i for FanIn::columns, row r of each block for FanIn::blocks) whose Euclidean norm exceeds the bound
/// down to the bound (App. A.4), and finally clears `grad`. A parameter whose layer flags the columns its
/// backward wrote (Parameter::written_columns: a gated layer's expert weights) is updated on those columns only
/// when the update of the others would change nothing, i.e. without momentum and weight decay: the same values,
/// in a step that costs what the open units or blocks cost. Momentum or weight decay update every column.
/// Without momentum (and weight decay) the velocity is neither read nor written: it keeps what the last step
/// with momentum left (zero if none). The velocities live in
/// Parameter::velocity (so a checkpoint can save and restore them); a velocity whose shape does not match `value` (e.g. empty) is (re)started at zero. Once every
/// velocity and max-norm buffer is sized, `step()` allocates nothing.
///
/// A NaN or Inf never reaches a value or a velocity: the update runs chunk by chunk (kChunk entries) and
/// each chunk's new values are checked while the chunk is in L1 (no extra pass over memory), before it is
/// written. A non-finite gradient (or a value, or an update that overflows) makes `step()` throw
/// stoch::Error naming the parameter and the entry; it then leaves the parameters part-way: those before
/// it in the list, and the chunks of this one before the offending chunk, are updated (gradients cleared,
/// this one's max-norm projection not applied yet); the rest, gradients included, are as before the call,
/// except that with several threads (stoch::set_threads) the ranges of this parameter that other threads
/// stepped are updated too. The values do not depend on the thread count.
/// Every value and velocity stays finite; do not step again without reloading a checkpoint.
template <class T>
class Sgd {
 public:
  explicit Sgd(ParameterList<T> params, SgdOptions<T> options = {})
      : params_(std::move(params)), options_(options), norms_(params_.size()) {
    check_options(options_);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (params_[k] == nullptr) internal::fail("Sgd: parameter " + std::to_string(k) + " is a null pointer");
      size_velocity(*params_[k]);
    }
  }

  void step() {
    for (std::size_t k = 0; k < params_.size(); ++k) {
      Parameter<T>& p = *params_[k];
      if (!p.trainable) continue;
      internal::check_step_parameter("Sgd::step", p);
      if (p.stepped) {  // the layer applied this step in backward (set_fused_steps)
        p.stepped = false;
        internal::clear_written_columns(p);
        continue;
      }
      size_velocity(p);
      const T rate = options_.learning_rate * p.learning_rate_scale;
      if (internal::only_written_columns(p) && options_.momentum == T(0) && p.weight_decay == T(0)) {
        // Only the columns backward wrote (a gated layer's open units or blocks): a column with zero gradient
        // would be left as it is (and within the max-norm ball) anyway.
        update(p, T(0), rate, p.value.rows(), p.written_columns.data());
        if (p.max_norm) apply_max_norm(p, *p.max_norm, norms_[k], p.written_columns.data());
      } else {
        update(p, options_.momentum, rate, p.value.size(), nullptr);
        if (p.max_norm) apply_max_norm(p, *p.max_norm, norms_[k]);
      }
      internal::clear_written_columns(p);
    }
  }

  /// Clears the gradient of every trainable parameter (backward accumulates until this or `step()`).
  void zero_grad() {
    for (Parameter<T>* p : params_)
      if (p->trainable) {
        p->grad.setZero();
        p->stepped = false;
        internal::clear_written_columns(*p);
      }
  }

  /// Lets the layers that can apply this step themselves inside backward do so (Parameter::fused_rate): a
  /// gated layer with block gates on its sparse path then steps each open block's weights as soon as their
  /// gradient is computed, from a buffer in L2, and never writes their gradient: the same values as
  /// backward then step(), with the weights' gradient not passed through memory
  /// (docs/conditional-computation.md#the-optimiser-step). Only for plain SGD (momentum 0; a parameter with
  /// weight decay is left to step()). The step then happens in backward: one backward per step() (a second
  /// backward before step() steps again, where it would have accumulated), and a backward that throws may
  /// leave some blocks stepped. Parameters the layer did not step are stepped by step() as before.
  void set_fused_steps(bool on) {
    if (on && options_.momentum != T(0))
      internal::fail("Sgd::set_fused_steps: a step fused into backward is plain SGD; the momentum is " +
                     std::to_string(options_.momentum) + " (set it to 0 first)");
    fused_ = on;
    share_fused_rate();
  }
  bool fused_steps() const noexcept { return fused_; }

  /// Sets every velocity to zero (e.g. when restarting from a checkpoint saved without velocities).
  void reset_velocity() {
    for (Parameter<T>* p : params_)
      if (p->trainable) p->velocity.setZero(p->value.rows(), p->value.cols());
  }

  void set_learning_rate(T learning_rate) {
    check_options({learning_rate, options_.momentum});
    options_.learning_rate = learning_rate;
    share_fused_rate();
  }
  void set_momentum(T momentum) {
    check_options({options_.learning_rate, momentum});
    if (fused_ && momentum != T(0))
      internal::fail("Sgd::set_momentum: the steps are fused into backward (plain SGD, set_fused_steps); turn "
                     "that off before setting a momentum of " + std::to_string(momentum));
    options_.momentum = momentum;
  }
  T learning_rate() const { return options_.learning_rate; }
  T momentum() const { return options_.momentum; }
  const SgdOptions<T>& options() const { return options_; }
  const ParameterList<T>& parameters() const { return params_; }

 private:
  static void check_options(const SgdOptions<T>& options) {
    internal::check_positive("Sgd: learning_rate", options.learning_rate);
    if (!(options.momentum >= T(0) && options.momentum < T(1)))
      internal::fail("Sgd: momentum must be in [0, 1), got " + std::to_string(options.momentum));
  }


  static constexpr Index kChunk = internal::kSgdChunk<T>;

  /// velocity = momentum * velocity - rate * (grad + weight_decay * value); value += velocity; grad = 0,
  /// chunk by chunk: one pass over memory instead of three (the MNIST network's 2.7 M parameters do not fit
  /// in L2). Each entry gets the same operations as from whole-matrix statements, so results are unchanged.
  /// Before a chunk is written, value + new velocity is checked finite in one vectorised pass over the
  /// chunk in L1 (it is NaN or Inf exactly when the gradient, the value or the update is). Entries [begin,
  /// end) of the flat storage; returns the first entry of the first chunk whose update is not finite (nothing
  /// of it and of the chunks after it written), or -1.
  static Index update_range(Parameter<T>& p, T momentum, T rate, Index begin, Index end) {
    using Chunk = Eigen::Map<Vector<T>>;
    alignas(64) T step[kChunk];
    for (Index first = begin; first < end; first += kChunk) {
      const Index count = std::min(kChunk, end - first);
      Chunk velocity(p.velocity.data() + first, count), grad(p.grad.data() + first, count),
          value(p.value.data() + first, count);
      if (p.weight_decay > T(0)) {
        const auto next = momentum * velocity - rate * (grad + p.weight_decay * value);
        if (!internal::all_finite(value + next)) return first;
        velocity = next;
      } else if (momentum == T(0)) {
        // Without momentum the velocity is not read again: the step goes through a buffer in L1 instead,
        // with the same values (-(rate * grad), then value + it), and two passes over memory fewer.
        if (!internal::plain_sgd_update(value.data(), grad.data(), step, count, rate)) return first;
        grad.setZero();
        continue;
      } else {
        const auto next = momentum * velocity - rate * grad;
        if (!internal::all_finite(value + next)) return first;
        velocity = next;
      }
      value += velocity;
      grad.setZero();
    }
    return -1;
  }

  /// update_range over the whole parameter (`columns` null) or over its flagged columns of `height` entries,
  /// split over the threads in ranges of whole chunks (or columns) when there are enough of them; each
  /// entry's operations do not depend on the split. Throws (refuse) for the first offending chunk once every
  /// thread is done.
  static void update(Parameter<T>& p, T momentum, T rate, Index height, const std::uint8_t* columns) {
    constexpr Index kMaxPieces = 64;
    const Index size = p.value.size();
    const Index units = columns != nullptr ? p.value.cols() : (size + kChunk - 1) / kChunk;
    const Index stride = columns != nullptr ? height : kChunk;
    const Index pieces = std::max<Index>(1, std::min<Index>({threads(), kMaxPieces, size / (16 * kChunk), units}));
    std::array<Index, kMaxPieces> bad;
    bad.fill(-1);
    auto piece = [&](Index t) {
      const Index first = t * units / pieces, last = (t + 1) * units / pieces;
      if (columns == nullptr) {
        bad[static_cast<std::size_t>(t)] = update_range(p, momentum, rate, first * stride, std::min(size, last * stride));
        return;
      }
      for (Index c = first; c < last; ++c)
        if (columns[c] != 0) {
          const Index at = update_range(p, momentum, rate, c * height, (c + 1) * height);
          if (at >= 0) {
            bad[static_cast<std::size_t>(t)] = at;
            return;
          }
        }
    };
    if (pieces == 1) {
      piece(0);
    } else {
      STOCH_OMP_PARALLEL_FOR(true)
      for (Index t = 0; t < pieces; ++t) piece(t);
    }
    for (Index t = 0; t < pieces; ++t)
      if (const Index at = bad[static_cast<std::size_t>(t)]; at >= 0)
        refuse(p, at, std::min(kChunk, size - at), momentum, rate);
  }

  /// The message for a chunk whose update is not finite: names the parameter, the first offending entry
  /// and the likely cause. Builds strings: called only on failure.
  [[noreturn]] static void refuse(const Parameter<T>& p, Index first, Index count, T momentum, T rate) {
    const std::string who = "Sgd::step: parameter '" + p.name + "'";
    internal::refuse_non_finite_entry(who, p, first, count, "see Sgd's comment for the state left");
    for (Index k = first; k < first + count; ++k) {
      const T g = p.grad.data()[k], v = p.value.data()[k];
      const T next = momentum * p.velocity.data()[k] - rate * (g + p.weight_decay * v);
      if (!std::isfinite(v + next))
        internal::fail(who + ": the update makes the value non-finite (NaN or Inf) at entry " + std::to_string(k) +
                       " of " + internal::shape_string(p.value.rows(), p.value.cols()) + " (value " +
                       std::to_string(v) + ", gradient " + std::to_string(g) + "; learning rate too large?)");
    }
    internal::fail(who + ": non-finite update (NaN or Inf)");  // not reached: all_finite found one above
  }

  static void size_velocity(Parameter<T>& p) {
    if (p.trainable && (p.velocity.rows() != p.value.rows() || p.velocity.cols() != p.value.cols()))
      p.velocity.setZero(p.value.rows(), p.value.cols());
  }

  /// App. A.4: every unit's incoming weight vector is projected back onto the ball of radius `bound`.
  static void apply_max_norm(Parameter<T>& p, T bound, Vector<T>& scale, const std::uint8_t* columns = nullptr) {
    internal::scale_units(p, scale, internal::max_norm_factor(bound), columns);
  }

  /// Parameter::fused_rate of every trainable parameter: the learning rate when fused, else none.
  void share_fused_rate() {
    for (Parameter<T>* p : params_)
      if (p->trainable) p->fused_rate = fused_ ? std::optional<T>(options_.learning_rate) : std::nullopt;
  }

  ParameterList<T> params_;
  SgdOptions<T> options_;
  bool fused_ = false;
  std::vector<Vector<T>> norms_;  ///< per-parameter buffer for the row-wise max-norm
};

}  // namespace stoch
