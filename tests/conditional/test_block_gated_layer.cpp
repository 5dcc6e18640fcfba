// GatedLayer with block gates (a gate per k consecutive expert units, y_i = h_{floor(i/k)} H_i): both paths
// against the dense computation written out, for every gate family; finite differences; SBN's unbiasedness
// by exact enumeration over the gate vectors of a tiny block-gated network; bad input.
#include <cmath>
#include <cstdio>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/tanh.hpp"

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

template <class T, bool Needs, bool Closed>
using MaskGater = Sequential<Linear<T>, test::MaskGate<T, Needs, Closed>>;

template <class T, bool Needs, bool Closed>
GatedLayer<MaskGater<T, Needs, Closed>> mask_layer(Index in, Index units, Index k, const Matrix<T>& mask,
                                                   ExpertPath path) {
  Generator rng(31);
  Linear<T> gate_input(in, units / k, rng, "gater");
  Linear<T> expert(in, units, rng);
  expert.bias().value = test::random_matrix<T>(units, 1, 5);
  GatedLayer<MaskGater<T, Needs, Closed>> layer(
      MaskGater<T, Needs, Closed>(gate_input, test::MaskGate<T, Needs, Closed>(units / k, mask)), expert, k);
  layer.set_path(path);
  return layer;
}

/// h expanded to the expert's units: row i is h's row i / k.
template <class T>
Matrix<T> expand(const Matrix<T>& h, Index k) {
  Matrix<T> out(h.rows() * k, h.cols());
  for (Index i = 0; i < out.rows(); ++i) out.row(i) = h.row(i / k);
  return out;
}

/// dL/dh_j = sum over block j of dy_i H_i, for every gate.
template <class T>
Matrix<T> block_sums(const Matrix<T>& m, Index k) {
  Matrix<T> out = Matrix<T>::Zero(m.rows() / k, m.cols());
  for (Index i = 0; i < m.rows(); ++i) out.row(i / k) += m.row(i);
  return out;
}

struct Shape {
  Index in, units, k, batch;
};
constexpr Shape kShapes[] = {{37, 48, 16, 1}, {37, 48, 16, 33}, {37, 21, 3, 1}, {37, 21, 3, 33}};
constexpr double kDensities[] = {0.0, 0.1, 0.5, 1.0};

