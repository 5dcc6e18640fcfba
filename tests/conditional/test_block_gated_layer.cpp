// GatedLayer with block gates (a gate per k consecutive expert units, y_i = h_{floor(i/k)} H_i): both paths
// against the dense computation written out, for every gate family; finite differences; SBN's unbiasedness
// by exact enumeration over the gate vectors of a tiny block-gated network; bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <type_traits>
#include <vector>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"

#include "conditional/gated_gradient_check.hpp"
#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/threads.hpp"

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

        // The definition with plain Eigen: y_i = h_{i/k} (W x + b)_i.
        const Matrix<T> w = layer.dense_expert_weight();
        REQUIRE(w.rows() == s.units);
        const Matrix<T> H = (w * x).colwise() + layer.expert_bias().value.col(0);
        const auto& gate_input = layer.gater().template get<0>();
        const Matrix<T> h = mask.cwiseProduct((gate_input.weight().value * x).colwise() + gate_input.bias().value.col(0));
        const Matrix<T> hx = expand(h, s.k);
        CHECK(test::relative_error(y, Matrix<T>(hx.cwiseProduct(H))) <= tolerance);
        if (s.k == 16 || density == 0.0) CHECK((y.array() != T(0)).count() <= s.k * (mask.array() != T(0)).count());

        const Matrix<T> dH = hx.cwiseProduct(dy);
        CHECK(test::relative_error(layer.dense_expert_weight_gradient(), Matrix<T>(dH * x.transpose())) <= tolerance);
        CHECK(test::relative_error(layer.expert_bias().grad, Matrix<T>(dH.rowwise().sum())) <= tolerance);
        Matrix<T> dh = block_sums(Matrix<T>(dy.cwiseProduct(H)), s.k);
        if (!Needs) dh.setZero();
        else if (!Closed) dh = (mask.array() != T(0)).select(dh, T(0));
        CHECK(test::relative_error(layer.gater().last().received(), dh) <= tolerance);
        const Matrix<T> da = mask.cwiseProduct(dh);
        CHECK(test::relative_error(gate_input.weight().grad, Matrix<T>(da * x.transpose())) <= tolerance);
        const Matrix<T> dx_expected = w.transpose() * dH + gate_input.weight().value.transpose() * da;
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
    CHECK(blocks.dense_expert_weight_gradient() == units.dense_expert_weight_gradient());
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
    const Matrix<double> H = (sparse.dense_expert_weight() * x).colwise() + sparse.expert_bias().value.col(0);
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

TEST_CASE("block GatedLayer: gradients match central finite differences on both paths", "[gated_layer][blocks]") {
  using Gater = Sequential<Linear<double>, Tanh<double>, Linear<double>, test::SquaredRectifier<double>>;
  for (const auto& [units, k] : {std::pair<Index, Index>{9, 3}, std::pair<Index, Index>{16, 4}})
    for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse, ExpertPath::automatic}) {
      CAPTURE(units, k, static_cast<int>(path));
      Generator rng(8);
      Linear<double> first(7, 5, rng), second(5, units / k, rng), expert(7, units, rng);
      expert.bias().value = test::random_matrix<double>(units, 1, 3);
      GatedLayer layer(Gater(first, Tanh<double>(5), second, test::SquaredRectifier<double>(units / k)), expert, k);
      test::check_gated_gradients(layer, path, test::random_matrix<double>(7, 5, 2));
    }
}

