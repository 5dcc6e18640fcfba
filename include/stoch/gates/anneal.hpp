// stoch — schedules for a gate's temperature or slope, stepped by the training loop: the Gumbel-sigmoid's
// temperature decays (Jang, Gu, Poole 2017, in their experiments: tau = max(0.5, exp(-r t)), updated every N
// steps), the slope-annealed straight-through's slope grows (Chung, Ahn, Bengio 2017: m = min(5, 1 + 0.04 epoch)).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "stoch/core/error.hpp"

namespace stoch {

/// A value as a function of the training step t (or epoch: the unit is the caller's):
///   constant:            v_t = start
///   exponential_decay:   v_t = max(bound, start exp(-rate s))      (a temperature; bound = the floor)
///   exponential_growth:  v_t = min(bound, start exp(rate s))       (a slope; bound = the cap)
///   linear_growth:       v_t = min(bound, start + rate s)          (Chung et al.'s slope)
/// with s = t rounded down to a multiple of `every` (Jang et al. update the temperature every N = 500 steps;
/// every = 1 follows t). The value is computed in double and then rounded to T, so a float and a double run
/// see the same schedule up to that rounding. Use: `gate.set_temperature(schedule(step))` before a forward.
template <class T>
class Anneal {
 public:
  enum class Form { constant, exponential_decay, exponential_growth, linear_growth };

  /// v_t = value. Throws stoch::Error unless value is finite and > 0.
  static Anneal constant(T value) { return Anneal(Form::constant, value, T(0), value, 1); }

  /// v_t = max(floor, start exp(-rate s)): requires start > 0, rate >= 0, 0 < floor <= start, all finite.
  static Anneal exponential_decay(T start, T rate, T floor, std::uint64_t every = 1) {
    return Anneal(Form::exponential_decay, start, rate, floor, every);
  }
  /// v_t = min(cap, start exp(rate s)): requires start > 0, rate >= 0, cap >= start, all finite.
  static Anneal exponential_growth(T start, T rate, T cap, std::uint64_t every = 1) {
    return Anneal(Form::exponential_growth, start, rate, cap, every);
  }
  /// v_t = min(cap, start + rate s): requires start > 0, rate >= 0, cap >= start, all finite.
  static Anneal linear_growth(T start, T rate, T cap, std::uint64_t every = 1) {
    return Anneal(Form::linear_growth, start, rate, cap, every);
  }

  /// The value at step t (always finite and > 0).
  T operator()(std::uint64_t t) const {
    const double s = static_cast<double>(t / every_ * every_);
    const double start = static_cast<double>(start_), rate = static_cast<double>(rate_),
                 bound = static_cast<double>(bound_);
    switch (form_) {
      case Form::constant: return start_;
      case Form::exponential_decay: return static_cast<T>(std::max(bound, start * std::exp(-rate * s)));
      case Form::exponential_growth: return static_cast<T>(std::min(bound, start * std::exp(rate * s)));
      case Form::linear_growth: return static_cast<T>(std::min(bound, start + rate * s));
    }
    return start_;
  }

  Form form() const noexcept { return form_; }
  T start() const noexcept { return start_; }
  T rate() const noexcept { return rate_; }
  /// The floor (decay) or the cap (growth); the value itself for a constant.
  T bound() const noexcept { return bound_; }
  std::uint64_t every() const noexcept { return every_; }

 private:
  Anneal(Form form, T start, T rate, T bound, std::uint64_t every)
      : form_(form), start_(start), rate_(rate), bound_(bound), every_(every) {
    const auto finite_positive = [](const char* what, T value) {
      if (!std::isfinite(value)) internal::fail(std::string("Anneal: ") + what + " must be finite, got " +
                                                std::to_string(value));
      internal::check_positive((std::string("Anneal: ") + what).c_str(), value);
    };
    finite_positive("start", start);
    if (!(rate >= T(0) && std::isfinite(rate)))
      internal::fail("Anneal: rate must be finite and >= 0, got " + std::to_string(rate));
    if (every == 0) internal::fail("Anneal: every must be >= 1 step");
    if (form == Form::exponential_decay) {
      finite_positive("floor", bound);
      if (bound > start)
        internal::fail("Anneal: the floor " + std::to_string(bound) + " is above the start " + std::to_string(start));
    } else if (form != Form::constant) {
      if (!(std::isfinite(bound) && bound >= start))
        internal::fail("Anneal: the cap must be finite and >= the start " + std::to_string(start) + ", got " +
                       std::to_string(bound));
    }
  }

  Form form_;
  T start_, rate_, bound_;
  std::uint64_t every_;
};

}  // namespace stoch
