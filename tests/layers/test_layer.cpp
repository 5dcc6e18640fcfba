// Tests for include/stoch/layers/layer.hpp, the contract written down once: every layer of the library
// satisfies `Layer` in float and double, every gate satisfies `Gate`, `skips_in_training` follows each
// estimator (Sec. 5: only straight-through and the noisy sigmoid need the expert at closed gates), and
// types that miss part of the contract are rejected.
#include "stoch/layers/layer.hpp"

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/noisy_sigmoid.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/dropout.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/sigmoid.hpp"
#include "stoch/layers/tanh.hpp"
#include "support/catch.hpp"

using namespace stoch;

namespace {

template <class T>
constexpr bool all_layers() {
  return Layer<Linear<T>> && Layer<Tanh<T>> && Layer<Sigmoid<T>> && Layer<Rectifier<T>> && Layer<Dropout<T>> &&
         Gate<NoisyRectifier<T>> && Gate<StochasticTimesSmooth<T>> && Gate<StochasticBinary<T>> &&
         Gate<StraightThrough<T>> && Gate<NoisySigmoid<T>> &&
         Layer<GatedLayer<Sequential<Linear<T>, Tanh<T>, Linear<T>, StochasticBinary<T>>>>;
}
static_assert(all_layers<float>() && all_layers<double>());

// Activations without gate traits are not gates.
static_assert(!Gate<Tanh<float>> && !Gate<Linear<float>> && !Gate<Dropout<float>>);

// Which gates let the gated layer skip closed experts in training (README, "Which gates skip").
static_assert(skips_in_training<NoisyRectifier<float>>);
static_assert(skips_in_training<StochasticTimesSmooth<float>>);
static_assert(skips_in_training<StochasticBinary<float>>);
static_assert(skips_in_training<Rectifier<float>>);
static_assert(!skips_in_training<StraightThrough<float>>);
static_assert(!skips_in_training<NoisySigmoid<float>>);

// The optional input-gradient members: layers whose dL/dx costs a product can skip it; the layers whose
// backward only propagates say so (a chain of them does too); gates update state in backward and do not.
static_assert(OptionalInputGradient<Linear<float>> && OptionalInputGradient<Sequential<Linear<float>, Tanh<float>>>);
static_assert(OptionalInputGradient<GatedLayer<Sequential<Linear<double>, StraightThrough<double>>>>);
static_assert(!OptionalInputGradient<Tanh<float>> && !OptionalInputGradient<StraightThrough<float>>);
static_assert(backward_only_propagates<Tanh<float>> && backward_only_propagates<Sigmoid<double>> &&
              backward_only_propagates<Rectifier<float>> && backward_only_propagates<Dropout<float>> &&
              backward_only_propagates<Sequential<Dropout<float>, Tanh<float>>>);
static_assert(!backward_only_propagates<Linear<float>> && !backward_only_propagates<StraightThrough<float>> &&
              !backward_only_propagates<NoisyRectifier<float>>);
static_assert(!backward_only_propagates<Sequential<Tanh<float>, Linear<float>>>);

/// Types that break one clause of the contract each.
struct NoScalar {
  Index input_size() const { return 1; }
  Index output_size() const { return 1; }
};
struct NoBackward {
  using Scalar = float;
  Index input_size() const { return 1; }
  Index output_size() const { return 1; }
  const Matrix<float>& forward(const MatrixCRef<float>&, Context<float>&);
  ParameterList<float> parameters();
};
struct ForwardByValue {
  using Scalar = float;
  Index input_size() const { return 1; }
  Index output_size() const { return 1; }
  Matrix<float> forward(const MatrixCRef<float>&, Context<float>&);  // must return the layer's own buffer
  const Matrix<float>& backward(const MatrixCRef<float>&, Context<float>&);
  ParameterList<float> parameters();
};
struct Complete {
  using Scalar = float;
  Index input_size() const { return 1; }
  Index output_size() const { return 1; }
  const Matrix<float>& forward(const MatrixCRef<float>&, Context<float>&);
  const Matrix<float>& backward(const MatrixCRef<float>&, Context<float>&);
  ParameterList<float> parameters();
};
struct CompleteGate : Complete {
  static constexpr bool needs_output_gradient = false;
  static constexpr bool closed_gate_needs_gradient = false;
};
static_assert(!Layer<NoScalar> && !Layer<NoBackward> && !Layer<ForwardByValue>);
static_assert(Layer<Complete> && !Gate<Complete> && Gate<CompleteGate>);

}  // namespace

TEST_CASE("The layer contract is checked at compile time (see the static_asserts above)", "[layer]") {
  CHECK(all_layers<float>());
  CHECK_FALSE(skips_in_training<StraightThrough<double>>);
}
