// DoubleCv (Titsias & Shi 2022): unbiased for every parameter of a small network against the gradient of its
// expected loss computed exactly by enumeration (fixed and adaptive alpha, K = 2 and 4); the formula, checked
// against a direct transcription with explicit leave-one-out sums; alpha = 0 is ReinforceLoo; alpha = -1 is
// exact for a loss linear in h; the adaptive alpha; sampling identical to SBN's; evaluation; bad input; use
// inside a GatedLayer (dense expert in training: closed gates need dL/dh); a lower variance than ReinforceLoo
// at the same K on the enumerable network (measured in groups, the margin in standard errors of the groups).
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "exact_binary_network.hpp"
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/double_cv.hpp"
#include "stoch/gates/reinforce_loo.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/graph/sequential.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/multi_sample_gate_checks.hpp"

using namespace stoch;

static_assert(Gate<DoubleCv<float>> && Gate<DoubleCv<double>>);
static_assert(DoubleCv<double>::needs_output_gradient && DoubleCv<double>::closed_gate_needs_gradient);
static_assert(!skips_in_training<DoubleCv<float>>);

namespace {

DoubleCv<double> fixed_alpha(Index units, double alpha) {
  return DoubleCv<double>(units, {.alpha_rule = DoubleCvAlpha::fixed, .alpha = alpha});
}

/// The estimate of dL/da for one batch written out from its definition (double_cv.hpp), with explicit sums
/// over the other samples j != k: gbar, c, A and V per column, then A + alpha V.
template <class T>
Matrix<T> direct_estimate(const Matrix<T>& h, const Matrix<T>& p, const Matrix<T>& dy, const RowVector<T>& loss,
                          Index samples, T alpha) {
  const Index units = h.rows(), batch = h.cols(), examples = batch / samples;
  const T big_b = static_cast<T>(batch);
  Matrix<T> gbar = Matrix<T>::Zero(units, batch);  // gradient units: B dy
  for (Index k = 0; k < samples; ++k)
    for (Index e = 0; e < examples; ++e)
      for (Index j = 0; j < samples; ++j)
        if (j != k) gbar.col(k * examples + e) += big_b * dy.col(j * examples + e) / T(samples - 1);
  const Matrix<T> s = h - p;
  RowVector<T> c(batch);
  for (Index col = 0; col < batch; ++col) c[col] = gbar.col(col).dot(s.col(col));
  Matrix<T> out(units, batch);
  for (Index k = 0; k < samples; ++k)
    for (Index e = 0; e < examples; ++e) {
      const Index col = k * examples + e;
      T loss_others = 0, c_others = 0;
      for (Index j = 0; j < samples; ++j)
        if (j != k) {
          loss_others += loss[j * examples + e] / T(samples - 1);
          c_others += c[j * examples + e] / T(samples - 1);
        }
      const auto variance = (p.col(col).array() * (T(1) - p.col(col).array())).matrix();
      const Vector<T> a_part = (loss[col] - loss_others) * s.col(col) / big_b;
      const Vector<T> v_part =
          ((c[col] - c_others) * s.col(col) - variance.cwiseProduct(gbar.col(col))) / big_b;
      out.col(col) = a_part + alpha * v_part;
    }
  return out;
}

}  // namespace

TEST_CASE("DoubleCv is unbiased for every parameter (exact enumeration, 5 standard errors)", "[gates][statistics]") {
  for (const Index samples : {Index(2), Index(4)}) {
    test::check_unbiased(fixed_alpha(test::ExactBinaryNetwork::kUnits, -1.0),
                         7000 + static_cast<std::uint64_t>(samples), samples, false, "DoubleCv alpha = -1");
    test::check_unbiased(DoubleCv<double>(test::ExactBinaryNetwork::kUnits),
                         7100 + static_cast<std::uint64_t>(samples), samples, false, "DoubleCv adaptive alpha");
  }
  // Far from the variance-minimising coefficient: still unbiased (V has mean zero for every alpha).
  test::check_unbiased(fixed_alpha(test::ExactBinaryNetwork::kUnits, 0.5), 7200, 2, false, "DoubleCv alpha = 0.5");
}