TEST_CASE("block GatedLayer: without dL/dx, the parameter gradients are exactly the same", "[gated_layer][blocks]") {
  const Shape s{37, 48, 16, 33};
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse})
    for (const double density : {0.1, 1.0}) {
      CAPTURE(static_cast<int>(path), density);
      const Matrix<double> mask = test::exact_mask<double>(s.units / s.k, s.batch, density, 61);
      const Matrix<double> x = test::random_matrix<double>(s.in, s.batch, 62);
      const Matrix<double> dy = test::random_matrix<double>(s.units, s.batch, 63);
      auto with = mask_layer<double, true, false>(s.in, s.units, s.k, mask, path);
      auto without = mask_layer<double, true, false>(s.in, s.units, s.k, mask, path);
      without.set_input_gradient(false);
      Generator rng(1);
      Context<double> ctx(Mode::train, rng);
      with.forward(x, ctx);
      without.forward(x, ctx);
      CHECK(with.backward(dy, ctx).rows() == s.in);
      CHECK(without.backward(dy, ctx).size() == 0);
      const ParameterList<double> a = with.parameters(), b = without.parameters();
      for (std::size_t p = 0; p < a.size(); ++p) {
        CAPTURE(a[p]->name);
        CHECK(a[p]->grad == b[p]->grad);
      }
    }
}

TEST_CASE("block GatedLayer: the block layout holds the Linear's weights, and max-norm bounds every unit",
          "[gated_layer][blocks]") {
  const Index in = 9, units = 12, k = 4;
  const Matrix<float> mask = test::exact_mask<float>(units / k, 5, 0.5, 2);
  Generator rng(31);
  Linear<float> gate_input(in, units / k, rng, "gater");
  Linear<float> expert(in, units, rng);
  expert.weight().value *= 10.0f;  // every unit far above the bound
  GatedLayer layer(MaskGater<float, true, false>(gate_input, test::MaskGate<float, true, false>(units / k, mask)),
                   expert, k);
  CHECK(layer.dense_expert_weight() == expert.weight().value);
  CHECK(layer.expert_weight().value.rows() == k * in);
  CHECK(layer.expert_weight().value.cols() == units / k);
  CHECK(layer.expert_weight().fan_in == FanIn::blocks);
  set_max_norm<float>(layer.parameters(), 1.5f);
  Sgd<float> sgd(layer.parameters(), {.learning_rate = 0.1f});
  Context<float> ctx(Mode::train, rng);
  layer.forward(test::random_matrix<float>(in, 5, 3), ctx);
  layer.backward(test::random_matrix<float>(units, 5, 4), ctx);
  sgd.step();
  const Matrix<float> w = layer.dense_expert_weight();
  for (Index i = 0; i < units; ++i) CHECK(w.row(i).norm() == Approx(1.5).epsilon(1e-5));
}

TEST_CASE("GatedLayer and Sgd: a step touches only the open units or blocks, with the same values as a full step",
          "[gated_layer][blocks][sgd]") {
  const Index in = 11, units = 24, batch = 3;
  for (const Index k : {Index(1), Index(4)})
    for (const float momentum : {0.0f, 0.5f}) {
      CAPTURE(k, momentum);
      // 2 of 18 (k = 4) or 7 of 72 (k = 1) gates open: most units (blocks) closed in the whole batch.
      const Matrix<float> mask = test::exact_mask<float>(units / k, batch, k == 1 ? 0.1 : 0.12, 6);
      auto tracked = mask_layer<float, true, false>(in, units, k, mask, ExpertPath::sparse);
      auto full = mask_layer<float, true, false>(in, units, k, mask, ExpertPath::sparse);
      full.expert_weight().written_columns.clear();  // not kept: every column is stepped
      const Matrix<float> x = test::random_matrix<float>(in, batch, 7), dy = test::random_matrix<float>(units, batch, 8);
      Matrix<float> before;
      for (auto* layer : {&tracked, &full}) {
        set_max_norm<float>(layer->parameters(), 1.0f);
        Generator rng(1);
        Context<float> ctx(Mode::train, rng);
        Sgd<float> sgd(layer->parameters(), {.learning_rate = 0.5f, .momentum = momentum});
        // The first step after construction updates every column (max-norm then holds for every unit) ...
        layer->forward(x, ctx);
        layer->backward(dy, ctx);
        sgd.step();
        // ... the next ones only those written.
        if (layer == &tracked) before = tracked.expert_weight().value;
        layer->forward(x, ctx);
        layer->backward(dy, ctx);
        if (layer == &tracked) {
          const auto& flags = tracked.expert_weight().written_columns;
          REQUIRE(static_cast<Index>(flags.size()) == units / k);
          for (Index c = 0; c < units / k; ++c)
            CHECK((flags[static_cast<std::size_t>(c)] != 0) == (mask.row(c).array() != 0.0f).any());
        }
        sgd.step();
      }
      CHECK(tracked.expert_weight().value == full.expert_weight().value);
      CHECK(tracked.expert_weight().grad.isZero(0));
      // The closed columns kept their values, bit for bit; the open ones moved.
      for (Index c = 0; c < units / k; ++c) {
        const bool open = (mask.row(c).array() != 0.0f).any();
        CHECK((tracked.expert_weight().value.col(c) == before.col(c)) == !open);
      }
      CHECK(std::none_of(tracked.expert_weight().written_columns.begin(), tracked.expert_weight().written_columns.end(),
                         [](std::uint8_t f) { return f != 0; }));
    }
}

