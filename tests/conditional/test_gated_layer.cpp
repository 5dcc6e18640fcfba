// The gated layer's sparse path against its dense path (same numbers, every gradient), against finite
// differences, and its shape errors.
#include "stoch/conditional/gated_layer.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/tanh.hpp"

#include "conditional/gated_gradient_check.hpp"
#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

template <class T>
using MaskGater = Sequential<Linear<T>, test::MaskGate<T, true, false>>;

template <class T>
GatedLayer<MaskGater<T>> mask_layer(Index in, Index units, const Matrix<T>& mask, ExpertPath path) {
  Generator rng(21);
  Linear<T> gate_input(in, units, rng, "gater");
  Linear<T> expert(in, units, rng);
  expert.bias().value = test::random_matrix<T>(units, 1, 5);
  GatedLayer<MaskGater<T>> layer(MaskGater<T>(gate_input, test::MaskGate<T, true, false>(units, mask)), expert);
  layer.set_path(path);
  return layer;
}

struct Shape {
  Index units, in, batch;
};

}  // namespace

TEMPLATE_TEST_CASE("GatedLayer: sparse forward and every gradient equal the dense computation",
                   "[gated_layer]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  // Odd sizes (not multiples of the SIMD width), batch 1, large batches with their lists built through
  // columns (300) or through masks (40), and in = 1024 (a padded stride).
  const Shape shapes[] = {{37, 19, 1},     {37, 19, 5},    {16, 64, 17}, {3, 1, 2},
                          {50, 1001, 300}, {40, 2000, 40}, {20, 1024, 9}};
  const double densities[] = {0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1.0};
  std::uint64_t seed = 100;
  for (const Shape& shape : shapes)
    for (const double density : densities) {
      CAPTURE(shape.units, shape.in, shape.batch, density);
      const Matrix<T> mask = test::exact_mask<T>(shape.units, shape.batch, density, ++seed);
      const Matrix<T> x = test::random_matrix<T>(shape.in, shape.batch, ++seed);
      const Matrix<T> dy = test::random_matrix<T>(shape.units, shape.batch, ++seed);
      Generator rng(1);
      Context<T> ctx(Mode::train, rng);
      auto dense = mask_layer<T>(shape.in, shape.units, mask, ExpertPath::dense);
      const Matrix<T> y_dense = dense.forward(x, ctx);
      const Matrix<T> dx_dense = dense.backward(dy, ctx);
      REQUIRE_FALSE(dense.last_batch_sparse());

      for (const auto& [layout, order] : {std::pair{ListLayout::by_unit, VisitOrder::natural},
                                         std::pair{ListLayout::by_unit, VisitOrder::by_leading_examples},
                                         std::pair{ListLayout::by_example, VisitOrder::natural}}) {
        CAPTURE(layout == ListLayout::by_unit, order == VisitOrder::natural);
        auto sparse = mask_layer<T>(shape.in, shape.units, mask, ExpertPath::sparse);
        sparse.set_list_layout(layout);
        sparse.set_visit_order(order);
        const Matrix<T> y_sparse = sparse.forward(x, ctx);
        REQUIRE(sparse.last_batch_sparse());
        REQUIRE_FALSE(sparse.last_forward_dense());
        CHECK(test::relative_error(y_sparse, y_dense) <= tolerance);
        CHECK((y_sparse.array() != T(0)).count() <= (mask.array() != T(0)).count());

        const Matrix<T> dx_sparse = sparse.backward(dy, ctx);
        CHECK(test::relative_error(dx_sparse, dx_dense) <= tolerance);
        CHECK(test::relative_error(sparse.expert_weight().grad, dense.expert_weight().grad) <= tolerance);
        CHECK(test::relative_error(sparse.expert_bias().grad, dense.expert_bias().grad) <= tolerance);
        CHECK(test::relative_error(sparse.gater().last().received(), dense.gater().last().received()) <= tolerance);
        CHECK(test::relative_error(sparse.gater().template get<0>().weight().grad,
                                   dense.gater().template get<0>().weight().grad) <= tolerance);

        // Against the definition, computed here with plain Eigen (W is stored transposed).
        const Matrix<T> H = (sparse.expert_weight().value.transpose() * x).colwise() +
                            sparse.expert_bias().value.col(0);
        const Matrix<T> h = sparse.gater().forward(x, ctx);
        CHECK(test::relative_error(y_sparse, Matrix<T>(h.cwiseProduct(H))) <= tolerance);
        const Matrix<T> dH = h.cwiseProduct(dy);
        CHECK(test::relative_error(sparse.expert_weight().grad, Matrix<T>(x * dH.transpose())) <= tolerance);
        const Matrix<T> dh_expected = (h.array() != T(0)).select(dy.cwiseProduct(H), T(0));
        CHECK(test::relative_error(sparse.gater().last().received(), dh_expected) <= tolerance);
      }
    }
}

