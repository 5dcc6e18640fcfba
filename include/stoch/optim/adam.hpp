// stoch — Adam (Kingma & Ba 2015, Algorithm 1, with the bias correction of its Sec. 3). Not in the paper
// (Bengio, Léonard, Courville 2013, which uses SGD); the binary-VAE protocol of the estimator benchmarks uses it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch {

template <class T>
struct AdamOptions {
  T learning_rate = T(1e-3);  ///< alpha, > 0 (Kingma & Ba's default)
  T beta1 = T(0.9);           ///< decay of the first moment, in [0, 1)
  T beta2 = T(0.999);         ///< decay of the second moment, in [0, 1)
  T epsilon = T(1e-8);        ///< > 0, added to sqrt(v_hat)
};

/// Updates every `trainable` Parameter of the list (non-trainable state is skipped, as by Sgd, so a model's
/// `parameters()` can be passed as it is). `step()` advances the step count t and, for each trainable
/// parameter, with rate = learning_rate * parameter.learning_rate_scale and g = grad (+ weight_decay * value
/// when Parameter::weight_decay is set, the same L2 penalty Sgd descends on):
///   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2;
///   value -= rate * m_hat / (sqrt(v_hat) + epsilon),   m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)
/// (Algorithm 1 exactly, computed as (rate / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon);
/// the corrections are computed in double). Note: TensorFlow/Keras's Adam adds its epsilon to sqrt(v) before
/// the correction (Kingma & Ba's "epsilon hat" form), which differs while 1 - beta2^t is small, and defaults it
/// to 1e-7. Then, if `max_norm` is set, each unit's incoming weight vector is projected onto the ball as by Sgd
/// (App. A.4), and `grad` is cleared.
///
/// State: the moments m and v of every parameter that is trainable when the optimiser is built, and the step
/// count t, are Parameters owned by the optimiser (trainable == false), listed by `state()`:
///   "<name>.step" (1 x 1, t), then per parameter "<name>.<parameter name>.m" and ".v" (its shape).
/// Save them with the model to resume bit-exactly: save_model(path, model params + adam.state()). In float,
/// t is exact up to 2^24 and then stays there, where both corrections are 1 to float precision anyway. A
/// moment whose shape no longer matches its parameter is restarted at zero. Once built, step() allocates
/// nothing.
///
/// A NaN or Inf never reaches a value or a moment: the update runs chunk by chunk (kChunk entries), the
/// chunk's new m, v and value are computed into buffers while it is in L1, and v and the value are checked
/// finite there (no extra pass over memory) before anything of the chunk is written. A non-finite gradient
/// (or value, or an update or squared gradient that overflows) makes step() throw stoch::Error naming the
/// parameter and the entry; the parameters are then part-way: t is advanced, the parameters before the
/// offending one in the list and the chunks of it before the offending chunk are updated (their gradients
/// cleared; the offending parameter's max-norm projection not applied); the rest, gradients included, are as
/// before the call. Every value and moment stays finite; do not step again without reloading a checkpoint.
template <class T>
class Adam {
 public:
  /// `name` prefixes the names of the optimiser's state. Throws stoch::Error on an option out of its domain
  /// or a null parameter pointer.
  explicit Adam(ParameterList<T> params, AdamOptions<T> options = {}, std::string name = "adam")
      : params_(std::move(params)), options_(options), slot_(params_.size(), kNoSlot), norms_(params_.size()),
        next_m_(kChunk), next_v_(kChunk), next_value_(kChunk) {
    check_options(options_);
    std::size_t trainable = 0;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (params_[k] == nullptr) internal::fail("Adam: parameter " + std::to_string(k) + " is a null pointer");
      if (params_[k]->trainable) ++trainable;
    }
    // One vector, never resized after this: state() hands out pointers into it, and moving the optimiser
    // keeps them valid.
    state_.reserve(1 + 2 * trainable);
    state_.emplace_back(name + ".step", 1, 1, /*trainable=*/false);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      const Parameter<T>& p = *params_[k];
      if (!p.trainable) continue;
      slot_[k] = state_.size();
      state_.emplace_back(name + "." + p.name + ".m", p.value.rows(), p.value.cols(), false);
      state_.emplace_back(name + "." + p.name + ".v", p.value.rows(), p.value.cols(), false);
    }
  }

  void step() {
    T& count = state_[0].value(0, 0);
    if (!(count >= T(0) && std::isfinite(count) && count == std::floor(count)))
      internal::fail("Adam::step: the step count '" + state_[0].name + "' is " + std::to_string(count) +
                     ", not a non-negative integer (a corrupted state?)");
    const double t = static_cast<double>(count) + 1.0;
    count = static_cast<T>(t);
    const double correction1 = 1.0 - std::pow(static_cast<double>(options_.beta1), t);
    const double correction2 = 1.0 - std::pow(static_cast<double>(options_.beta2), t);
    const T inv_sqrt_correction2 = static_cast<T>(1.0 / std::sqrt(correction2));
    for (std::size_t k = 0; k < params_.size(); ++k) {
      Parameter<T>& p = *params_[k];
      if (!p.trainable) continue;
      if (slot_[k] == kNoSlot)
        internal::fail("Adam::step: parameter '" + p.name +
                       "' became trainable after the optimiser was built (it has no moments)");
      internal::check_step_parameter("Adam::step", p);
      if (p.fused_rate || p.stepped)
        internal::fail("Adam::step: parameter '" + p.name + "' is stepped in backward by plain SGD "
                       "(Sgd::set_fused_steps(true)); turn that off before stepping it with Adam");
      Parameter<T>& m = state_[slot_[k]];
      Parameter<T>& v = state_[slot_[k] + 1];
      if (m.value.rows() != p.value.rows() || m.value.cols() != p.value.cols()) {
        m.value.setZero(p.value.rows(), p.value.cols());
        v.value.setZero(p.value.rows(), p.value.cols());
      }
      const double rate = static_cast<double>(options_.learning_rate * p.learning_rate_scale);
      update(p, m.value, v.value, static_cast<T>(rate / correction1), inv_sqrt_correction2);
      if (p.max_norm) internal::scale_units(p, norms_[k], internal::max_norm_factor(*p.max_norm));
      internal::clear_written_columns(p);  // every column updated: the moments decay everywhere
    }
  }

  /// Clears the gradient of every trainable parameter (backward accumulates until this or `step()`).
  void zero_grad() {
    for (Parameter<T>* p : params_)
      if (p->trainable) {
        p->grad.setZero();
        internal::clear_written_columns(*p);
      }
  }

  /// Sets the moments and the step count to zero (a fresh start, e.g. after loading weights only).
  void reset_state() {
    for (Parameter<T>& s : state_) s.value.setZero();
  }

  /// The number of steps taken (or loaded with state()).
  std::uint64_t steps() const { return static_cast<std::uint64_t>(state_[0].value(0, 0)); }

  /// The optimiser's saved state: "<name>.step", then the m and v of each parameter trainable when it was
  /// built, in the list's order. Pointers valid while the optimiser lives (moving it keeps them valid).
  ParameterList<T> state() {
    ParameterList<T> list;
    list.reserve(state_.size());
    for (Parameter<T>& s : state_) list.push_back(&s);
    return list;
  }

  void set_learning_rate(T learning_rate) {
    AdamOptions<T> changed = options_;
    changed.learning_rate = learning_rate;
    check_options(changed);
    options_ = changed;
  }
  T learning_rate() const { return options_.learning_rate; }
  const AdamOptions<T>& options() const { return options_; }
  const ParameterList<T>& parameters() const { return params_; }

 private:
  static constexpr std::size_t kNoSlot = static_cast<std::size_t>(-1);
  /// Entries per chunk of update(): the chunk's gradient, moments, value and the three buffers stay in L1.
  static constexpr Index kChunk = 4096 / static_cast<Index>(sizeof(T));

  static void check_options(const AdamOptions<T>& o) {
    if (!std::isfinite(o.learning_rate)) internal::fail("Adam: learning_rate must be finite");
    internal::check_positive("Adam: learning_rate", o.learning_rate);
    if (!(o.beta1 >= T(0) && o.beta1 < T(1)))
      internal::fail("Adam: beta1 must be in [0, 1), got " + std::to_string(o.beta1));
    if (!(o.beta2 >= T(0) && o.beta2 < T(1)))
      internal::fail("Adam: beta2 must be in [0, 1), got " + std::to_string(o.beta2));
    if (!std::isfinite(o.epsilon)) internal::fail("Adam: epsilon must be finite");
    internal::check_positive("Adam: epsilon", o.epsilon);
  }


  /// Algorithm 1's update of one parameter, chunk by chunk (see the class comment): the new m, v and value
  /// go to the buffers, are checked, then written; `step_size` = rate / (1 - beta1^t).
  void update(Parameter<T>& p, Matrix<T>& m_all, Matrix<T>& v_all, T step_size, T inv_sqrt_correction2) {
    using Chunk = Eigen::Map<Vector<T>>;
    const T b1 = options_.beta1, b2 = options_.beta2, eps = options_.epsilon;
    const T decay = p.weight_decay;
    const Index size = p.value.size();
    for (Index first = 0; first < size; first += kChunk) {
      const Index count = std::min(kChunk, size - first);
      Chunk grad(p.grad.data() + first, count), value(p.value.data() + first, count),
          m(m_all.data() + first, count), v(v_all.data() + first, count);
      auto next_m = next_m_.head(count).array();
      auto next_v = next_v_.head(count).array();
      auto next_value = next_value_.head(count).array();
      if (decay > T(0)) {
        next_value = grad.array() + decay * value.array();  // g, held in the value buffer until it is used
        next_m = b1 * m.array() + (T(1) - b1) * next_value;
        next_v = b2 * v.array() + (T(1) - b2) * next_value.square();
      } else {
        next_m = b1 * m.array() + (T(1) - b1) * grad.array();
        next_v = b2 * v.array() + (T(1) - b2) * grad.array().square();
      }
      next_value = value.array() - step_size * next_m / (next_v.sqrt() * inv_sqrt_correction2 + eps);
      if (!internal::all_finite(next_value) || !internal::all_finite(next_v)) refuse(p, first, count);
      m = next_m_.head(count);
      v = next_v_.head(count);
      value = next_value_.head(count);
      grad.setZero();
    }
  }

  /// The message for a chunk whose update is not finite: names the parameter, the first offending entry and
  /// the likely cause. Builds strings: called only on failure.
  [[noreturn]] static void refuse(const Parameter<T>& p, Index first, Index count) {
    const std::string who = "Adam::step: parameter '" + p.name + "'";
    internal::refuse_non_finite_entry(who, p, first, count, "see Adam's comment for the state left");
    internal::fail(who + ": the update or the squared gradient overflows (NaN or Inf) in entries " +
                   std::to_string(first) + " to " + std::to_string(first + count - 1) +
                   "; nothing of them written (gradients too large?)");
  }

  ParameterList<T> params_;
  AdamOptions<T> options_;
  std::vector<std::size_t> slot_;    ///< per parameter: index of its m in state_ (v follows), or kNoSlot
  std::vector<Parameter<T>> state_;  ///< step count, then m, v per trainable parameter
  std::vector<Vector<T>> norms_;     ///< per-parameter buffer for the row-wise max-norm
  Vector<T> next_m_, next_v_, next_value_;  ///< one chunk's new values, checked before they are written
};

}  // namespace stoch