namespace {

/// The expert's weights and biases after `steps` training steps of a layer with fixed masks (the same mask
/// and inputs every step), Sgd with or without its step fused into backward (Sgd::set_fused_steps).
struct Stepped {
  Matrix<float> weight, bias, gater;
  bool last_stepped = false, grad_zero = false;
};

Stepped train_masked(Index in, Index units, Index k, const Matrix<float>& mask, const Matrix<float>& x,
                     const Matrix<float>& dy, ExpertPath path, bool fused, bool max_norm, int steps) {
  auto layer = mask_layer<float, true, false>(in, units, k, mask, path);
  if (max_norm) set_max_norm<float>(layer.parameters(), 0.9f);
  Sgd<float> sgd(layer.parameters(), {.learning_rate = 0.3f});
  sgd.set_fused_steps(fused);
  Generator rng(1);
  Context<float> ctx(Mode::train, rng);
  Stepped out;
  for (int s = 0; s < steps; ++s) {
    layer.forward(x, ctx);
    layer.backward(dy, ctx);
    out.last_stepped = layer.expert_weight().stepped;
    out.grad_zero = layer.expert_weight().grad.isZero(0);
    sgd.step();
  }
  out.weight = layer.dense_expert_weight();
  out.bias = layer.expert_bias().value;
  out.gater = layer.gater().get<0>().weight().value;
  return out;
}

}  // namespace

TEST_CASE("GatedLayer and Sgd: the step fused into backward gives the bits of backward then step",
          "[gated_layer][blocks][sgd]") {
  // (in, units, k, batch, density): odd sizes (k = 3: no whole packet), and a shape whose block loop runs on
  // two threads (20 blocks of 16 x 300 weights, about 12 open examples each).
  struct Shape {
    Index in, units, k, batch;
    double density;
  };
  for (const Shape s : {Shape{11, 24, 4, 3, 0.3}, Shape{13, 21, 3, 5, 0.5}, Shape{300, 320, 16, 40, 0.3},
                        Shape{37, 64, 16, 1, 1.0}})
    for (const ExpertPath path : {ExpertPath::sparse, ExpertPath::dense})
    for (const bool sparse_input : {false, true})
      for (const bool max_norm : {false, true})
        for (const int count : {1, 2}) {
          CAPTURE(s.in, s.units, s.k, s.batch, path, sparse_input, max_norm, count);
          const test::ThreadCount threads(count);
          const Matrix<float> mask = test::exact_mask<float>(s.units / s.k, s.batch, s.density, 9);
          Matrix<float> x = test::random_matrix<float>(s.in, s.batch, 10);
          // Mostly zeros: the block kernels then read each example's non-zero inputs only.
          if (sparse_input) x = x.unaryExpr([](float v) { return v > 0.8f ? v : 0.0f; });
          const Matrix<float> dy = test::random_matrix<float>(s.units, s.batch, 11);
          // Three steps: the first after construction steps every column (never fused), the next two are fused.
          const Stepped plain = train_masked(s.in, s.units, s.k, mask, x, dy, path, false, max_norm, 3);
          const Stepped fused = train_masked(s.in, s.units, s.k, mask, x, dy, path, true, max_norm, 3);
          CHECK(fused.last_stepped);
          CHECK(fused.grad_zero);  // the weights' gradient never written
          CHECK_FALSE(plain.last_stepped);
          CHECK(fused.weight == plain.weight);
          CHECK(fused.bias == plain.bias);
          CHECK(fused.gater == plain.gater);
          CHECK(fused.weight != train_masked(s.in, s.units, s.k, mask, x, dy, path, true, max_norm, 1).weight);
        }
}

