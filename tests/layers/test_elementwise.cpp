// Tests for include/stoch/layers/elementwise.hpp, the CRTP skeleton of the unit-wise layers: a derived
// class writes only compute() and differentiate(); the base checks shapes (naming the derived class),
// sizes and owns the buffers, and keeps the last output.
#include "stoch/layers/elementwise.hpp"

#include "support/catch.hpp"

using namespace stoch;

namespace {

/// h = 2a + 1, the smallest possible unit-wise layer.
template <class T>
class Affine2 : public internal::Elementwise<Affine2<T>, T> {
 public:
  explicit Affine2(Index units) : internal::Elementwise<Affine2<T>, T>(units, "Affine2") {}
  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h.array() = T(2) * a.array() + T(1); }
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) { da = T(2) * dh; }
};
static_assert(Layer<Affine2<float>> && !Gate<Affine2<float>>);

}  // namespace

TEST_CASE("Elementwise runs the derived compute and differentiate into buffers it owns", "[elementwise]") {
  Affine2<double> layer(3);
  CHECK(layer.input_size() == 3);
  CHECK(layer.output_size() == 3);
  CHECK(layer.parameters().empty());
  Context<double> ctx;
  const Matrix<double> x = Matrix<double>::Constant(3, 2, 0.5);
  const Matrix<double>& y = layer.forward(x, ctx);
  CHECK(y == Matrix<double>::Constant(3, 2, 2.0));
  CHECK(&layer.output() == &y);
  CHECK(layer.backward(Matrix<double>::Ones(3, 2), ctx) == Matrix<double>::Constant(3, 2, 2.0));
  // Another batch size resizes the buffers.
  CHECK(layer.forward(Matrix<double>::Zero(3, 5), ctx).cols() == 5);
  CHECK(layer.backward(Matrix<double>::Ones(3, 5), ctx).cols() == 5);
}

TEST_CASE("Elementwise names the derived class in its errors", "[elementwise]") {
  REQUIRE_THROWS_MESSAGE(Affine2<float>(-2), "Affine2: unit count must be positive, got -2");
  Affine2<float> layer(3);
  Context<float> ctx;
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(2, 4), ctx),
                         "Affine2::forward: input: shape mismatch, expected 3 rows (features) but got 2 x 4");
  REQUIRE_THROWS_MESSAGE(layer.forward(Matrix<float>::Zero(3, 0), ctx), "Affine2::forward: empty batch (0 columns)");
  layer.forward(Matrix<float>::Zero(3, 4), ctx);
  REQUIRE_THROWS_MESSAGE(layer.backward(Matrix<float>::Zero(3, 2), ctx),
                         "Affine2::backward: output gradient: shape mismatch, expected 3 x 4 but got 3 x 2");
}