// set_input_gradient(false), for a first layer: the expert's and the gater's shares of dL/dx are skipped
// (the gater's first Linear is told too), every parameter gradient is bit for bit the same, and backward
// returns an empty matrix; turned back on, dL/dx is computed again. Both paths, both list layouts, a padded
// stride (in = 1024) and a large batch (300, lists built through columns).
TEMPLATE_TEST_CASE("GatedLayer: without dL/dx, the parameter gradients are exactly the same", "[gated_layer]",
                   float, double) {
  using T = TestType;
  const Shape shapes[] = {{37, 19, 5}, {16, 64, 17}, {50, 1001, 300}, {20, 1024, 9}};
  std::uint64_t seed = 500;
  for (const Shape& shape : shapes)
    for (const double density : {0.05, 0.3, 1.0})
      for (const auto& [path, layout] : {std::pair{ExpertPath::dense, ListLayout::by_unit},
                                         std::pair{ExpertPath::sparse, ListLayout::by_unit},
                                         std::pair{ExpertPath::sparse, ListLayout::by_example}}) {
        CAPTURE(shape.units, shape.in, shape.batch, density, path == ExpertPath::dense, layout == ListLayout::by_unit);
        const Matrix<T> mask = test::exact_mask<T>(shape.units, shape.batch, density, ++seed);
        const Matrix<T> x = test::random_matrix<T>(shape.in, shape.batch, ++seed);
        const Matrix<T> dy = test::random_matrix<T>(shape.units, shape.batch, ++seed);
        Generator rng(1);
        Context<T> ctx(Mode::train, rng);
        auto with = mask_layer<T>(shape.in, shape.units, mask, path);
        auto without = mask_layer<T>(shape.in, shape.units, mask, path);
        for (auto* layer : {&with, &without}) layer->set_list_layout(layout);
        without.set_input_gradient(false);
        CHECK_FALSE(without.input_gradient());
        CHECK_FALSE(without.gater().template get<0>().input_gradient());

        with.forward(x, ctx);
        without.forward(x, ctx);
        const Matrix<T> dx = with.backward(dy, ctx);
        CHECK(dx.rows() == shape.in);
        CHECK(without.backward(dy, ctx).size() == 0);
        const ParameterList<T> a = with.parameters(), b = without.parameters();
        REQUIRE(a.size() == b.size());
        for (std::size_t k = 0; k < a.size(); ++k) {
          CAPTURE(a[k]->name);
          CHECK(a[k]->grad == b[k]->grad);
        }

        without.set_input_gradient(true);
        CHECK(without.gater().template get<0>().input_gradient());
        without.forward(x, ctx);
        CHECK(without.backward(dy, ctx) == dx);
      }
}

TEST_CASE("GatedLayer: gradients match central finite differences on both paths", "[gated_layer]") {
  using Gater = Sequential<Linear<double>, Tanh<double>, Linear<double>, test::SquaredRectifier<double>>;
  for (const ExpertPath path : {ExpertPath::dense, ExpertPath::sparse, ExpertPath::automatic}) {
    Generator rng(8);
    Gater gater(Linear<double>(7, 5, rng), Tanh<double>(5), Linear<double>(5, 9, rng),
                test::SquaredRectifier<double>(9));
    Linear<double> expert(7, 9, rng);
    expert.bias().value = test::random_matrix<double>(9, 1, 3);
    GatedLayer layer(gater, expert);
    test::check_gated_gradients(layer, path, test::random_matrix<double>(7, 4, 2));
  }
}

TEST_CASE("GatedLayer composes in a Sequential (the paper's network shape, scaled down)", "[gated_layer]") {
  using Gater = Sequential<Linear<double>, Tanh<double>, Linear<double>, test::SquaredRectifier<double>>;
  Generator rng(9);
  GatedLayer gated(Gater(Linear<double>(6, 4, rng), Tanh<double>(4), Linear<double>(4, 11, rng),
                         test::SquaredRectifier<double>(11)),
                   Linear<double>(6, 11, rng));
  Sequential network(gated, Linear<double>(11, 3, rng));
  STATIC_REQUIRE(Layer<decltype(network)>);
  CHECK(network.input_size() == 6);
  CHECK(network.output_size() == 3);
  const auto result = test::check_gradients(network, test::random_matrix<double>(6, 5, 4));
  CHECK(result.finite);
  CHECK(result.max_input_error < 1e-7);
  CHECK(result.max_parameter_error < 1e-7);
}

TEST_CASE("GatedLayer rejects mismatched shapes with a message naming them", "[gated_layer]") {
  const Matrix<float> mask = test::exact_mask<float>(4, 3, 0.5, 1);
  auto layer = mask_layer<float>(5, 4, mask, ExpertPath::automatic);
  Generator rng(1);
  Context<float> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(4, 3), ctx), "needs a forward in Mode::train");
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(6, 3), ctx), "expected 5 rows");
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(5, 0), ctx), "empty batch");
  layer.forward(Matrix<float>::Ones(5, 3), ctx);
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(4, 2), ctx), "expected 4 x 3");
  Context<float> eval(Mode::eval, rng);
  layer.forward(Matrix<float>::Ones(5, 3), eval);
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(4, 3), ctx), "needs a forward in Mode::train");
  REQUIRE_THROWS_MESSAGE(layer.set_crossover(1.5), "must be in [0, 1]");

  using Gater = Sequential<Linear<float>, test::MaskGate<float, true, false>>;
  const Gater gater(Linear<float>(5, 4), test::MaskGate<float, true, false>(4, mask));
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(5, 6)), "expert maps 5 -> 6");
  REQUIRE_THROWS_MESSAGE(GatedLayer(gater, Linear<float>(3, 4)), "both must map in -> units");
}