TEST_CASE("GatedLayer: the fused step falls back to backward then step where it cannot fuse, and refuses what "
          "is not finite", "[gated_layer][blocks][sgd]") {
  const Index in = 11, units = 24, k = 4, batch = 3;
  const Matrix<float> mask = test::exact_mask<float>(units / k, batch, 0.3, 9);
  const Matrix<float> x = test::random_matrix<float>(in, batch, 10), dy = test::random_matrix<float>(units, batch, 11);
  auto layer = mask_layer<float, true, false>(in, units, k, mask, ExpertPath::sparse);
  Sgd<float> sgd(layer.parameters(), {.learning_rate = 0.3f});
  sgd.set_fused_steps(true);
  Generator rng(1);
  Context<float> ctx(Mode::train, rng);
  auto step = [&](const Matrix<float>& gradient) {
    layer.forward(x, ctx);
    layer.backward(gradient, ctx);
    const bool stepped = layer.expert_weight().stepped;
    sgd.step();
    return stepped;
  };
  CHECK_FALSE(step(dy));  // the first step after construction: every column, by Sgd::step
  CHECK(step(dy));
  layer.expert_weight().weight_decay = 0.01f;  // the decay moves every weight: Sgd::step does it
  CHECK_FALSE(step(dy));
  layer.expert_weight().weight_decay = 0.0f;
  CHECK(step(dy));  // after a full step, every unit is within the max-norm bound: fused again
  layer.set_path(ExpertPath::dense);  // the dense path steps every block
  CHECK(step(dy));
  layer.set_path(ExpertPath::sparse);
  CHECK(step(dy));
  layer.forward(x, ctx);  // two backwards before a step: the first accumulates, the second cannot fuse
  sgd.set_fused_steps(false);
  layer.backward(dy, ctx);
  sgd.set_fused_steps(true);
  layer.backward(dy, ctx);
  CHECK_FALSE(layer.expert_weight().stepped);
  sgd.step();
  sgd.set_fused_steps(false);
  CHECK_FALSE(step(dy));
  sgd.set_fused_steps(true);
  CHECK(step(dy));

  // A NaN in the output gradient of the last open block's first unit.
  Index open = units / k - 1;
  while ((mask.row(open).array() == 0.0f).all()) --open;
  Matrix<float> bad = dy;
  bad.row(open * k).setConstant(std::numeric_limits<float>::quiet_NaN());
  const Matrix<float> before = layer.expert_weight().value;
  layer.forward(x, ctx);
  REQUIRE_THROWS_MESSAGE(layer.backward(bad, ctx), "GatedLayer::backward ('expert'): the Sgd step fused into "
                                                   "backward: the update of block " + std::to_string(open) + " is not finite");
  CHECK(layer.expert_weight().value.col(open) == before.col(open));
  CHECK(layer.expert_weight().value.allFinite());
}