/// One gate-trait combination, both paths, every shape and density, against the definition.
template <class T, bool Needs, bool Closed>
void check_against_definition(double tolerance) {
  std::uint64_t seed = 1000 + 10 * Needs + Closed;
  for (const Shape& s : kShapes)
    for (const double density : kDensities)
      for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse, ExpertPath::automatic}) {
        CAPTURE(s.in, s.units, s.k, s.batch, density, static_cast<int>(path));
        const Matrix<T> mask = test::exact_mask<T>(s.units / s.k, s.batch, density, ++seed);
        const Matrix<T> x = test::random_matrix<T>(s.in, s.batch, ++seed);
        const Matrix<T> dy = test::random_matrix<T>(s.units, s.batch, ++seed);
        auto layer = mask_layer<T, Needs, Closed>(s.in, s.units, s.k, mask, path);
        REQUIRE(layer.block() == s.k);
        Generator rng(1);
        Context<T> ctx(Mode::train, rng);
        const Matrix<T> y = layer.forward(x, ctx);
        const Matrix<T> dx = layer.backward(dy, ctx);
        CHECK(layer.last_batch_sparse() == (path == ExpertPath::sparse || (path == ExpertPath::automatic &&
                                                                            density <= layer.crossover())));
        CHECK(layer.last_forward_dense() == (!layer.last_batch_sparse() || (Needs && Closed)));
        CHECK(layer.density() == Approx(density).margin(0.5 / static_cast<double>(mask.size())));

        // The definition with plain Eigen (W stored transposed): y_i = h_{i/k} (W x + b)_i.
        const Matrix<T>& wt = layer.expert_weight().value;
        const Matrix<T> H = (wt.transpose() * x).colwise() + layer.expert_bias().value.col(0);
        const auto& gate_input = layer.gater().template get<0>();
        const Matrix<T> h = mask.cwiseProduct((gate_input.weight().value * x).colwise() + gate_input.bias().value.col(0));
        const Matrix<T> hx = expand(h, s.k);
        CHECK(test::relative_error(y, Matrix<T>(hx.cwiseProduct(H))) <= tolerance);
        if (s.k == 16 || density == 0.0) CHECK((y.array() != T(0)).count() <= s.k * (mask.array() != T(0)).count());

        const Matrix<T> dH = hx.cwiseProduct(dy);
        CHECK(test::relative_error(layer.expert_weight().grad, Matrix<T>(x * dH.transpose())) <= tolerance);
        CHECK(test::relative_error(layer.expert_bias().grad, Matrix<T>(dH.rowwise().sum())) <= tolerance);
        Matrix<T> dh = block_sums(Matrix<T>(dy.cwiseProduct(H)), s.k);
        if (!Needs) dh.setZero();
        else if (!Closed) dh = (mask.array() != T(0)).select(dh, T(0));
        CHECK(test::relative_error(layer.gater().last().received(), dh) <= tolerance);
        const Matrix<T> da = mask.cwiseProduct(dh);
        CHECK(test::relative_error(gate_input.weight().grad, Matrix<T>(da * x.transpose())) <= tolerance);
        const Matrix<T> dx_expected = wt * dH + gate_input.weight().value.transpose() * da;
        CHECK(test::relative_error(dx, dx_expected) <= tolerance);

        // Evaluation skips for every gate: the sparse path never computes the dense expert there.
        Context<T> eval(Mode::eval, rng);
        const Matrix<T> y_eval = layer.forward(x, eval);
        CHECK(test::relative_error(y_eval, Matrix<T>(hx.cwiseProduct(H))) <= tolerance);
        CHECK(layer.last_forward_dense() == !layer.last_batch_sparse());
      }
}

}  // namespace

TEMPLATE_TEST_CASE("block GatedLayer: both paths equal the dense computation written out, forward and backward",
                   "[gated_layer][blocks]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  SECTION("a gate that takes dL/dh at open gates (noisy rectifier, STS)") { check_against_definition<T, true, false>(tolerance); }
  SECTION("a gate that ignores dL/dh (SBN)") { check_against_definition<T, false, false>(tolerance); }
  SECTION("a gate that takes dL/dh at closed gates too (straight-through)") {
    check_against_definition<T, true, true>(tolerance);
  }
}

TEST_CASE("block GatedLayer with k = 1 is the unit layer, to the bit", "[gated_layer][blocks]") {
  const Matrix<float> mask = test::exact_mask<float>(21, 9, 0.2, 3);
  const Matrix<float> x = test::random_matrix<float>(37, 9, 4), dy = test::random_matrix<float>(21, 9, 5);
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse}) {
    auto blocks = mask_layer<float, true, false>(37, 21, 1, mask, path);
    Generator rng(31);  // the draws of mask_layer, in its order
    Linear<float> gate_input(37, 21, rng, "gater");
    Linear<float> expert(37, 21, rng);
    GatedLayer units(MaskGater<float, true, false>(gate_input, test::MaskGate<float, true, false>(21, mask)), expert);
    units.expert_bias().value = test::random_matrix<float>(21, 1, 5);
    units.set_path(path);
    Generator r(1);
    Context<float> ctx(Mode::train, r);
    CHECK(blocks.forward(x, ctx) == units.forward(x, ctx));
    CHECK(blocks.backward(dy, ctx) == units.backward(dy, ctx));
    CHECK(blocks.expert_weight().grad == units.expert_weight().grad);
  }
}