TEMPLATE_TEST_CASE("DoubleCv backward is A + alpha V of its definition, for every column", "[gates]", float, double) {
  using T = TestType;
  const Index units = 4, samples = 3, examples = 2, batch = samples * examples;
  const T alpha = T(-0.7);
  DoubleCv<T> gate(units, {.alpha_rule = DoubleCvAlpha::fixed, .alpha = alpha});
  const Matrix<T> a = tile_samples(test::random_matrix<T>(units, examples, 61), samples);
  Generator rng(5);
  Context<T> ctx(Mode::train, rng);
  ctx.set_samples(samples);
  const Matrix<T> h = gate.forward(a, ctx);
  CHECK(((h.array() == T(0)) || (h.array() == T(1))).all());
  CHECK(gate.samples() == samples);
  const Matrix<T> dy = test::random_matrix<T>(units, batch, 63, T(0.1));
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, ctx), "DoubleCv::backward ('double_cv'): needs the per-example loss");
  ctx.example_loss = test::random_matrix<T>(1, batch, 62);
  const Matrix<T> da = gate.backward(dy, ctx);
  const Matrix<T> p = a.array().logistic().matrix();
  const Matrix<T> expected = direct_estimate<T>(h, p, dy, ctx.example_loss, samples, alpha);
  const T tolerance = std::is_same_v<T, float> ? T(1e-5) : T(1e-12);
  CHECK((da - expected).cwiseAbs().maxCoeff() < tolerance);
  CHECK(gate.alpha() == alpha);  // fixed: no update
  // dL/dh matters (unlike ReinforceLoo): another dy, another estimate.
  const Matrix<T> dy2 = test::random_matrix<T>(units, batch, 64, T(0.1));
  CHECK((Matrix<T>(gate.backward(dy2, ctx)) -
         direct_estimate<T>(h, p, dy2, ctx.example_loss, samples, alpha)).cwiseAbs().maxCoeff() < tolerance);
  CHECK_FALSE(Matrix<T>(gate.backward(dy2, ctx)).isApprox(da));
}