TEST_CASE("block GatedLayer rejects a block size that does not fit, naming the layer", "[gated_layer][blocks]") {
  using Gater = Sequential<Linear<float>, test::MaskGate<float, true, false>>;
  const Matrix<float> mask = test::exact_mask<float>(7, 3, 0.5, 1);
  const Gater gater(Linear<float>(5, 7), test::MaskGate<float, true, false>(7, mask));
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(5, 21), 4, "wide"),
                         "GatedLayer ('wide'): the expert's 21 units are not a multiple of the block size 4");
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(5, 21), 0, "wide"), "block size must be at least 1, got 0");
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(5, 21), -2, "wide"), "block size must be at least 1, got -2");
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(5, 28), 2, "wide"),
                         "GatedLayer ('wide'): the gater maps 5 -> 7 features but blocks of 2 of the expert's 5 -> 28 "
                         "units need a gater mapping 5 -> 14");
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(6, 21), 3, "wide"), "need a gater mapping 6 -> 7");
  GatedLayer layer(gater, Linear<float>(5, 21), 3, "wide");
  CHECK(layer.block() == 3);
  CHECK(layer.output_size() == 21);
  Generator rng(1);
  Context<float> ctx(Mode::train, rng);
  layer.forward(Matrix<float>::Ones(5, 3), ctx);
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(7, 3), ctx), "expected 21 x 3");
}

namespace {

using SbnGater = Sequential<Linear<double>, StochasticBinary<double>>;
constexpr Index kSbnIn = 2, kSbnBlocks = 3, kSbnBlock = 2, kSbnUnits = kSbnBlocks * kSbnBlock;

/// A loss of the layer's output that couples the blocks: 0.5 |y - t|^2 + 0.5 (sum y)^2, and its gradient.
double coupled_loss(const Eigen::Ref<const Vector<double>>& y, const Vector<double>& target) {
  return 0.5 * (y - target).squaredNorm() + 0.5 * y.sum() * y.sum();
}
Vector<double> coupled_loss_gradient(const Eigen::Ref<const Vector<double>>& y, const Vector<double>& target) {
  return (y - target).array() + y.sum();
}

/// E[L] at the layer's current parameters, exactly: the sum over the 2^3 gate vectors h of
/// P(h) L(y(h)), P(h) = prod_j p_j^h_j (1 - p_j)^(1 - h_j), p = sigm(W_g x + b_g), y_i = h_{i/k} H_i.
double exact_expected_loss(GatedLayer<SbnGater>& layer, const Vector<double>& x, const Vector<double>& target) {
  const auto& gate_input = layer.gater().get<0>();
  const Vector<double> p = (gate_input.weight().value * x + gate_input.bias().value.col(0)).unaryExpr([](double a) {
    return sigmoid(a);
  });
  const Vector<double> H = layer.dense_expert_weight() * x + layer.expert_bias().value.col(0);
  double expected = 0;
  for (int state = 0; state < (1 << kSbnBlocks); ++state) {
    double probability = 1;
    Vector<double> y(kSbnUnits);
    for (Index j = 0; j < kSbnBlocks; ++j) {
      const bool open = (state >> j) & 1;
      probability *= open ? p[j] : 1 - p[j];
      y.segment(j * kSbnBlock, kSbnBlock) = open ? Vector<double>(H.segment(j * kSbnBlock, kSbnBlock))
                                                 : Vector<double>::Zero(kSbnBlock);
    }
    expected += probability * coupled_loss(y, target);
  }
  return expected;
}

}  // namespace

