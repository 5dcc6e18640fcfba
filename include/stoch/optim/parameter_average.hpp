// stoch — an exponential moving average of the trainable parameters (Polyak-Ruppert averaging), to
// evaluate a network trained by noisy SGD on the average of its recent iterates instead of the last one.
// The paper does not average (App. A); it is one of the choices it leaves open, like the rate schedule.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch {

/// Keeps, for every `trainable` Parameter of the list, the average
///
///   average_t = r_t * average_{t-1} + (1 - r_t) * value_t,   r_t = min(decay, 1 - 1 / t)   (t = 1, 2, ...)
///
/// updated by `update()` after each optimiser step. For t <= 1 / (1 - decay) this is the plain mean of all
/// iterates so far (so the starting point carries no excess weight); after that, an exponential average
/// over about 1 / (1 - decay) steps. Non-trainable state (thresholds, running baselines, the adaptive L1
/// lambda) is neither averaged nor touched.
///
/// `swap_in()` puts the averages into the parameters (and keeps the trained values aside); `swap_out()`
/// puts the trained values back. Evaluate between the two; `ScopedAverage` does both. `state()` lists the
/// averages as non-trainable Parameters named "average/<name>", to save and load with a checkpoint
/// together with `steps()` / `set_steps()`, so that a resumed run continues exactly.
template <class T>
class ParameterAverage {
 public:
  /// `decay` in [0, 1): 0 keeps only the last iterate. Throws stoch::Error naming the problem.
  ParameterAverage(ParameterList<T> params, T decay) : params_(std::move(params)), decay_(decay) {
    if (!(decay_ >= T(0) && decay_ < T(1)))
      internal::fail("ParameterAverage: decay must be in [0, 1), got " + std::to_string(decay_));
    averages_.reserve(params_.size());
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (params_[k] == nullptr)
        internal::fail("ParameterAverage: parameter " + std::to_string(k) + " is a null pointer");
      const Parameter<T>& p = *params_[k];
      Parameter<T> average("average/" + p.name, 0, 0, /*trainable=*/false);
      if (p.trainable) average.value = p.value;  // unused until the first update(), which overwrites it
      averages_.push_back(std::move(average));
    }
  }

  /// Folds the parameters' current values into the averages (call after every optimiser step).
  void update() {
    require_out("update");
    ++steps_;
    const T keep = std::min(decay_, T(1) - T(1) / static_cast<T>(steps_));
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k]->trainable) continue;
      check_shape(k);
      Matrix<T>& average = averages_[k].value;
      average = keep * average + (T(1) - keep) * params_[k]->value;
    }
  }

  /// Exchanges the parameters' values with their averages (no copy); swap_out() undoes it.
  void swap_in() {
    require_out("swap_in");
    exchange();
    swapped_ = true;
  }
  void swap_out() {
    if (!swapped_) internal::fail("ParameterAverage::swap_out: the averages are not swapped in");
    exchange();
    swapped_ = false;
  }
  bool swapped_in() const { return swapped_; }

  /// The averages of the trainable parameters, as Parameters "average/<name>", for checkpoints.
  ParameterList<T> state() {
    ParameterList<T> list;
    for (std::size_t k = 0; k < params_.size(); ++k)
      if (params_[k]->trainable) list.push_back(&averages_[k]);
    return list;
  }

  /// Number of update() calls so far (with the averages, what a checkpoint must keep).
  std::uint64_t steps() const { return steps_; }
  void set_steps(std::uint64_t steps) { steps_ = steps; }
  T decay() const { return decay_; }

 private:
  void require_out(const char* what) const {
    if (swapped_)
      internal::fail(std::string("ParameterAverage::") + what + ": the averages are swapped in; swap_out() first");
  }

  void check_shape(std::size_t k) const {
    const Parameter<T>& p = *params_[k];
    const Matrix<T>& a = averages_[k].value;
    if (a.rows() != p.value.rows() || a.cols() != p.value.cols())
      internal::fail("ParameterAverage: '" + p.name + "' is " + internal::shape_string(p.value.rows(), p.value.cols()) +
                     " but its average is " + internal::shape_string(a.rows(), a.cols()));
  }

  void exchange() {
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k]->trainable) continue;
      check_shape(k);
      params_[k]->value.swap(averages_[k].value);
    }
  }

  ParameterList<T> params_;
  std::vector<Parameter<T>> averages_;
  T decay_;
  std::uint64_t steps_ = 0;
  bool swapped_ = false;
};

/// Swaps the averages in for the lifetime of the scope (a no-op when `average` is null).
template <class T>
class ScopedAverage {
 public:
  explicit ScopedAverage(ParameterAverage<T>* average) : average_(average) {
    if (average_) average_->swap_in();
  }
  ~ScopedAverage() {
    if (average_ && average_->swapped_in()) average_->swap_out();
  }
  ScopedAverage(const ScopedAverage&) = delete;
  ScopedAverage& operator=(const ScopedAverage&) = delete;

 private:
  ParameterAverage<T>* average_;
};

}  // namespace stoch
