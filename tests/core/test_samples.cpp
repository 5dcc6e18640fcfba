// Tests for include/stoch/core/samples.hpp and the multi-sample layout of Context (core/context.hpp): the
// tiling of a batch into K copies, its labels, the per-example mean over samples, the layout checks, and
// the antithetic uniforms.
#include "stoch/core/samples.hpp"

#include "stoch/core/context.hpp"
#include "support/catch.hpp"

using namespace stoch;

TEST_CASE("tile_samples puts sample k of example e in column k E + e", "[samples]") {
  Matrix<float> x(2, 3);
  x << 1, 2, 3,  //
      4, 5, 6;
  const Matrix<float> tiled = tile_samples(x, 4);
  REQUIRE(tiled.rows() == 2);
  REQUIRE(tiled.cols() == 12);
  for (Index k = 0; k < 4; ++k)
    for (Index e = 0; e < 3; ++e) CHECK(tiled.col(k * 3 + e) == x.col(e));
  CHECK(tile_samples(x, 1) == x);
  Matrix<float> out(5, 5);
  tile_samples(x.leftCols(2), 2, out);  // any expression; the output is resized
  CHECK(out.cols() == 4);
  CHECK(out.col(3) == x.col(1));
  REQUIRE_THROWS_MESSAGE(tile_samples(x, 0), "tile_samples: samples must be >= 1, got 0");
  REQUIRE_THROWS_MESSAGE(tile_samples(Matrix<float>(2, 0), 2), "tile_samples: empty batch");

  const std::vector<int> labels{7, 8, 9};
  CHECK(tile_labels(labels, 2) == std::vector<int>{7, 8, 9, 7, 8, 9});
  REQUIRE_THROWS_MESSAGE(tile_labels(labels, -1), "tile_labels: samples must be >= 1, got -1");
  REQUIRE_THROWS_MESSAGE(tile_labels({}, 2), "tile_labels: empty batch");
}

TEST_CASE("mean_over_samples averages each example's K values", "[samples]") {
  RowVector<double> loss(6);
  loss << 1, 2, 3, 5, 6, 7;  // K = 2 samples of E = 3 examples
  const RowVector<double> mean = mean_over_samples(loss, 2);
  REQUIRE(mean.size() == 3);
  CHECK(mean[0] == 3.0);
  CHECK(mean[1] == 4.0);
  CHECK(mean[2] == 5.0);
  CHECK(mean_over_samples(loss, 1) == loss);
  REQUIRE_THROWS_MESSAGE(mean_over_samples(loss, 4), "mean_over_samples: 6 values are not a non-empty multiple of "
                                                     "samples = 4");
}

TEST_CASE("Context's multi-sample layout: defaults, set_samples, and the per-batch check", "[samples][context]") {
  Context<float> ctx;
  CHECK(ctx.samples == 1);
  CHECK_FALSE(ctx.antithetic);
  CHECK(ctx.examples_for_batch("Gate", 5) == 5);  // K = 1 accepts any batch
  ctx.set_samples(4);
  CHECK(ctx.examples_for_batch("Gate", 12) == 3);
  REQUIRE_THROWS_MESSAGE(ctx.examples_for_batch("Gate::forward", 10),
                         "Gate::forward: a batch of 10 columns is not a multiple of Context::samples = 4 (K tiled "
                         "copies of E examples)");
  ctx.set_samples(2, true);
  CHECK(ctx.antithetic);
  CHECK(ctx.examples_for_batch("Gate", 6) == 3);
  REQUIRE_THROWS_MESSAGE(ctx.set_samples(3, true), "Context::set_samples: antithetic pairs need Context::samples == "
                                                   "2, got 3");
  REQUIRE_THROWS_MESSAGE(ctx.set_samples(0), "Context::set_samples: Context::samples must be >= 1, got 0");
  CHECK(ctx.samples == 2);  // a refused layout changes nothing
  ctx.samples = 4;          // the fields are public: the check runs again where the layout is used
  REQUIRE_THROWS_MESSAGE(ctx.examples_for_batch("Arm::forward", 8),
                         "Arm::forward: antithetic pairs need Context::samples == 2, got 4");
}

TEMPLATE_TEST_CASE("fill_sample_uniforms: independent draws, or antithetic pairs 1 - u from one draw", "[samples]",
                   float, double) {
  using T = TestType;
  Matrix<T> u(9, 40), reference(9, 40);
  Generator rng(31), expected(31);
  fill_sample_uniforms<T>(rng, u, 4, false);
  fill_uniform<T>(expected, reference);
  CHECK(u == reference);  // without pairs: exactly fill_uniform
  CHECK(rng.position() == expected.position());

  Generator pairs(32), first_only(32);
  fill_sample_uniforms<T>(pairs, u, 2, true);
  Matrix<T> first(9, 20);
  fill_uniform<T>(first_only, first);
  CHECK(u.leftCols(20) == first);
  CHECK((u.rightCols(20).array() == T(1) - first.array()).all());
  CHECK((u.rightCols(20).array() + first.array() == T(1)).all());  // 1 - u is exact (same grid as u)
  CHECK(((u.array() > T(0)) && (u.array() < T(1))).all());
  CHECK(pairs.position() == first_only.position());  // one draw for the pair

  REQUIRE_THROWS_MESSAGE(fill_sample_uniforms<T>(pairs, u, 3, true), "antithetic pairs need samples == 2, got 3");
  Matrix<T> odd(2, 5);
  REQUIRE_THROWS_MESSAGE(fill_sample_uniforms<T>(pairs, odd, 2, true), "a batch of 5 columns is not a multiple");
}