TEST_CASE("block GatedLayer with SBN gates: the gradient estimate is unbiased (exact enumeration)",
          "[gated_layer][blocks][statistics]") {
  const Vector<double> x0 = test::random_matrix<double>(kSbnIn, 1, 91).col(0);
  const Vector<double> target = test::random_matrix<double>(kSbnUnits, 1, 92).col(0);
  for (const ExpertPath path : {ExpertPath::sparse, ExpertPath::dense}) {
    CAPTURE(static_cast<int>(path));
    Generator init(93);
    Linear<double> gate_input(kSbnIn, kSbnBlocks, init, "g");
    Linear<double> expert(kSbnIn, kSbnUnits, init);
    gate_input.bias().value << 0.4, -0.6, 1.0;
    expert.bias().value = test::random_matrix<double>(kSbnUnits, 1, 94);
    GatedLayer layer(SbnGater(gate_input, StochasticBinary<double>(kSbnBlocks, {.baseline = SbnBaseline::none})),
                     expert, kSbnBlock);
    layer.set_path(path);
    ParameterList<double> parameters;
    for (Parameter<double>* p : layer.parameters())
      if (p->trainable) parameters.push_back(p);
    REQUIRE(parameters.size() == 4);  // the gater's W and b, the expert's W and b

    // The exact gradient of E[L]: central differences of the enumerated expectation.
    std::vector<double> exact;
    for (Parameter<double>* p : parameters)
      for (Index e = 0; e < p->value.size(); ++e) {
        const double saved = p->value.data()[e], eps = 1e-5;
        p->value.data()[e] = saved + eps;
        const double up = exact_expected_loss(layer, x0, target);
        p->value.data()[e] = saved - eps;
        const double down = exact_expected_loss(layer, x0, target);
        p->value.data()[e] = saved;
        exact.push_back((up - down) / (2 * eps));
      }

    // Batches of B copies of x0: each batch's gradient is the mean of B independent per-example estimates
    // (SBN's (h - p) L for the gater, the exact dL/dW given h for the expert).
    const Index batch = 500;
    const int batches = 200;
    const Matrix<double> x = x0.replicate(1, batch);
    std::vector<double> sum(exact.size(), 0.0), square(exact.size(), 0.0);
    Generator rng(95);
    Context<double> ctx(Mode::train, rng);
    double density = 0;
    for (int n = 0; n < batches; ++n) {
      for (Parameter<double>* p : parameters) p->grad.setZero();
      const Matrix<double> y = layer.forward(x, ctx);
      density += layer.density() / batches;
      Matrix<double> dy(kSbnUnits, batch);
      ctx.example_loss.resize(batch);
      for (Index b = 0; b < batch; ++b) {
        ctx.example_loss[b] = coupled_loss(y.col(b), target);
        dy.col(b) = coupled_loss_gradient(y.col(b), target) / static_cast<double>(batch);
      }
      layer.backward(dy, ctx);
      std::size_t e = 0;
      for (Parameter<double>* p : parameters)
        for (Index i = 0; i < p->grad.size(); ++i, ++e) {
          sum[e] += p->grad.data()[i];
          square[e] += p->grad.data()[i] * p->grad.data()[i];
        }
    }
    CHECK(layer.last_batch_sparse() == (path == ExpertPath::sparse));
    CHECK(density > 0.2);
    CHECK(density < 0.8);
    int resolved_gater = 0;
    for (std::size_t e = 0; e < exact.size(); ++e) {
      const double mean = sum[e] / batches;
      const double se = std::sqrt(std::max(0.0, square[e] / batches - mean * mean) / (batches - 1));
      CAPTURE(e, mean, exact[e], se);
      CHECK(std::abs(mean - exact[e]) < 5 * se);
      const bool gater_entry = e < static_cast<std::size_t>(kSbnBlocks * (kSbnIn + 1));
      if (gater_entry && std::abs(exact[e]) > 10 * se) ++resolved_gater;
    }
    std::printf("block SBN (path %d): %d of %d gater gradient entries resolved at 10 standard errors\n",
                static_cast<int>(path), resolved_gater, static_cast<int>(kSbnBlocks * (kSbnIn + 1)));
    CHECK(resolved_gater >= 3);  // the test can tell a wrong sign or a missing factor from the truth
  }
}