TEST_CASE("DoubleCv with alpha = 0 is ReinforceLoo; both sample exactly as StochasticBinary does", "[gates]") {
  const Index units = 5, samples = 4, examples = 3, batch = samples * examples;
  const Matrix<double> a = tile_samples(test::random_matrix<double>(units, examples, 71), samples);
  Generator rng_cv(9), rng_loo(9), rng_sbn(9);
  Context<double> ctx_cv(Mode::train, rng_cv), ctx_loo(Mode::train, rng_loo), ctx_sbn(Mode::train, rng_sbn);
  ctx_cv.set_samples(samples);
  ctx_loo.set_samples(samples);
  DoubleCv<double> cv = fixed_alpha(units, 0.0);
  ReinforceLoo<double> loo(units);
  StochasticBinary<double> sbn(units);
  const Matrix<double> h = cv.forward(a, ctx_cv);
  CHECK(h == loo.forward(a, ctx_loo));
  CHECK(h == sbn.forward(a, ctx_sbn));
  CHECK(cv.probabilities() == sbn.probabilities());
  CHECK(rng_cv.position() == rng_sbn.position());
  ctx_cv.example_loss = ctx_loo.example_loss = test::random_matrix<double>(1, batch, 72);
  const Matrix<double> dy = test::random_matrix<double>(units, batch, 73);
  CHECK((Matrix<double>(cv.backward(dy, ctx_cv)) - loo.backward(dy, ctx_loo)).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("DoubleCv with alpha = -1 is exact for a loss linear in h: zero variance", "[gates]") {
  // L_e(h) = w . h + b_e for every sample: dL/dh = w / B (the loss layer's mean over the B columns), and
  // dE[L_e]/da = p (1 - p) w. Per example, the sum of the K columns' estimates (the gradient with respect to
  // the shared a) must equal p (1 - p) w / E whatever h was drawn.
  const Index units = 6, samples = 3, examples = 4, batch = samples * examples;
  const Vector<double> w = test::random_matrix<double>(units, 1, 81);
  const Matrix<double> a = tile_samples(test::random_matrix<double>(units, examples, 82), samples);
  const RowVector<double> offsets = test::random_matrix<double>(1, examples, 83);
  DoubleCv<double> gate = fixed_alpha(units, -1.0);
  Generator rng(11);
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(samples);
  double worst = 0;
  for (int draw = 0; draw < 20; ++draw) {
    const Matrix<double>& h = gate.forward(a, ctx);
    ctx.example_loss.resize(batch);
    for (Index c = 0; c < batch; ++c) ctx.example_loss[c] = w.dot(h.col(c)) + offsets[c % examples];
    const Matrix<double> dy = (w / static_cast<double>(batch)).replicate(1, batch);
    const Matrix<double> da = gate.backward(dy, ctx);
    for (Index e = 0; e < examples; ++e) {
      Vector<double> sum = Vector<double>::Zero(units);
      for (Index k = 0; k < samples; ++k) sum += da.col(k * examples + e);
      const Vector<double> p = a.col(e).array().logistic().matrix();
      const Vector<double> exact = (p.array() * (1 - p.array()) * w.array()).matrix() / static_cast<double>(examples);
      worst = std::max(worst, (sum - exact).cwiseAbs().maxCoeff());
    }
  }
  CHECK(worst < 1e-14);
  // ReinforceLoo on the same loss is not exact (the check above can fail).
  ReinforceLoo<double> loo(units);
  const Matrix<double>& h = loo.forward(a, ctx);
  for (Index c = 0; c < batch; ++c) ctx.example_loss[c] = w.dot(h.col(c)) + offsets[c % examples];
  const Matrix<double> da = loo.backward(Matrix<double>(), ctx);
  const Vector<double> p = a.col(0).array().logistic().matrix();
  Vector<double> sum = Vector<double>::Zero(units);
  for (Index k = 0; k < samples; ++k) sum += da.col(k * examples);
  CHECK((sum - (p.array() * (1 - p.array()) * w.array()).matrix() / static_cast<double>(examples))
            .cwiseAbs()
            .maxCoeff() > 1e-3);
}

TEST_CASE("DoubleCv adaptive alpha: the initial value first, then -N / D of the earlier batches", "[gates]") {
  const Index units = 4, samples = 2, examples = 3, batch = samples * examples;
  const double rate = 0.25;
  DoubleCv<double> gate(units, {.alpha = -0.5, .average_rate = rate});
  CHECK(gate.alpha() == -0.5);
  const Matrix<double> a = tile_samples(test::random_matrix<double>(units, examples, 91), samples);
  Generator rng(13);
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(samples);
  double numerator = 0, denominator = 0;
  for (int step = 0; step < 3; ++step) {
    const Matrix<double> h = gate.forward(a, ctx);
    ctx.example_loss = test::random_matrix<double>(1, batch, 92 + static_cast<std::uint64_t>(step));
    const Matrix<double> dy = test::random_matrix<double>(units, batch, 95 + static_cast<std::uint64_t>(step), 0.2);
    const double alpha = gate.alpha();
    const Matrix<double> p = a.array().logistic().matrix();
    const Matrix<double> a_part = direct_estimate<double>(h, p, dy, ctx.example_loss, samples, 0.0);
    const Matrix<double> v_part = direct_estimate<double>(h, p, dy, ctx.example_loss, samples, 1.0) - a_part;
    // This batch's estimate uses the alpha of the earlier batches ...
    CHECK((Matrix<double>(gate.backward(dy, ctx)) - (a_part + alpha * v_part)).cwiseAbs().maxCoeff() < 1e-12);
    // ... and then the running sums of the per-example A . V and V . V move by this batch.
    double cross = 0, square = 0;
    for (Index e = 0; e < examples; ++e) {
      const Vector<double> sum_a = a_part.col(e) + a_part.col(examples + e);
      const Vector<double> sum_v = v_part.col(e) + v_part.col(examples + e);
      cross += sum_a.dot(sum_v);
      square += sum_v.squaredNorm();
    }
    numerator = (1 - rate) * numerator + rate * cross;
    denominator = (1 - rate) * denominator + rate * square;
    CHECK(gate.alpha() == Approx(-numerator / denominator).epsilon(1e-12));
  }
  const ParameterList<double> params = gate.parameters();
  REQUIRE(params.size() == 3);
  CHECK(params[1]->name == "double_cv.alpha_numerator");
  CHECK(params[2]->name == "double_cv.alpha_denominator");
  CHECK_FALSE(params[1]->trainable);
  CHECK(params[1]->value(0, 0) == Approx(numerator).epsilon(1e-12));
  // The state is the saved N and D: a gate given them continues with the same alpha.
  DoubleCv<double> restored(units, {.alpha = -0.5, .average_rate = rate});
  restored.parameters()[1]->value = params[1]->value;
  restored.parameters()[2]->value = params[2]->value;
  CHECK(restored.alpha() == gate.alpha());
}

TEST_CASE("DoubleCv evaluation is h = 1[p > t]; with a fixed alpha the threshold is its only state", "[gates]") {
  DoubleCv<double> gate = fixed_alpha(5, -1.0);
  Context<double> eval(Mode::eval);
  eval.samples = 7;  // evaluation ignores the layout: nothing is drawn, nothing is paired
  test::check_threshold_evaluation(gate, test::random_matrix<double>(5, 12, 75), eval, 0.3, "double_cv.threshold");
}

TEST_CASE("DoubleCv refuses K < 2, antithetic pairs, a bad batch, a changed K, missing or non-finite inputs, "
          "bad options",
          "[gates]") {
  DoubleCv<double> gate(3);
  test::check_forward_refused(gate, 1, false, 4,
                              "DoubleCv::forward ('double_cv'): needs K >= 2 samples per example for a "
                              "leave-one-out baseline (Context::samples = 1)");
  test::check_forward_refused(gate, 3, false, 7,
                              "DoubleCv::forward ('double_cv'): a batch of 7 columns is not a multiple of "
                              "Context::samples = 3");
  test::check_forward_refused(gate, 2, true, 4, "DoubleCv::forward ('double_cv'): needs independent samples");
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(2);
  Matrix<double> a = Matrix<double>::Zero(3, 4);
  a(1, 2) = std::numeric_limits<double>::infinity();
  REQUIRE_THROWS_MESSAGE(gate.forward(a, ctx), "DoubleCv::forward ('double_cv'): non-finite pre-activation");
  gate.forward(Matrix<double>::Zero(3, 4), ctx);
  Matrix<double> dy = Matrix<double>::Zero(3, 4);
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, ctx),
                         "DoubleCv::backward ('double_cv'): needs the per-example loss (Context::example_loss");
  ctx.example_loss = RowVector<double>::Ones(4);
  ctx.example_loss[3] = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, ctx), "DoubleCv::backward ('double_cv'): the per-example loss is not finite");
  ctx.example_loss[3] = 1;
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<double>(), ctx), "DoubleCv::backward ('double_cv'): output gradient");
  dy(2, 1) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, ctx),
                         "DoubleCv::backward ('double_cv'): non-finite output gradient dL/dh nan (NaN or Inf) at "
                         "feature 2 of example 1");
  dy(2, 1) = 0;
  CHECK(gate.alpha() == -1.0);  // refused backwards changed nothing
  ctx.samples = 4;
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, ctx),
                         "DoubleCv::backward ('double_cv'): Context::samples is 4 but the forward ran with 2");
  Context<double> eval(Mode::eval);
  gate.forward(Matrix<double>::Zero(3, 4), eval);
  REQUIRE_THROWS_MESSAGE(gate.backward(dy, eval), "needs a forward in Mode::train first");
  REQUIRE_THROWS_MESSAGE(DoubleCv<double>(3, {.alpha = std::nan("")}), "DoubleCv ('double_cv'): alpha must be finite");
  REQUIRE_THROWS_MESSAGE(DoubleCv<double>(3, {.average_rate = 1.0}), "DoubleCv ('double_cv'): average_rate");
}

