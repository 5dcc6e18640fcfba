// Checks shared by the multi-sample score-function gates (ReinforceLoo, Arm, DisArm): evaluation by the
// threshold alone, refused sample layouts, and gating an expert inside a GatedLayer on both expert paths.
#pragma once

#include <cstdint>
#include <string>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/core/context.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

namespace stoch::test {

/// In Mode::eval the gate is h = 1[sigm(a) > t] whatever the context's sample layout; a backward without a
/// training forward is refused; the threshold is the gate's only parameter, named `<gate name>.threshold`.
template <class GateT>
void check_threshold_evaluation(GateT& gate, const Matrix<double>& a, Context<double>& eval, double threshold,
                                const std::string& parameter_name) {
  gate.set_threshold(threshold);
  CHECK(gate.forward(a, eval) == (a.array().logistic() > threshold).template cast<double>().matrix());
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<double>(), eval), "needs a forward in Mode::train first");
  const ParameterList<double> params = gate.parameters();
  REQUIRE(params.size() == 1);
  CHECK(params[0]->name == parameter_name);
}

/// A training forward of `gate` on a zero `3 x columns` input under the layout (samples, antithetic) is
/// refused with a message containing `message`. The layout is set directly, not by Context::set_samples,
/// so that layouts set_samples would refuse reach the gate.
template <class GateT>
void check_forward_refused(GateT& gate, Index samples, bool antithetic, Index columns, const std::string& message) {
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  ctx.samples = samples;
  ctx.antithetic = antithetic;
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<double>::Zero(3, columns), ctx), message);
}

/// A GatedLayer whose gater is Linear -> GateT (5 gates over a 6-input expert) on `examples` examples tiled
/// K = `samples` times: the sparse and the dense expert paths give the same output, input gradient and
/// parameter gradients, and the sparse path skips closed experts in training (the gate skips in training).
/// The input, the per-example loss and dy are random_matrix of data_seed, data_seed + 1, data_seed + 2.
template <class GateT>
void check_gates_expert_on_both_paths(Index examples, Index samples, bool antithetic, std::uint64_t generator_seed,
                                      std::uint64_t data_seed) {
  using Gater = Sequential<Linear<double>, GateT>;
  const Index batch = examples * samples;
  Generator init(3);
  const Linear<double> gater_linear(6, 5, init), expert(6, 5, init);
  GatedLayer<Gater> sparse(Gater(gater_linear, GateT(5)), expert);
  GatedLayer<Gater> dense(Gater(gater_linear, GateT(5)), expert);
  sparse.set_path(ExpertPath::sparse);
  dense.set_path(ExpertPath::dense);
  const Matrix<double> x = tile_samples(random_matrix<double>(6, examples, data_seed), samples);
  Generator rng_s(generator_seed), rng_d(generator_seed);
  Context<double> ctx_s(Mode::train, rng_s), ctx_d(Mode::train, rng_d);
  ctx_s.set_samples(samples, antithetic);
  ctx_d.set_samples(samples, antithetic);
  const Matrix<double> y = sparse.forward(x, ctx_s);
  CHECK(y.isApprox(dense.forward(x, ctx_d), 1e-12));
  CHECK_FALSE(sparse.last_forward_dense());  // skipping in training: the expert ran at open gates only
  const RowVector<double> loss = random_matrix<double>(1, batch, data_seed + 1);
  ctx_s.example_loss = loss;
  ctx_d.example_loss = loss;
  const Matrix<double> dy = random_matrix<double>(5, batch, data_seed + 2);
  CHECK(sparse.backward(dy, ctx_s).isApprox(dense.backward(dy, ctx_d), 1e-12));
  const ParameterList<double> ps = sparse.parameters(), pd = dense.parameters();
  for (std::size_t k = 0; k < ps.size(); ++k)
    if (ps[k]->trainable) CHECK(ps[k]->grad.isApprox(pd[k]->grad, 1e-12));
}

}  // namespace stoch::test