namespace {

template <class T>
using StackGater = Sequential<Linear<T>, Tanh<T>, Linear<T>, test::MaskGate<T, true, false>>;

/// An N -> N block-gated layer whose gater is N -> M tanh -> N / k gates (fixed masks); `skip_gater_zeros`
/// turns on the gater's first Linear's zero skipping (for a layer whose input is a gated layer's output).
template <class T>
GatedLayer<StackGater<T>> stack_layer(Index n, Index m, Index k, const Matrix<T>& mask, ExpertPath path,
                                      bool skip_gater_zeros, std::uint64_t seed, const std::string& name) {
  Generator rng(seed);
  Linear<T> first(n, m, rng, name + ".g1");
  Linear<T> second(m, n / k, rng, name + ".g2");
  second.bias().value.setConstant(T(0.5));
  Linear<T> expert(n, n, rng, name);
  expert.bias().value = test::random_matrix<T>(n, 1, seed + 1);
  if (skip_gater_zeros) first.set_zero_skipping(ZeroSkipping::always);
  GatedLayer<StackGater<T>> layer(
      StackGater<T>(first, Tanh<T>(m), second, test::MaskGate<T, true, false>(n / k, mask)), expert, k, name);
  layer.set_path(path);
  return layer;
}

/// One layer's forward written out: y = expand(mask ⊙ (G2 tanh(G1 x + c1) + c2)) ⊙ (W x + b).
template <class T>
Matrix<T> stack_layer_definition(const GatedLayer<StackGater<T>>& layer, const Matrix<T>& mask, const Matrix<T>& x) {
  const auto& g1 = layer.gater().template get<0>();
  const auto& g2 = layer.gater().template get<2>();
  const Matrix<T> a = ((g1.weight().value * x).colwise() + g1.bias().value.col(0)).array().tanh().matrix();
  const Matrix<T> h = mask.cwiseProduct((g2.weight().value * a).colwise() + g2.bias().value.col(0));
  const Matrix<T> H = (layer.dense_expert_weight() * x).colwise() + layer.expert_bias().value.col(0);
  return expand(h, layer.block()).cwiseProduct(H);
}

}  // namespace

TEMPLATE_TEST_CASE("stacked block GatedLayers: the second reads only the first's non-zero outputs, same numbers",
                   "[gated_layer][blocks][stacked]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  struct Stack {
    Index n, m, k, batch;
  };
  // 10 % open blocks: the first layer's output is 10 % non-zero, below kSparseInputCrossover.
  for (const Stack& s : {Stack{160, 8, 16, 1}, Stack{48, 8, 16, 33}, Stack{210, 6, 3, 33}}) {
    CAPTURE(s.n, s.k, s.batch);
    const Matrix<T> mask1 = test::exact_mask<T>(s.n / s.k, s.batch, 0.1, 71);
    const Matrix<T> mask2 = test::exact_mask<T>(s.n / s.k, s.batch, 0.1, 72);
    const Matrix<T> x = test::random_matrix<T>(s.n, s.batch, 73);
    const Matrix<T> dy = test::random_matrix<T>(s.n, s.batch, 74);
    Sequential sparse(stack_layer<T>(s.n, s.m, s.k, mask1, ExpertPath::sparse, false, 80, "l1"),
                      stack_layer<T>(s.n, s.m, s.k, mask2, ExpertPath::sparse, true, 90, "l2"));
    Sequential dense(stack_layer<T>(s.n, s.m, s.k, mask1, ExpertPath::dense, false, 80, "l1"),
                     stack_layer<T>(s.n, s.m, s.k, mask2, ExpertPath::dense, false, 90, "l2"));
    STATIC_REQUIRE(Layer<decltype(sparse)>);
    for (const Mode mode : {Mode::train, Mode::eval}) {
      CAPTURE(mode == Mode::train);
      Generator rng(1);
      Context<T> ctx(mode, rng);
      const Matrix<T> y = sparse.forward(x, ctx);
      const Matrix<T> y_dense = dense.forward(x, ctx);
      CHECK_FALSE(sparse.template get<0>().last_input_sparse());
      CHECK(sparse.template get<1>().last_input_sparse());
      CHECK_FALSE(dense.template get<1>().last_input_sparse());

      const Matrix<T> y1 = stack_layer_definition(sparse.template get<0>(), mask1, x);
      CHECK(static_cast<double>((y1.array() != T(0)).count()) <=
            internal::kSparseInputCrossover * static_cast<double>(y1.size()));
      const Matrix<T> y2 = stack_layer_definition(sparse.template get<1>(), mask2, y1);
      CHECK(test::relative_error(y, y2) <= tolerance);
      CHECK(test::relative_error(y_dense, y2) <= tolerance);
      if (mode == Mode::eval) continue;

      const Matrix<T> dx = sparse.backward(dy, ctx);
      const Matrix<T> dx_dense = dense.backward(dy, ctx);
      CHECK(test::relative_error(dx, dx_dense) <= tolerance);
      const ParameterList<T> a = sparse.parameters(), b = dense.parameters();
      REQUIRE(a.size() == b.size());
      for (std::size_t p = 0; p < a.size(); ++p) {
        CAPTURE(a[p]->name);
        CHECK(test::relative_error(a[p]->grad, b[p]->grad) <= tolerance);
      }
    }
  }
}

