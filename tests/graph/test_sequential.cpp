// Tests for include/stoch/graph/sequential.hpp: a chain computes what its layers compute one after the
// other, its backward is the chain's gradient (central finite differences, inputs and every parameter),
// its parameters come in layer order, a chain ending in a gate is a gate with that gate's traits, and
// mismatched sizes are refused at construction, naming the layers.
#include "stoch/graph/sequential.hpp"

#include <string>

#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/tanh.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

using Mlp = Sequential<Linear<double>, Rectifier<double>, Linear<double>, Tanh<double>>;

Mlp make_mlp(std::uint64_t seed) {
  Generator rng(seed);
  Linear<double> hidden(5, 7, rng, "hidden");
  Linear<double> out(7, 3, rng, "out");
  return Mlp(hidden, Rectifier<double>(7), out, Tanh<double>(3));
}

// Sequential is a Layer, and a chain that ends in a gate is a Gate with the last layer's traits.
static_assert(Layer<Mlp>);
static_assert(!Gate<Mlp>);
using StGater = Sequential<Linear<float>, StraightThrough<float>>;
using SbnGater = Sequential<Linear<float>, Tanh<float>, Linear<float>, StochasticBinary<float>>;
static_assert(Gate<StGater> && StGater::needs_output_gradient == StraightThrough<float>::needs_output_gradient &&
              StGater::closed_gate_needs_gradient == StraightThrough<float>::closed_gate_needs_gradient);
static_assert(Gate<SbnGater> && !SbnGater::needs_output_gradient);
static_assert(Gate<Sequential<Linear<double>, Rectifier<double>>>);  // the rectifier is a gate too (Sec. 2.1)

}  // namespace

TEST_CASE("Sequential forward equals its layers applied one after the other", "[sequential]") {
  Mlp chain = make_mlp(3);
  Mlp parts = make_mlp(3);  // the same weights, run layer by layer
  const Matrix<double> x = test::random_matrix<double>(5, 4, 9);
  for (const Mode mode : {Mode::train, Mode::eval}) {
    Generator rng(1);
    Context<double> ctx(mode, rng);
    const Matrix<double> y = chain.forward(x, ctx);
    const Matrix<double>& a = parts.get<0>().forward(x, ctx);
    const Matrix<double>& h = parts.get<1>().forward(a, ctx);
    const Matrix<double>& b = parts.get<2>().forward(h, ctx);
    const Matrix<double>& expected = parts.get<3>().forward(b, ctx);
    CHECK(y == expected);
  }
  CHECK(chain.input_size() == 5);
  CHECK(chain.output_size() == 3);
  CHECK(&chain.last() == &chain.get<3>());
}

TEST_CASE("Sequential backward is the chain's gradient", "[sequential]") {
  Mlp chain = make_mlp(4);
  Matrix<double> x = test::random_matrix<double>(5, 3, 10);
  const auto r = test::check_gradients(chain, x);
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-7);
  CHECK(r.max_parameter_error < 1e-7);
}

TEST_CASE("Sequential lists its layers' parameters in layer order", "[sequential]") {
  Mlp chain = make_mlp(5);
  const ParameterList<double> params = chain.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0] == &chain.get<0>().weight());
  CHECK(params[1] == &chain.get<0>().bias());
  CHECK(params[2] == &chain.get<2>().weight());
  CHECK(params[3] == &chain.get<2>().bias());
  CHECK(params[0]->name == "hidden.W");
  CHECK(params[3]->name == "out.b");
}

TEST_CASE("Sequential refuses layers whose sizes do not chain, naming them", "[sequential]") {
  Generator rng(6);
  using Chain = Sequential<Linear<float>, Tanh<float>, Linear<float>>;
  REQUIRE_THROWS_MESSAGE(Chain(Linear<float>(4, 6, rng), Tanh<float>(5), Linear<float>(5, 2, rng)),
                         "Sequential: layer 0 outputs 6 features but layer 1 takes 5");
  REQUIRE_THROWS_MESSAGE(Chain(Linear<float>(4, 6, rng), Tanh<float>(6), Linear<float>(5, 2, rng)),
                         "Sequential: layer 1 outputs 6 features but layer 2 takes 5");
  Chain ok(Linear<float>(4, 6, rng), Tanh<float>(6), Linear<float>(6, 2, rng));
  Context<float> ctx(Mode::eval, rng);
  REQUIRE_THROWS_MESSAGE(ok.forward(Matrix<float>::Zero(3, 2), ctx), "Linear::forward ('linear'): input: shape mismatch");
}

namespace {

/// Tanh that counts its backward calls: a layer whose backward only propagates.
struct CountingTanh : Tanh<double> {
  using Tanh<double>::Tanh;
  const Matrix<double>& backward(const MatrixCRef<double>& dy, Context<double>& ctx) {
    ++calls;
    return Tanh<double>::backward(dy, ctx);
  }
  int calls = 0;
};

}  // namespace

// set_input_gradient(false): the leading layers that only propagate (here a counting Tanh, as an input
// dropout would be) are not run backward, the first Linear skips its W^T dy, the result is empty, and every
// parameter gradient is exactly what the full backward gives.
TEST_CASE("Sequential without dL/dx skips the leading propagating layers and tells the first Linear",
          "[sequential]") {
  using Chain = Sequential<CountingTanh, Linear<double>, Rectifier<double>, Linear<double>>;
  static_assert(OptionalInputGradient<Chain> && !backward_only_propagates<Chain>);
  Generator rng(9);
  Linear<double> first(5, 7, rng, "first"), second(7, 3, rng, "second");
  Chain with(CountingTanh(5), first, Rectifier<double>(7), second), without = with;
  without.set_input_gradient(false);
  CHECK_FALSE(without.get<1>().input_gradient());
  CHECK(without.get<3>().input_gradient());  // only the bottom layer is told

  const Matrix<double> x = test::random_matrix<double>(5, 4, 1), dy = test::random_matrix<double>(3, 4, 2);
  Context<double> ctx(Mode::train, rng);
  with.forward(x, ctx);
  without.forward(x, ctx);
  CHECK(with.backward(dy, ctx).rows() == 5);
  CHECK(without.backward(dy, ctx).size() == 0);
  CHECK(with.get<0>().calls == 1);
  CHECK(without.get<0>().calls == 0);
  const ParameterList<double> a = with.parameters(), b = without.parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k]->grad == b[k]->grad);

  without.set_input_gradient(true);
  CHECK(without.get<1>().input_gradient());
  without.forward(x, ctx);
  CHECK(without.backward(dy, ctx).rows() == 5);
  CHECK(without.get<0>().calls == 1);
}
