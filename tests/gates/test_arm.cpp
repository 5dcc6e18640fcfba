// Arm and DisArm on antithetic pairs. The sign convention of both estimators is derived by exact
// integration: with one shared uniform per unit, u_j falls in one of three intervals, [0, min(p, 1 - p)),
// [min, max), [max, 1), on each of which (b_j, b~_j) is constant; summing over the 3^n interval vectors
// gives each estimator's exact mean and variance, compared with the exact gradient of the expected loss
// (enumeration over 2^n binary vectors). Then the gates are checked against that: unbiased for every
// parameter of a small network (5 standard errors), DisARM's variance below ARM's per unit (exact and
// measured on paired samples), the formulas, the antithetic uniforms, the bad inputs.
#include <array>
#include <cmath>
#include <cstdio>

#include "exact_binary_network.hpp"
#include "stoch/gates/arm.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/multi_sample_gate_checks.hpp"

using namespace stoch;

static_assert(Gate<Arm<float>> && Gate<Arm<double>> && Gate<DisArm<float>> && Gate<DisArm<double>>);
static_assert(!Arm<double>::needs_output_gradient && skips_in_training<Arm<double>>);
static_assert(!DisArm<double>::needs_output_gradient && skips_in_training<DisArm<double>>);

namespace {

/// One example's loss f(h) of n binary units (the decoder of ExactBinaryNetwork for one label), and the
/// exact mean and variance per unit of the ARM and DisARM estimates of dE[f]/da at pre-activations a.
struct PairExact {
  test::ExactBinaryNetwork net;
  int label = 1;
  static constexpr Index n = test::ExactBinaryNetwork::kUnits;

  double f(const Vector<double>& h) const { return net.loss_at(h, label); }

  /// d E[f] / d a_i = p_i (1 - p_i) (E[f | h_i = 1] - E[f | h_i = 0]) (Eq. 5), by enumeration of 2^n states.
  Vector<double> gradient(const Vector<double>& a) const {
    const Vector<double> p = a.unaryExpr([](double v) { return sigmoid(v); });
    Vector<double> g = Vector<double>::Zero(n);
    test::for_each_binary_vector(p, [&](const Vector<double>& h, double probability) {
      g += probability * f(h) * (h - p);  // d P(h) / d a_i = P(h) (h_i - p_i)
    });
    return g;
  }

  struct Moments {
    Vector<double> arm_mean, arm_variance, disarm_mean, disarm_variance;
  };