TEST_CASE("stacked block GatedLayers: gradients match central finite differences with sparse inputs",
          "[gated_layer][blocks][stacked]") {
  const Matrix<double> mask1 = test::exact_mask<double>(10, 3, 0.1, 81);
  const Matrix<double> mask2 = test::exact_mask<double>(10, 3, 0.3, 82);
  Sequential network(stack_layer<double>(40, 5, 4, mask1, ExpertPath::sparse, false, 83, "l1"),
                     stack_layer<double>(40, 5, 4, mask2, ExpertPath::sparse, true, 84, "l2"));
  const auto result = test::check_gradients(network, test::random_matrix<double>(40, 3, 85));
  CHECK(network.get<1>().last_input_sparse());
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
  CHECK(result.max_parameter_error < 1e-7);
}

TEST_CASE("stacked block GatedLayers: a training step gives the same bits on one thread and on two",
          "[gated_layer][blocks][stacked][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  // Two 512 -> 512 layers, k = 16, noisy-rectifier gaters (the block kernels in training) and
  // straight-through ones (the dense path in training), trained three steps with plain SGD and max-norm.
  using NoisyGater = Sequential<Linear<float>, Tanh<float>, Linear<float>, NoisyRectifier<float>>;
  using StGater = Sequential<Linear<float>, Tanh<float>, Linear<float>, StraightThrough<float>>;
  const Index n = 512, m = 64, k = 16, batch = 32;
  const Matrix<float> x = test::random_matrix<float>(n, batch, 1), dy = test::random_matrix<float>(n, batch, 2);
  auto run = [&]<class Gater, class Gate>(int count, std::type_identity<Gater>, std::type_identity<Gate>) {
    const test::ThreadCount thread_count(count);
    Generator rng(7);
    auto layer = [&](const char* name) {
      Gater gater(Linear<float>(n, m, rng), Tanh<float>(m), Linear<float>(m, n / k, rng), Gate(n / k));
      return GatedLayer<Gater>(std::move(gater), Linear<float>(n, n, rng), k, name);
    };
    Sequential net(layer("l1"), layer("l2"));
    set_max_norm<float>(net.parameters(), 1.0f);
    Sgd<float> sgd(net.parameters(), {.learning_rate = 0.1f});
    Context<float> ctx(Mode::train, rng);
    std::vector<Matrix<float>> out;
    for (int step = 0; step < 3; ++step) {
      out.push_back(net.forward(x, ctx));
      out.push_back(net.backward(dy, ctx));
      sgd.step();
    }
    for (Parameter<float>* p : net.parameters()) out.push_back(p->value);
    return out;
  };
  const auto noisy = std::type_identity<NoisyGater>{};
  const auto st = std::type_identity<StGater>{};
  CHECK(run(1, noisy, std::type_identity<NoisyRectifier<float>>{}) ==
        run(2, noisy, std::type_identity<NoisyRectifier<float>>{}));
  CHECK(run(1, st, std::type_identity<StraightThrough<float>>{}) == run(2, st, std::type_identity<StraightThrough<float>>{}));
}
