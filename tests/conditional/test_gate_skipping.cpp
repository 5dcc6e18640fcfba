// Which gates let the gated layer skip the expert, decided by the gate's traits (Sec. 3-5), and the
// layer's path choice and diagnostics.
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/rectifier.hpp"

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

constexpr Index kIn = 21, kUnits = 33, kBatch = 7;

template <bool Needs, bool Closed>
using Gater = Sequential<Linear<double>, test::MaskGate<double, Needs, Closed>>;

template <bool Needs, bool Closed>
GatedLayer<Gater<Needs, Closed>> make_layer(const Matrix<double>& mask) {
  Generator rng(4);
  Linear<double> gate_input(kIn, kUnits, rng);
  Linear<double> expert(kIn, kUnits, rng);
  expert.bias().value = test::random_matrix<double>(kUnits, 1, 6);
  return GatedLayer<Gater<Needs, Closed>>(
      Gater<Needs, Closed>(gate_input, test::MaskGate<double, Needs, Closed>(kUnits, mask)), expert);
}

struct Batch {
  Matrix<double> mask = test::exact_mask<double>(kUnits, kBatch, 0.1, 3);
  Matrix<double> x = test::random_matrix<double>(kIn, kBatch, 4);
  Matrix<double> dy = test::random_matrix<double>(kUnits, kBatch, 5);
  Matrix<double> closed() const { return (mask.array() == 0).cast<double>().matrix(); }
  template <class L>
  Matrix<double> dense_expert(const L& layer) const {
    return (layer.expert_weight().value.transpose() * x).colwise() + layer.expert_bias().value.col(0);
  }
};

}  // namespace


TEST_CASE("skips_in_training follows the gate's traits", "[gated_layer][skipping]") {
  STATIC_REQUIRE(skips_in_training<Rectifier<float>>);
  STATIC_REQUIRE(skips_in_training<Gater<true, false>>);   // noisy rectifier, STS
  STATIC_REQUIRE(skips_in_training<Gater<false, false>>);  // SBN
  STATIC_REQUIRE_FALSE(skips_in_training<Gater<true, true>>);  // straight-through
}

TEST_CASE("a straight-through gater trains against the dense expert: closed gates get dy * H",
          "[gated_layer][skipping]") {
  const Batch batch;
  auto layer = make_layer<true, true>(batch.mask);
  layer.set_path(ExpertPath::sparse);
  Generator rng(1);
  Context<double> ctx(Mode::train, rng);
  layer.forward(batch.x, ctx);
  CHECK(layer.last_forward_dense());
  CHECK(layer.last_batch_sparse());  // dH = h * dy is still zero at closed gates: dW and dx skip
  layer.backward(batch.dy, ctx);
  const Matrix<double> expected = batch.dy.cwiseProduct(batch.dense_expert(layer));
  const Matrix<double>& received = layer.gater().last().received();
  CHECK(test::relative_error(received, expected) < 1e-12);
  CHECK(received.cwiseProduct(batch.closed()).cwiseAbs().maxCoeff() > 0.1);  // closed gates learn

  SECTION("opting in to skip anyway sends zero into closed gates") {
    layer.set_skip_closed_gates_in_training(true);
    layer.forward(batch.x, ctx);
    CHECK_FALSE(layer.last_forward_dense());
    layer.backward(batch.dy, ctx);
    const Matrix<double>& skipped = layer.gater().last().received();
    CHECK(skipped.cwiseProduct(batch.closed()).cwiseAbs().maxCoeff() == 0.0);
    const Matrix<double> open = (batch.mask.array() != 0).select(expected, 0.0);
    CHECK(test::relative_error(skipped, open) < 1e-12);
  }
  SECTION("in evaluation a straight-through gater skips too") {
    Context<double> eval(Mode::eval, rng);
    const Matrix<double> y = layer.forward(batch.x, eval);
    CHECK_FALSE(layer.last_forward_dense());
    const Matrix<double> h = batch.mask.cwiseProduct(layer.gater().get<0>().forward(batch.x, eval));
    CHECK(test::relative_error(y, Matrix<double>(h.cwiseProduct(batch.dense_expert(layer)))) < 1e-12);
  }
}