  /// Exact moments by integration over u in [0, 1)^n, split into 3^n boxes where (b, b~) is constant.
  Moments moments(const Vector<double>& a) const {
    const Vector<double> p = a.unaryExpr([](double v) { return sigmoid(v); });
    Moments m{Vector<double>::Zero(n), Vector<double>::Zero(n), Vector<double>::Zero(n), Vector<double>::Zero(n)};
    Vector<double> arm_square = Vector<double>::Zero(n), disarm_square = Vector<double>::Zero(n);
    int boxes = 1;
    for (Index i = 0; i < n; ++i) boxes *= 3;
    for (int box = 0; box < boxes; ++box) {
      Vector<double> b(n), bt(n), first(n), second(n);  // E[u - 1/2 | box], E[(u - 1/2)^2 | box]
      double probability = 1;
      int code = box;
      for (Index i = 0; i < n; ++i, code /= 3) {
        const double lo = std::min(p[i], 1 - p[i]), hi = std::max(p[i], 1 - p[i]);
        const int r = code % 3;
        const double left = r == 0 ? 0.0 : r == 1 ? lo : hi, right = r == 0 ? lo : r == 1 ? hi : 1.0;
        // b = 1[u < p], b~ = 1[1 - u < p] = 1[u > 1 - p]: (1, 0) below lo, (0, 1) above hi, and between
        // them both 1 if p > 1/2, both 0 otherwise.
        b[i] = r == 0 ? 1 : r == 2 ? 0 : (p[i] > 0.5 ? 1 : 0);
        bt[i] = r == 0 ? 0 : r == 2 ? 1 : (p[i] > 0.5 ? 1 : 0);
        probability *= right - left;
        const double l = left - 0.5, rr = right - 0.5;
        first[i] = right > left ? (l + rr) / 2 : 0.0;
        second[i] = right > left ? (rr * rr * rr - l * l * l) / (3 * (right - left)) : 0.0;
      }
      if (probability == 0) continue;
      const double fb = f(b), fbt = f(bt);
      for (Index i = 0; i < n; ++i) {
        // ARM: (f~ - f)(u_i - 1/2); DisARM: 1/2 (f - f~) 1[b_i != b~_i] (-1)^{b~_i} sigm(|a_i|).
        m.arm_mean[i] += probability * (fbt - fb) * first[i];
        arm_square[i] += probability * (fbt - fb) * (fbt - fb) * second[i];
        const double dis = 0.5 * (fb - fbt) * (b[i] - bt[i]) * std::max(p[i], 1 - p[i]);
        m.disarm_mean[i] += probability * dis;
        disarm_square[i] += probability * dis * dis;
      }
    }
    m.arm_variance = arm_square - m.arm_mean.cwiseAbs2();
    m.disarm_variance = disarm_square - m.disarm_mean.cwiseAbs2();
    return m;
  }
};

const std::array<std::array<double, 4>, 3> kPreActivations{{{-2.0, -0.5, 1.2, 0.1}, {0.3, 3.5, -4.0, 0.0},
                                                             {1.0, 1.0, -1.0, 2.5}}};

Vector<double> to_vector(const std::array<double, 4>& a) { return Eigen::Map<const Vector<double>>(a.data(), 4); }

/// `draws` estimates per unit of one pair at pre-activations a, from the gate's backward: batch 2E with
/// every example at a, so each of the E pairs is an independent estimate g = B dL/da (column e).
template <class GateT>
Matrix<double> gate_estimates(GateT& gate, const PairExact& exact, const Vector<double>& a, Generator& rng,
                              Index examples) {
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(2, true);
  const Matrix<double> input = a.replicate(1, 2 * examples);
  const Matrix<double>& h = gate.forward(input, ctx);
  ctx.example_loss.resize(2 * examples);
  for (Index c = 0; c < 2 * examples; ++c) ctx.example_loss[c] = exact.f(h.col(c));
  const Matrix<double> da = gate.backward(Matrix<double>(), ctx);
  CHECK(da.leftCols(examples) == da.rightCols(examples));  // the pair's two columns carry the same share
  return da.leftCols(examples) * static_cast<double>(2 * examples);
}

}  // namespace

