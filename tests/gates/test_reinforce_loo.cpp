// ReinforceLoo (Kool et al. 2019): unbiased for every parameter of a small network against the gradient of
// its expected loss computed exactly by enumeration; the estimator's formula; sampling identical to SBN's;
// evaluation; the multi-sample layout's bad inputs; use inside a GatedLayer.
#include <cmath>
#include <cstdio>

#include "exact_binary_network.hpp"
#include "stoch/gates/reinforce_loo.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/multi_sample_gate_checks.hpp"

using namespace stoch;

static_assert(Gate<ReinforceLoo<float>> && Gate<ReinforceLoo<double>>);
static_assert(!ReinforceLoo<float>::needs_output_gradient && skips_in_training<ReinforceLoo<double>>);

TEST_CASE("The exact gradient of the enumerable network agrees with central differences of its expected loss",
          "[gates]") {
  test::ExactBinaryNetwork net;
  Vector<double> exact;
  net.exact(exact);
  Vector<double> numeric(exact.size()), ignored;
  Index k = 0;
  for (Parameter<double>* p : net.parameters())
    for (Index m = 0; m < p->value.size(); ++m, ++k) {
      const double saved = p->value.data()[m], eps = 1e-6;
      p->value.data()[m] = saved + eps;
      const double up = net.exact(ignored);
      p->value.data()[m] = saved - eps;
      const double down = net.exact(ignored);
      p->value.data()[m] = saved;
      numeric[k] = (up - down) / (2 * eps);
    }
  CHECK((exact - numeric).cwiseAbs().maxCoeff() < 1e-8);
  CHECK(exact.cwiseAbs().minCoeff() > 1e-4);  // every coordinate is a real target for the bias test
}

TEST_CASE("ReinforceLoo is unbiased for every parameter (exact enumeration, 5 standard errors)",
          "[gates][statistics]") {
  for (const Index samples : {Index(2), Index(4)})
    test::check_unbiased(ReinforceLoo<double>(test::ExactBinaryNetwork::kUnits),
                         4000 + static_cast<std::uint64_t>(samples), samples, false, "ReinforceLoo");
}

TEMPLATE_TEST_CASE("ReinforceLoo backward is (h - p)(L_k - mean of the other samples' L) / (K E) and ignores dL/dh",
                   "[gates]", float, double) {
  using T = TestType;
  const Index units = 4, samples = 3, examples = 2, batch = samples * examples;
  ReinforceLoo<T> gate(units);
  const Matrix<T> a = tile_samples(test::random_matrix<T>(units, examples, 61), samples);
  Generator rng(5);
  Context<T> ctx(Mode::train, rng);
  ctx.set_samples(samples);
  const Matrix<T> h = gate.forward(a, ctx);
  CHECK(((h.array() == T(0)) || (h.array() == T(1))).all());
  CHECK(gate.samples() == samples);
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<T>(), ctx),
                         "ReinforceLoo::backward ('rloo'): needs the per-example loss");
  ctx.example_loss = test::random_matrix<T>(1, batch, 62);
  const Matrix<T> da = gate.backward(Matrix<T>(), ctx);
  for (Index k = 0; k < samples; ++k)
    for (Index e = 0; e < examples; ++e) {
      const Index c = k * examples + e;
      T others = 0;
      for (Index j = 0; j < samples; ++j)
        if (j != k) others += ctx.example_loss[j * examples + e];
      const T baseline = others / T(samples - 1);
      for (Index i = 0; i < units; ++i)
        CHECK(da(i, c) == Approx((h(i, c) - sigmoid(a(i, c))) * (ctx.example_loss[c] - baseline) / T(batch))
                              .margin(1e-6));
    }
  CHECK(Matrix<T>(gate.backward(test::random_matrix<T>(units, batch, 63), ctx)) == da);  // dL/dh is ignored
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<T>::Zero(3, batch), ctx), "shape mismatch");
  ctx.example_loss[1] = std::numeric_limits<T>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<T>(), ctx),
                         "ReinforceLoo::backward ('rloo'): the per-example loss is not finite");
}

TEST_CASE("ReinforceLoo samples exactly as StochasticBinary does; evaluation is h = 1[p > t]", "[gates]") {
  const Matrix<double> a = test::random_matrix<double>(5, 12, 71);
  Generator rng_loo(9), rng_sbn(9);
  Context<double> ctx_loo(Mode::train, rng_loo), ctx_sbn(Mode::train, rng_sbn);
  ctx_loo.set_samples(4);
  ReinforceLoo<double> loo(5);
  StochasticBinary<double> sbn(5);
  CHECK(loo.forward(a, ctx_loo) == sbn.forward(a, ctx_sbn));
  CHECK(loo.probabilities() == sbn.probabilities());
  CHECK(rng_loo.position() == rng_sbn.position());

  Context<double> eval(Mode::eval);
  eval.samples = 7;  // evaluation ignores the layout: nothing is drawn, nothing is paired
  test::check_threshold_evaluation(loo, a, eval, 0.3, "rloo.threshold");
}

TEST_CASE("ReinforceLoo refuses K < 2, antithetic pairs, a batch that is not a multiple of K, and a changed K",
          "[gates]") {
  ReinforceLoo<double> gate(3);
  test::check_forward_refused(gate, 1, false, 4,
                              "ReinforceLoo::forward ('rloo'): needs K >= 2 samples per example for a leave-one-out "
                              "baseline (Context::samples = 1)");
  test::check_forward_refused(gate, 3, false, 7,
                              "ReinforceLoo::forward ('rloo'): a batch of 7 columns is not a multiple of "
                              "Context::samples = 3");
  test::check_forward_refused(gate, 2, true, 4, "ReinforceLoo::forward ('rloo'): needs independent samples");
  test::check_forward_refused(gate, 0, false, 4,
                              "ReinforceLoo::forward ('rloo'): Context::samples must be >= 1, got 0");
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(2);
  gate.forward(Matrix<double>::Zero(3, 4), ctx);
  ctx.example_loss = RowVector<double>::Ones(4);
  ctx.samples = 4;
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<double>(), ctx),
                         "ReinforceLoo::backward ('rloo'): Context::samples is 4 but the forward ran with 2");
}

TEST_CASE("ReinforceLoo gates an expert: closed experts are skipped in training, on both expert paths", "[gates]") {
  test::check_gates_expert_on_both_paths<ReinforceLoo<double>>(3, 4, false, 11, 81);
}
