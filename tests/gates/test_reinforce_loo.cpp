// ReinforceLoo (Kool et al. 2019): unbiased for every parameter of a small network against the gradient of
// its expected loss computed exactly by enumeration; the estimator's formula; sampling identical to SBN's;
// evaluation; the multi-sample layout's bad inputs; use inside a GatedLayer.
// GCC 12 reports -Wuninitialized inside its own AVX-512 intrinsics where Eigen's double GEMM packing
// (ptranspose) is inlined into this small translation unit (GCC bug 105593: _mm512_undefined_pd); the
// warning is about the intrinsics headers, so it is silenced before they are included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cmath>
#include <cstdio>

#include "exact_binary_network.hpp"
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/reinforce_loo.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/graph/sequential.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

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
  for (const Index samples : {Index(2), Index(4)}) {
    test::ExactBinaryNetwork net;
    Vector<double> exact;
    net.exact(exact);
    ReinforceLoo<double> gate(test::ExactBinaryNetwork::kUnits);
    Generator rng(4000 + static_cast<std::uint64_t>(samples));
    test::EstimateMoments m;
    for (int estimate = 0; estimate < 40000; ++estimate) m.add(net.step(gate, rng, samples, false));
    const Vector<double> z = (m.mean() - exact).cwiseQuotient(m.standard_error());
    std::printf("ReinforceLoo K = %ld: largest |bias| / se over %ld parameters %.2f; se / |exact| at most %.4f\n",
                static_cast<long>(samples), static_cast<long>(exact.size()), z.cwiseAbs().maxCoeff(),
                m.standard_error().cwiseQuotient(exact.cwiseAbs()).maxCoeff());
    for (Index k = 0; k < exact.size(); ++k) {
      INFO("K = " << samples << ", parameter " << k << ": mean " << m.mean()[k] << ", exact " << exact[k]
                  << ", se " << m.standard_error()[k]);
      CHECK(std::abs(z[k]) < 5.0);
    }
    // The test can fail: each coordinate's standard error is small against its exact value, so a wrong
    // sign or a missing factor would be far outside 5 standard errors.
    CHECK((m.standard_error().array() < 0.1 * exact.cwiseAbs().array()).all());
  }
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
  loo.set_threshold(0.3);
  CHECK(loo.forward(a, eval) == (a.array().logistic() > 0.3).cast<double>().matrix());
  REQUIRE_THROWS_MESSAGE(loo.backward(Matrix<double>(), eval), "needs a forward in Mode::train first");
  const ParameterList<double> params = loo.parameters();
  REQUIRE(params.size() == 1);
  CHECK(params[0]->name == "rloo.threshold");
}

TEST_CASE("ReinforceLoo refuses K < 2, antithetic pairs, a batch that is not a multiple of K, and a changed K",
          "[gates]") {
  ReinforceLoo<double> gate(3);
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, 4), ctx),
                         "ReinforceLoo::forward ('rloo'): needs K >= 2 samples per example for a leave-one-out "
                         "baseline (Context::samples = 1)");
  ctx.set_samples(3);
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, 7), ctx),
                         "ReinforceLoo::forward ('rloo'): a batch of 7 columns is not a multiple of "
                         "Context::samples = 3");
  ctx.set_samples(2, true);
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, 4), ctx),
                         "ReinforceLoo::forward ('rloo'): needs independent samples");
  ctx.set_samples(2);
  gate.forward(Matrix<double>::Zero(3, 4), ctx);
  ctx.example_loss = RowVector<double>::Ones(4);
  ctx.samples = 4;
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<double>(), ctx),
                         "ReinforceLoo::backward ('rloo'): Context::samples is 4 but the forward ran with 2");
  ctx.samples = 0;
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, 4), ctx),
                         "ReinforceLoo::forward ('rloo'): Context::samples must be >= 1, got 0");
}

TEST_CASE("ReinforceLoo gates an expert: closed experts are skipped in training, on both expert paths", "[gates]") {
  using Gater = Sequential<Linear<double>, ReinforceLoo<double>>;
  Generator init(3);
  const Linear<double> gater_linear(6, 5, init), expert(6, 5, init);
  GatedLayer<Gater> sparse(Gater(gater_linear, ReinforceLoo<double>(5)), expert);
  GatedLayer<Gater> dense(Gater(gater_linear, ReinforceLoo<double>(5)), expert);
  sparse.set_path(ExpertPath::sparse);
  dense.set_path(ExpertPath::dense);
  const Matrix<double> x = tile_samples(test::random_matrix<double>(6, 3, 81), 4);
  Generator rng_s(11), rng_d(11);
  Context<double> ctx_s(Mode::train, rng_s), ctx_d(Mode::train, rng_d);
  ctx_s.set_samples(4);
  ctx_d.set_samples(4);
  const Matrix<double> y = sparse.forward(x, ctx_s);
  CHECK(y.isApprox(dense.forward(x, ctx_d), 1e-12));
  CHECK_FALSE(sparse.last_forward_dense());  // skipping in training: the expert ran at open gates only
  const RowVector<double> loss = test::random_matrix<double>(1, 12, 82);
  ctx_s.example_loss = loss;
  ctx_d.example_loss = loss;
  const Matrix<double> dy = test::random_matrix<double>(5, 12, 83);
  CHECK(sparse.backward(dy, ctx_s).isApprox(dense.backward(dy, ctx_d), 1e-12));
  const ParameterList<double> ps = sparse.parameters(), pd = dense.parameters();
  for (std::size_t k = 0; k < ps.size(); ++k)
    if (ps[k]->trainable) CHECK(ps[k]->grad.isApprox(pd[k]->grad, 1e-12));
}