TEST_CASE("ARM and DisARM as written are unbiased: exact integration over the shared uniforms", "[gates]") {
  const PairExact exact;
  for (const auto& values : kPreActivations) {
    const Vector<double> a = to_vector(values);
    const Vector<double> gradient = exact.gradient(a);
    const PairExact::Moments m = exact.moments(a);
    CHECK((m.arm_mean - gradient).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((m.disarm_mean - gradient).cwiseAbs().maxCoeff() < 1e-12);
    // The opposite sign convention, (f - f~)(u - 1/2), would estimate minus the gradient.
    CHECK(gradient.cwiseAbs().minCoeff() > 1e-4);
    // The published inequality (DisARM = E[ARM | b, b~], so never worse per unit) holds at every unit.
    for (Index i = 0; i < PairExact::n; ++i) {
      INFO("a = " << a.transpose() << ", unit " << i);
      CHECK(m.disarm_variance[i] <= m.arm_variance[i] + 1e-15);
    }
  }
}

TEST_CASE("Arm and DisArm are unbiased for every parameter (exact enumeration, 5 standard errors)",
          "[gates][statistics]") {
  test::check_unbiased(Arm<double>(test::ExactBinaryNetwork::kUnits), 5001, 2, true, "Arm");
  test::check_unbiased(DisArm<double>(test::ExactBinaryNetwork::kUnits), 5002, 2, true, "DisArm");
}

TEST_CASE("DisArm's variance is at most Arm's per unit: the gates' estimates match the exact moments",
          "[gates][statistics]") {
  const PairExact exact;
  for (std::size_t s = 0; s < kPreActivations.size(); ++s) {
    const Vector<double> a = to_vector(kPreActivations[s]);
    const PairExact::Moments m = exact.moments(a);
    Arm<double> arm(PairExact::n);
    DisArm<double> disarm(PairExact::n);
    Generator rng_arm(600 + s), rng_disarm(600 + s);  // same seed: the same uniforms, the same pairs
    test::EstimateMoments g_arm, g_disarm, gap;
    for (int batch = 0; batch < 50; ++batch) {
      const Matrix<double> ea = gate_estimates(arm, exact, a, rng_arm, 1000);
      const Matrix<double> ed = gate_estimates(disarm, exact, a, rng_disarm, 1000);
      REQUIRE(arm.uniforms() == disarm.uniforms());
      for (Index e = 0; e < ea.cols(); ++e) {
        g_arm.add(ea.col(e));
        g_disarm.add(ed.col(e));
        gap.add((ea.col(e).cwiseAbs2() - ed.col(e).cwiseAbs2()).eval());  // paired: E[gap] = Var ARM - Var DisARM
      }
    }
    const Vector<double> exact_gradient = exact.gradient(a);
    for (Index i = 0; i < PairExact::n; ++i) {
      const double exact_gap = m.arm_variance[i] - m.disarm_variance[i];
      std::printf("a = %+.2f unit %ld: variance ARM %.5f (exact %.5f), DisARM %.5f (exact %.5f), gap %.5f (se %.5f, "
                  "exact %.5f)\n",
                  a[i], static_cast<long>(i), g_arm.variance()[i], m.arm_variance[i], g_disarm.variance()[i],
                  m.disarm_variance[i], gap.mean()[i], gap.standard_error()[i], exact_gap);
      INFO("a = " << a.transpose() << ", unit " << i);
      CHECK(std::abs(g_arm.mean()[i] - exact_gradient[i]) < 5 * g_arm.standard_error()[i]);
      CHECK(std::abs(g_disarm.mean()[i] - exact_gradient[i]) < 5 * g_disarm.standard_error()[i]);
      CHECK(std::abs(gap.mean()[i] - exact_gap) < 5 * gap.standard_error()[i]);
      // Where the exact gap is resolvable, the measured one shows it.
      if (exact_gap > 10 * gap.standard_error()[i]) CHECK(gap.mean()[i] > 5 * gap.standard_error()[i]);
      CHECK(gap.mean()[i] > -5 * gap.standard_error()[i]);
    }
  }
}

TEMPLATE_TEST_CASE("Arm and DisArm backward: the formulas, the pair's shared value, dL/dh ignored", "[gates]", float,
                   double) {
  using T = TestType;
  const Index units = 5, examples = 3, batch = 2 * examples;
  const Matrix<T> a = tile_samples(test::random_matrix<T>(units, examples, 91), 2);
  const RowVector<T> loss = test::random_matrix<T>(1, batch, 92);
  Arm<T> arm(units);
  DisArm<T> disarm(units);
  Generator rng_arm(4), rng_disarm(4);
  Context<T> ctx_arm(Mode::train, rng_arm), ctx_disarm(Mode::train, rng_disarm);
  ctx_arm.set_samples(2, true);
  ctx_disarm.set_samples(2, true);
  const Matrix<T> h = arm.forward(a, ctx_arm);
  CHECK(Matrix<T>(disarm.forward(a, ctx_disarm)) == h);
  const Matrix<T>& u = arm.uniforms();
  CHECK(h == (u.array() < a.array().logistic()).template cast<T>().matrix());
  REQUIRE_THROWS_MESSAGE(arm.backward(Matrix<T>(), ctx_arm), "Arm::backward ('arm'): needs the per-example loss");
  ctx_arm.example_loss = loss;
  ctx_disarm.example_loss = loss;
  const Matrix<T> da_arm = arm.backward(Matrix<T>(), ctx_arm);
  const Matrix<T> da_disarm = disarm.backward(Matrix<T>(), ctx_disarm);
  for (Index e = 0; e < examples; ++e)
    for (Index i = 0; i < units; ++i) {
      const T f = loss[e], ft = loss[examples + e], p = T(1) / (T(1) + std::exp(-a(i, e)));
      const T b = h(i, e), bt = h(i, examples + e);
      const T arm_g = (ft - f) * (u(i, e) - T(0.5));
      const T disarm_g = b != bt ? T(0.5) * (f - ft) * (bt > 0 ? T(-1) : T(1)) * std::max(p, T(1) - p) : T(0);
      for (const Index c : {e, examples + e}) {
        CHECK(da_arm(i, c) == Approx(arm_g / T(batch)).margin(1e-6));
        CHECK(da_disarm(i, c) == Approx(disarm_g / T(batch)).margin(1e-6));
      }
      // Read from the partner (u' = 1 - u, the losses swapped) ARM gives the same value.
      CHECK((f - ft) * (u(i, examples + e) - T(0.5)) == Approx(arm_g).margin(1e-6));
    }
  CHECK(Matrix<T>(arm.backward(test::random_matrix<T>(units, batch, 93), ctx_arm)) == da_arm);
  CHECK(Matrix<T>(disarm.backward(test::random_matrix<T>(units, batch, 94), ctx_disarm)) == da_disarm);
  REQUIRE_THROWS_MESSAGE(arm.backward(Matrix<T>::Zero(2, batch), ctx_arm), "shape mismatch");
  ctx_disarm.example_loss[0] = std::numeric_limits<T>::infinity();
  REQUIRE_THROWS_MESSAGE(disarm.backward(Matrix<T>(), ctx_disarm),
                         "DisArm::backward ('disarm'): the per-example loss is not finite");
}

TEMPLATE_TEST_CASE("Antithetic uniforms: sample 1's are exactly 1 - u of sample 0's, from one draw", "[gates]", float,
                   double) {
  using T = TestType;
  const Index units = 7, examples = 50;
  Arm<T> gate(units);
  Generator rng(77);
  Context<T> ctx(Mode::train, rng);
  ctx.set_samples(2, true);
  gate.forward(Matrix<T>::Zero(units, 2 * examples), ctx);
  const Matrix<T>& u = gate.uniforms();
  CHECK((u.rightCols(examples).array() == T(1) - u.leftCols(examples).array()).all());
  CHECK((u.rightCols(examples).array() + u.leftCols(examples).array() == T(1)).all());
  CHECK(((u.array() > T(0)) && (u.array() < T(1))).all());
  // One draw: the first block is fill_uniform's words for units x examples, and only those are consumed.
  Generator reference(77);
  Matrix<T> first(units, examples);
  fill_uniform<T>(reference, first);
  CHECK(u.leftCols(examples) == first);
  CHECK(rng.position() == reference.position());
}

TEST_CASE("Arm and DisArm refuse K < 2, missing pairs, odd batches, and pairs with different pre-activations",
          "[gates]") {
  Arm<double> arm(3);
  DisArm<double> disarm(3);
  test::check_forward_refused(arm, 1, false, 4,
                              "Arm::forward ('arm'): needs antithetic pairs (Context::samples == 2 and "
                              "Context::antithetic, e.g. ctx.set_samples(2, true)); have samples = 1, "
                              "antithetic = false");
  test::check_forward_refused(disarm, 2, false, 4,
                              "DisArm::forward ('disarm'): needs antithetic pairs (Context::samples == 2 and "
                              "Context::antithetic, e.g. ctx.set_samples(2, true)); have samples = 2, "
                              "antithetic = false");
  test::check_forward_refused(arm, 2, true, 5,
                              "Arm::forward ('arm'): a batch of 5 columns is not a multiple of Context::samples = 2");
  test::check_forward_refused(disarm, 4, true, 8,
                              "DisArm::forward ('disarm'): antithetic pairs need Context::samples == 2, got 4");
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  ctx.set_samples(2, true);
  Matrix<double> a = Matrix<double>::Zero(3, 4);
  a(1, 3) = 0.5;  // example 1's pair differs at unit 1 (a sampled layer below the gate would do this)
  REQUIRE_THROWS_MESSAGE(arm.forward(a, ctx), "Arm::forward ('arm'): the antithetic pair of example 1 has different "
                                              "pre-activations at unit 1");
  a(1, 3) = std::numeric_limits<double>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(disarm.forward(a, ctx), "non-finite");
  a(1, 3) = 1e-12;  // rounding-size differences pass
  arm.forward(a, ctx);
  REQUIRE_THROWS_MESSAGE(arm.backward(Matrix<double>(), ctx), "Arm::backward ('arm'): needs the per-example loss");
  ctx.example_loss = RowVector<double>::Ones(4);
  ctx.antithetic = false;
  REQUIRE_THROWS_MESSAGE(arm.backward(Matrix<double>(), ctx), "Arm::backward ('arm'): Context::samples and "
                                                              "Context::antithetic changed since the forward");
}

TEST_CASE("Arm and DisArm evaluate h = 1[p > t] without a generator or a layout; state is the threshold", "[gates]") {
  const Matrix<double> a = test::random_matrix<double>(4, 5, 95);  // odd batch: evaluation pairs nothing
  DisArm<double> gate(4);
  Context<double> eval(Mode::eval);
  test::check_threshold_evaluation(gate, a, eval, 0.6, "disarm.threshold");
  CHECK(Arm<double>(2).parameters()[0]->name == "arm.threshold");
}

TEST_CASE("DisArm gates an expert: closed experts are skipped in training, on both expert paths", "[gates]") {
  test::check_gates_expert_on_both_paths<DisArm<double>>(4, 2, true, 12, 96);
}