TEST_CASE("an SBN-like gater (needs_output_gradient == false) is never given dy * H",
          "[gated_layer][skipping]") {
  const Batch batch;
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse}) {
    auto layer = make_layer<false, false>(batch.mask);
    layer.set_path(path);
    Generator rng(1);
    Context<double> ctx(Mode::train, rng);
    layer.forward(batch.x, ctx);
    CHECK(layer.last_forward_dense() == (path == ExpertPath::dense));
    layer.backward(batch.dy, ctx);
    const Matrix<double>& received = layer.gater().last().received();
    REQUIRE(received.rows() == kUnits);
    REQUIRE(received.cols() == kBatch);
    CHECK(received.isZero(0.0));
  }
}

TEST_CASE("a rectifier-like gater gets dy * H at open gates only, on either path", "[gated_layer][skipping]") {
  const Batch batch;
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse}) {
    auto layer = make_layer<true, false>(batch.mask);
    layer.set_path(path);
    Generator rng(1);
    Context<double> ctx(Mode::train, rng);
    layer.forward(batch.x, ctx);
    CHECK(layer.last_forward_dense() == (path == ExpertPath::dense));
    layer.backward(batch.dy, ctx);
    const Matrix<double> expected =
        (batch.mask.array() != 0).select(batch.dy.cwiseProduct(batch.dense_expert(layer)), 0.0);
    CHECK(test::relative_error(layer.gater().last().received(), expected) < 1e-12);
  }
}

TEST_CASE("the automatic path follows the measured density and the crossover", "[gated_layer][skipping]") {
  for (const double density : {0.0, 0.05, 0.3, 0.7, 1.0}) {
    CAPTURE(density);
    const Matrix<double> mask = test::exact_mask<double>(kUnits, kBatch, density, 9);
    auto layer = make_layer<true, false>(mask);
    CHECK(layer.path() == ExpertPath::automatic);
    CHECK(layer.crossover() == internal::kDefaultSparseCrossover);
    Generator rng(1);
    Context<double> ctx(Mode::train, rng);
    const Matrix<double> x = test::random_matrix<double>(kIn, kBatch, 2);
    layer.forward(x, ctx);
    const double exact = static_cast<double>((mask.array() != 0).count()) / (kUnits * kBatch);
    CHECK(layer.density() == Approx(exact).epsilon(1e-12));
    CHECK(layer.last_batch_sparse() == (exact <= internal::kDefaultSparseCrossover));
    const double units_open = static_cast<double>((mask.array() != 0).rowwise().any().count()) / kUnits;
    CHECK(layer.active_unit_fraction() == Approx(units_open).epsilon(1e-12));

    layer.set_crossover(0.2);
    layer.forward(x, ctx);
    CHECK(layer.last_batch_sparse() == (exact <= 0.2));
  }
}

TEST_CASE("GatedLayer works with the library's Rectifier as gate and names its parameters",
          "[gated_layer][skipping]") {
  Generator rng(12);
  using RectGater = Sequential<Linear<float>, Rectifier<float>>;
  GatedLayer layer(RectGater(Linear<float>(9, 40, rng), Rectifier<float>(40)), Linear<float>(9, 40, rng),
                   "main");
  const ParameterList<float> parameters = layer.parameters();
  REQUIRE(parameters.size() == 4);
  CHECK(parameters[2]->name == "main.W");
  CHECK(parameters[2]->fan_in == FanIn::columns);
  CHECK(parameters[2]->value.rows() == 9);
  CHECK(parameters[2]->value.cols() == 40);
  CHECK(parameters[3]->name == "main.b");
  Context<float> ctx(Mode::train, rng);
  const Matrix<float> x = test::random_matrix<float>(9, 6, 3);
  layer.set_path(ExpertPath::sparse);
  const Matrix<float> y = layer.forward(x, ctx);
  CHECK(layer.density() > 0.2);
  CHECK(layer.density() < 0.8);
  const Matrix<float> h = layer.gater().forward(x, ctx);
  const Matrix<float> H = (layer.expert_weight().value.transpose() * x).colwise() + layer.expert_bias().value.col(0);
  CHECK(test::relative_error(y, Matrix<float>(h.cwiseProduct(H))) < 1e-5);
}