namespace {

/// The gater of the real gates: in -> 6 tanh -> blocks, then the gate.
template <class Gate>
using RealGater = Sequential<Linear<double>, Tanh<double>, Linear<double>, Gate>;

template <class MakeGate>
auto real_layer(Index in, Index units, Index k, MakeGate make_gate, ExpertPath path) {
  using Gate = decltype(make_gate(Index(1)));
  Generator rng(41);
  Linear<double> first(in, 6, rng, "g1");  // the draws in a fixed order (not that of function arguments)
  Linear<double> second(6, units / k, rng, "g2");
  RealGater<Gate> gater(first, Tanh<double>(6), second, make_gate(units / k));
  gater.template get<2>().bias().value.setConstant(0.3);
  Linear<double> expert(in, units, rng);
  expert.bias().value = test::random_matrix<double>(units, 1, 7);
  GatedLayer<RealGater<Gate>> layer(std::move(gater), expert, k);
  layer.set_path(path);
  return layer;
}

/// Dense and sparse paths of the same layer and seed: the same draws, so the same gates; outputs and every
/// gradient agree to rounding, and the sparse one is checked against the definition with the gates it drew.
template <class MakeGate>
void check_paths_agree(MakeGate gate) {
  using Gate = decltype(gate(Index(1)));
  std::uint64_t seed = 300;
  for (const Shape& s : kShapes) {
    CAPTURE(s.in, s.units, s.k, s.batch);
    const Matrix<double> x = test::random_matrix<double>(s.in, s.batch, ++seed);
    const Matrix<double> dy = test::random_matrix<double>(s.units, s.batch, ++seed);
    auto dense = real_layer(s.in, s.units, s.k, gate, ExpertPath::dense);
    auto sparse = real_layer(s.in, s.units, s.k, gate, ExpertPath::sparse);
    Matrix<double> y[2], dx[2];
    int which = 0;
    for (auto* layer : {&dense, &sparse}) {
      Generator rng(77);
      Context<double> ctx(Mode::train, rng);
      y[which] = layer->forward(x, ctx);
      ctx.example_loss = test::random_matrix<double>(1, s.batch, 8);  // SBN reads it; the others ignore it
      dx[which] = layer->backward(dy, ctx);
      ++which;
    }
    REQUIRE(sparse.last_batch_sparse());
    REQUIRE_FALSE(dense.last_batch_sparse());
    CHECK(sparse.last_forward_dense() == !skips_in_training<Gate>);
    CHECK(sparse.density() == dense.density());
    CHECK(test::relative_error(y[1], y[0]) <= 1e-12);
    CHECK(test::relative_error(dx[1], dx[0]) <= 1e-12);
    const ParameterList<double> a = dense.parameters(), b = sparse.parameters();
    REQUIRE(a.size() == b.size());
    for (std::size_t p = 0; p < a.size(); ++p) {
      CAPTURE(a[p]->name);
      CHECK(test::relative_error(b[p]->grad, a[p]->grad) <= 1e-12);
      CHECK(test::relative_error(b[p]->value, a[p]->value) <= 1e-12);  // state the gates update (offsets)
    }
    // The gates drawn (the gater draws first from the context, so a fresh copy draws the same): y = h
    // expanded ⊙ (W x + b).
    auto fresh = real_layer(s.in, s.units, s.k, gate, ExpertPath::sparse);
    Generator rng(77);
    Context<double> ctx(Mode::train, rng);
    const Matrix<double> h = fresh.gater().forward(x, ctx);
    const Matrix<double> H = (sparse.expert_weight().value.transpose() * x).colwise() + sparse.expert_bias().value.col(0);
    CHECK(test::relative_error(y[1], Matrix<double>(expand(h, s.k).cwiseProduct(H))) <= 1e-12);
    CHECK(sparse.density() > 0.0);
  }
}

}  // namespace

TEST_CASE("block GatedLayer: dense and sparse paths agree for every gate family", "[gated_layer][blocks]") {
  SECTION("StraightThrough") {
    check_paths_agree([](Index n) { return StraightThrough<double>(n); });
  }
  SECTION("StochasticBinary") {
    check_paths_agree([](Index n) { return StochasticBinary<double>(n); });
  }
  SECTION("NoisyRectifier") {
    check_paths_agree([](Index n) { return NoisyRectifier<double>(n); });
  }
  SECTION("StochasticTimesSmooth") {
    check_paths_agree([](Index n) { return StochasticTimesSmooth<double>(n); });
  }
}
