// stoch — what reaches a layer explicitly at every call: the mode, the generator, the per-example loss.
#pragma once

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/mode.hpp"
#include "stoch/core/random.hpp"

namespace stoch {

/// Passed to every forward and backward. There is no global state in stoch: a stochastic layer draws
/// its noise from `generator()`, takes its behaviour from `mode`, and a score-function layer (SBN, Sec. 3)
/// reads the per-example loss that the loss layer wrote into `example_loss` before backward.
template <class T>
struct Context {
  Mode mode = Mode::train;
  Generator* rng = nullptr;
  /// Per-example loss L, `1 x batch`, written by the loss layer's forward (Theorem 1's broadcast L).
  RowVector<T> example_loss;

  /// Training mode without a generator (enough for deterministic layers).
  Context() = default;
  /// The given mode without a generator: `Context<float> ctx(Mode::eval);` evaluates any network, since
  /// evaluation draws nothing.
  explicit Context(Mode mode_) : mode(mode_) {}
  Context(Mode mode_, Generator& rng_) : mode(mode_), rng(&rng_) {}

  bool training() const noexcept { return mode == Mode::train; }

  Generator& generator() const {
    if (rng == nullptr) internal::fail("Context: a stochastic layer needs a generator (Context::rng is null)");
    return *rng;
  }

  /// The per-example loss, checked against the batch size of the layer asking for it.
  const RowVector<T>& loss_for_batch(const char* who, Index batch) const {
    if (example_loss.size() != batch)
      internal::fail(std::string(who) +
                     ": needs the per-example loss (Context::example_loss, 1 x batch) before backward; "
                     "have " + std::to_string(example_loss.size()) + " values for a batch of " +
                     std::to_string(batch));
    return example_loss;
  }
};

}  // namespace stoch