TEST_CASE("DoubleCv gates an expert: the expert is dense in training (closed gates need dL/dh), both paths agree",
          "[gates]") {
  using Gater = Sequential<Linear<double>, DoubleCv<double>>;
  const Index examples = 3, samples = 4, batch = examples * samples;
  Generator init(3);
  const Linear<double> gater_linear(6, 5, init), expert(6, 5, init);
  GatedLayer<Gater> sparse(Gater(gater_linear, DoubleCv<double>(5)), expert);
  GatedLayer<Gater> dense(Gater(gater_linear, DoubleCv<double>(5)), expert);
  sparse.set_path(ExpertPath::sparse);
  dense.set_path(ExpertPath::dense);
  const Matrix<double> x = tile_samples(test::random_matrix<double>(6, examples, 81), samples);
  Generator rng_s(11), rng_d(11);
  Context<double> ctx_s(Mode::train, rng_s), ctx_d(Mode::train, rng_d);
  ctx_s.set_samples(samples);
  ctx_d.set_samples(samples);
  const Matrix<double> y = sparse.forward(x, ctx_s);
  CHECK(y.isApprox(dense.forward(x, ctx_d), 1e-12));
  CHECK(sparse.last_forward_dense());  // no skipping in training: closed gates receive dy * H
  const RowVector<double> loss = test::random_matrix<double>(1, batch, 82);
  ctx_s.example_loss = loss;
  ctx_d.example_loss = loss;
  const Matrix<double> dy = test::random_matrix<double>(5, batch, 83);
  CHECK(sparse.backward(dy, ctx_s).isApprox(dense.backward(dy, ctx_d), 1e-12));
  const ParameterList<double> ps = sparse.parameters(), pd = dense.parameters();
  for (std::size_t k = 0; k < ps.size(); ++k)
    if (ps[k]->trainable) CHECK(ps[k]->grad.isApprox(pd[k]->grad, 1e-12));
  // The gate saw dL/dh at closed gates too: its estimate differs from the one with zeros sent there.
  GatedLayer<Gater> skipping(Gater(gater_linear, DoubleCv<double>(5)), expert);
  skipping.set_skip_closed_gates_in_training(true);
  Generator rng_k(11);
  Context<double> ctx_k(Mode::train, rng_k);
  ctx_k.set_samples(samples);
  skipping.forward(x, ctx_k);
  ctx_k.example_loss = loss;
  skipping.backward(dy, ctx_k);
  CHECK_FALSE(skipping.parameters()[0]->grad.isApprox(ps[0]->grad, 1e-6));
  Context<double> eval(Mode::eval);
  sparse.forward(x, eval);
  CHECK_FALSE(sparse.last_forward_dense());  // evaluation skips closed experts
}

