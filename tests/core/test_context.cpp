// Tests for include/stoch/core/context.hpp: the mode, the generator a stochastic layer asks for, and the
// per-example loss a score-function layer reads, with the errors that name what is missing.
#include "stoch/core/context.hpp"

#include <limits>
#include <type_traits>

#include "support/catch.hpp"

using namespace stoch;

TEST_CASE("Context reports its mode and hands out its generator", "[context]") {
  Generator rng(3);
  Context<float> train(Mode::train, rng), eval(Mode::eval, rng);
  CHECK(train.training());
  CHECK_FALSE(eval.training());
  CHECK(&train.generator() == &rng);
  Context<float> none;
  CHECK(none.training());  // the default mode is training
  REQUIRE_THROWS_MESSAGE(none.generator(), "Context: a stochastic layer needs a generator");
}

TEST_CASE("Context(Mode) builds an evaluation context without a generator", "[context]") {
  const Context<float> eval(Mode::eval);
  CHECK_FALSE(eval.training());
  CHECK(eval.rng == nullptr);
  REQUIRE_THROWS_MESSAGE(eval.generator(), "needs a generator");
  CHECK(Context<double>(Mode::train).training());
  // explicit: a Mode does not silently become a Context.
  static_assert(!std::is_convertible_v<Mode, Context<float>>);
}

TEST_CASE("Context::loss_for_batch checks the per-example loss against the batch", "[context]") {
  Context<double> ctx;
  REQUIRE_THROWS_MESSAGE(ctx.loss_for_batch("StochasticBinary::backward", 4),
                         "StochasticBinary::backward: needs the per-example loss (Context::example_loss, 1 x batch) "
                         "before backward; have 0 values for a batch of 4");
  ctx.example_loss = RowVector<double>::LinSpaced(4, 1.0, 4.0);
  CHECK(ctx.loss_for_batch("x", 4).sum() == 10.0);
  REQUIRE_THROWS_MESSAGE(ctx.loss_for_batch("x", 5), "have 4 values for a batch of 5");
  ctx.example_loss[2] = std::numeric_limits<double>::quiet_NaN();  // every score-function gate relies on this
  REQUIRE_THROWS_MESSAGE(ctx.loss_for_batch("Arm::backward", 4), "Arm::backward: the per-example loss is not finite");
}
