// stoch — an exponential moving average of the trainable parameters (Polyak-Ruppert averaging), to
// evaluate a network trained by noisy SGD on the average of its recent iterates instead of the last one.
// The paper does not average (App. A); it is one of the choices it leaves open, like the rate schedule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch {

/// Keeps, for every `trainable` Parameter of the list, an average of the values it had at every `every`-th
/// call of `update()` (call it after each optimiser step): at the n-th such sample,
///
///   average_n = r_n * average_{n-1} + (1 - r_n) * value,   r_n = min(decay^every, 1 - 1 / n)   (n = 1, 2, ...)
///
/// For the first 1 / (1 - decay) steps this is the plain mean of the samples so far (so the starting point
/// carries no excess weight); after that, an exponential average over about 1 / (1 - decay) steps whatever
/// `every` is. Sampling every k-th step divides the cost (a pass over all parameters, memory-bound) by k:
/// with a window of thousands of steps, k = 16 changes the average very little. Non-trainable state
/// (thresholds, running baselines, the adaptive L1 lambda) is neither averaged nor touched.
///
/// `swap_in()` puts the averages into the parameters (and keeps the trained values aside); `swap_out()`
/// puts the trained values back. Evaluate between the two; `ScopedAverage` does both. `state()` lists the
/// averages as non-trainable Parameters named "average/<name>", to save and load with a checkpoint
/// together with `steps()` / `set_steps()`, so that a resumed run continues exactly.
///
/// A NaN or Inf never enters an average (and so never reaches the parameters through swap_in()): update()
/// folds each parameter in chunk by chunk and checks the chunk's values while it is in L1 (no extra pass
/// over memory); a non-finite value throws stoch::Error naming the parameter and the entry. The averages
/// before it in the list, and the chunks of this one before the offending chunk, are then updated, the
/// rest are not, and steps() has counted the step.
template <class T>
class ParameterAverage {
 public:
  /// `decay` in [0, 1) per step (0 keeps only the last sample); `every` >= 1. Throws stoch::Error naming
  /// the problem.
  ParameterAverage(ParameterList<T> params, T decay, std::uint64_t every = 1)
      : params_(std::move(params)), decay_(decay), every_(every) {
    if (!(decay_ >= T(0) && decay_ < T(1)))
      internal::fail("ParameterAverage: decay must be in [0, 1), got " + std::to_string(decay_));
    if (every_ < 1) internal::fail("ParameterAverage: every must be at least 1, got 0");
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

  /// Counts a step and, every `every` steps, folds the parameters' current values into the averages.
  void update() {
    require_out("update");
    ++steps_;
    if (steps_ % every_ != 0) return;
    const T samples = static_cast<T>(steps_ / every_);
    const T keep = std::min(static_cast<T>(std::pow(decay_, static_cast<T>(every_))), T(1) - T(1) / samples);
    for (std::size_t k = 0; k < params_.size(); ++k) {
      if (!params_[k]->trainable) continue;
      check_shape(k);
      fold(*params_[k], averages_[k].value, keep);
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
  std::uint64_t every() const { return every_; }

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

  /// Entries per chunk of fold(): the chunk's value and average (8 KB each) stay in L1 from the check to
  /// the update.
  static constexpr Index kChunk = 8192 / static_cast<Index>(sizeof(T));

  /// average = keep * average + (1 - keep) * value, chunk by chunk, each chunk's values checked finite
  /// first; every entry gets the same operations as from the whole-matrix statement.
  static void fold(const Parameter<T>& p, Matrix<T>& average, T keep) {
    using Chunk = Eigen::Map<Vector<T>>;
    using ConstChunk = Eigen::Map<const Vector<T>>;
    const Index size = p.value.size();
    for (Index first = 0; first < size; first += kChunk) {
      const Index count = std::min(kChunk, size - first);
      ConstChunk value(p.value.data() + first, count);
      Chunk mean(average.data() + first, count);
      if (!internal::all_finite(value)) {
        for (Index k = first; k < first + count; ++k)
          if (!std::isfinite(p.value.data()[k]))
            internal::fail("ParameterAverage::update: parameter '" + p.name + "': non-finite value " +
                           std::to_string(p.value.data()[k]) + " (NaN or Inf) at entry " + std::to_string(k) +
                           " of " + internal::shape_string(p.value.rows(), p.value.cols()) +
                           "; the averages keep only finite values");
      }
      mean = keep * mean + (T(1) - keep) * value;
    }
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
  std::uint64_t every_;
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