namespace {

/// The total variance sum_k Var(g_k) of one estimate of every parameter's gradient of ExactBinaryNetwork,
/// measured in `groups` independent groups of `per_group` estimates: the mean over the groups and its
/// standard error (from the spread of the groups' values).
template <class GateT>
std::pair<double, double> total_variance(GateT gate, std::uint64_t seed, Index samples, int groups, int per_group) {
  test::ExactBinaryNetwork net;
  Generator rng(seed);
  double sum = 0, sum_square = 0;
  for (int group = 0; group < groups; ++group) {
    test::EstimateMoments m;
    for (int k = 0; k < per_group; ++k) m.add(net.step(gate, rng, samples, false));
    const double v = m.variance().sum();
    sum += v;
    sum_square += v * v;
  }
  const double n = groups, mean = sum / n;
  return {mean, std::sqrt((sum_square / n - mean * mean) * n / (n - 1) / n)};
}

}  // namespace

TEST_CASE("DoubleCv has a lower variance than ReinforceLoo at the same K (measured, > 5 standard errors)",
          "[gates][statistics]") {
  for (const Index samples : {Index(2), Index(4)}) {
    const auto loo = total_variance(ReinforceLoo<double>(test::ExactBinaryNetwork::kUnits), 7300, samples, 20, 2000);
    const auto taylor = total_variance(fixed_alpha(test::ExactBinaryNetwork::kUnits, -1.0), 7301, samples, 20, 2000);
    const auto adaptive = total_variance(DoubleCv<double>(test::ExactBinaryNetwork::kUnits), 7302, samples, 20, 2000);
    std::printf("K = %ld: total variance ReinforceLoo %.5f +- %.5f, DoubleCv alpha = -1 %.5f +- %.5f, adaptive %.5f +- %.5f\n",
                static_cast<long>(samples), loo.first, loo.second, taylor.first, taylor.second, adaptive.first,
                adaptive.second);
    for (const auto& cv : {taylor, adaptive}) {
      CHECK(cv.first < loo.first);
      CHECK(loo.first - cv.first > 5 * std::sqrt(loo.second * loo.second + cv.second * cv.second));
    }
  }
}
