// stoch — what reaches a layer explicitly at every call: the mode, the generator, the per-example loss, and
// the multi-sample layout of the batch.
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
  /// Multi-sample layout: a batch of B = samples * E columns holds `samples` (K) tiled copies of E examples;
  /// columns [k E, (k + 1) E) are sample k of examples 0 .. E - 1, so column k E + e is sample k of example
  /// e (stoch::tile_samples builds such a batch; example_loss follows the same columns). Gates that learn
  /// from several samples of an example (ReinforceLoo, Arm, DisArm) read it; the others ignore it. 1: one
  /// sample per example (the default).
  Index samples = 1;
  /// Antithetic pairs (samples == 2 only): sample 1 of example e draws its uniform for unit i as 1 - u, with
  /// u the uniform of sample 0 (one draw shared by the pair; ARM and DisARM need it).
  bool antithetic = false;

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

  /// Sets the multi-sample layout (see `samples`); throws stoch::Error for K < 1 or antithetic with K != 2.
  void set_samples(Index samples_, bool antithetic_ = false) {
    check_samples("Context::set_samples", samples_, antithetic_);
    samples = samples_;
    antithetic = antithetic_;
  }

  /// The number of examples E = batch / samples, after checking the layout for the layer `who` (K >= 1,
  /// antithetic only with K == 2, and a batch that is a whole number of K tiled copies).
  Index examples_for_batch(const char* who, Index batch) const {
    check_samples(who, samples, antithetic);
    if (batch % samples != 0)
      internal::fail(std::string(who) + ": a batch of " + std::to_string(batch) +
                     " columns is not a multiple of Context::samples = " + std::to_string(samples) +
                     " (K tiled copies of E examples)");
    return batch / samples;
  }

  /// The per-example loss, checked against the batch size of the layer asking for it and for finite values.
  const RowVector<T>& loss_for_batch(const char* who, Index batch) const {
    if (example_loss.size() != batch)
      internal::fail(std::string(who) +
                     ": needs the per-example loss (Context::example_loss, 1 x batch) before backward; "
                     "have " + std::to_string(example_loss.size()) + " values for a batch of " +
                     std::to_string(batch));
    // A score-function gate multiplies its gradient by the loss: a NaN here would reach the parameters.
    if (!example_loss.allFinite()) internal::fail(std::string(who) + ": the per-example loss is not finite");
    return example_loss;
  }

 private:
  static void check_samples(const char* who, Index k, bool pairs) {
    if (k < 1) internal::fail(std::string(who) + ": Context::samples must be >= 1, got " + std::to_string(k));
    if (pairs && k != 2)
      internal::fail(std::string(who) + ": antithetic pairs need Context::samples == 2, got " + std::to_string(k));
  }
};

}  // namespace stoch
