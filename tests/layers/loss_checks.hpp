// The per-example check of a loss layer's forward (BernoulliLogLikelihood, SoftmaxCrossEntropy): it writes
// ctx.example_loss, one entry per example, equal to a reference computed from the definition.
#pragma once

#include "stoch/core/context.hpp"
#include "support/catch.hpp"

namespace stoch::test {

/// The sums, in example order, of what the forward wrote to ctx.example_loss and of the reference values,
/// for the caller's check of the mean the forward returned.
struct ExampleLossSums {
  double written = 0, expected = 0;
};

/// ctx.example_loss has `batch` entries and entry j equals expected(j) to a relative 1e-12.
template <class Expected>
ExampleLossSums check_example_losses(const Context<double>& ctx, Index batch, Expected&& expected) {
  REQUIRE(ctx.example_loss.size() == batch);
  ExampleLossSums sums;
  for (Index j = 0; j < batch; ++j) {
    const double value = expected(j);
    CHECK(ctx.example_loss[j] == Approx(value).epsilon(1e-12));
    sums.written += ctx.example_loss[j];
    sums.expected += value;
  }
  return sums;
}

}  // namespace stoch::test
