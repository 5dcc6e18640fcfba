// Bad input across the layers, each refused with a stoch::Error whose message names the problem.
#include <limits>
#include <string>
#include <vector>

#include "stoch/conditional/gated_layer.hpp"
#include "stoch/gates/gumbel_sigmoid.hpp"
#include "stoch/gates/noisy_rectifier.hpp"
#include "stoch/gates/noisy_sigmoid.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/slope_annealed_straight_through.hpp"
#include "stoch/gates/stochastic_times_smooth.hpp"
#include "stoch/gates/straight_through.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/dropout.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/sigmoid.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"
#include "stoch/regularizers/kl_sparsity.hpp"
#include "stoch/regularizers/l1_sparsity.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST_CASE("Sequential refuses adjacent layers whose sizes do not chain", "[robustness]") {
  REQUIRE_THROWS_MESSAGE(Sequential(Linear<float>(4, 3), Tanh<float>(3), Linear<float>(2, 1)),
                         "layer 1 outputs 3 features but layer 2 takes 2");
}

TEST_CASE("A model refuses an input with the wrong number of features, naming both shapes", "[robustness]") {
  Generator rng(1);
  auto model = Sequential(Linear<float>(4, 3, rng), Tanh<float>(3), Linear<float>(3, 2, rng));
  Context<float> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(model.forward(Matrix<float>::Zero(5, 8), ctx), "expected 4 rows (features) but got 5 x 8");
  // Transposed data (batch x features) is the usual mistake.
  REQUIRE_THROWS_MESSAGE(model.forward(Matrix<float>::Zero(8, 4), ctx), "expected 4 rows");
}

TEST_CASE("Backward refuses an output gradient of the wrong shape", "[robustness]") {
  Generator rng(2);
  auto model = Sequential(Linear<float>(4, 3, rng), Tanh<float>(3), Linear<float>(3, 2, rng));
  Context<float> ctx(Mode::train, rng);
  model.forward(Matrix<float>::Ones(4, 8), ctx);
  REQUIRE_THROWS_MESSAGE(model.backward(Matrix<float>::Zero(2, 7), ctx), "expected 2 x 8 but got 2 x 7");
}

TEST_CASE("An empty batch is refused by layers and the loss", "[robustness]") {
  Generator rng(3);
  auto model = Sequential(Linear<float>(4, 3, rng), Tanh<float>(3));
  Context<float> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(model.forward(Matrix<float>::Zero(4, 0), ctx), "empty batch");
  SoftmaxCrossEntropy<float> loss(3);
  REQUIRE_THROWS_MESSAGE(loss.forward(Matrix<float>::Zero(3, 0), std::vector<int>{}, ctx), "empty batch");
}

TEST_CASE("Labels out of range, or too few of them, are refused with the example's index", "[robustness]") {
  SoftmaxCrossEntropy<float> loss(10);
  Context<float> ctx;
  const Matrix<float> logits = Matrix<float>::Zero(10, 3);
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, std::vector<int>{0, 10, 1}, ctx),
                         "label 10 of example 1 is out of range [0, 10)");
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, std::vector<int>{-1, 0, 1}, ctx), "label -1 of example 0");
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, std::vector<int>{0, 1}, ctx), "2 labels for a batch of 3");
}

TEST_CASE("NaN or Inf in the input is refused by the first layer, naming feature and example", "[robustness]") {
  Generator rng(4);
  auto model = Sequential(Linear<float>(4, 3, rng), Tanh<float>(3), Linear<float>(3, 2, rng));
  Context<float> ctx(Mode::train, rng);
  for (const float bad : {kNaN, kInf, -kInf}) {
    CAPTURE(bad);
    Matrix<float> x = Matrix<float>::Ones(4, 3);
    x(2, 1) = bad;
    // (tanh would turn an Inf into a finite 1, so only the input check can catch it.)
    REQUIRE_THROWS_MESSAGE(model.forward(x, ctx), "(NaN or Inf) at feature 2 of example 1");
    ctx.mode = Mode::eval;
    REQUIRE_THROWS_MESSAGE(model.forward(x, ctx), "Linear::forward ('linear'): input: non-finite value");
    ctx.mode = Mode::train;
  }
}

TEST_CASE("A non-finite loss stops training with a message naming the example", "[robustness]") {
  SoftmaxCrossEntropy<float> loss(2);
  Context<float> ctx;
  const std::vector<int> labels{0, 1, 0};
  // Logits that overflowed to Inf or became NaN (a diverging model) are refused.
  Matrix<float> logits = Matrix<float>::Zero(2, 3);
  logits(1, 0) = kNaN;
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, labels, ctx), "the loss of example 0 is not finite");
  logits(1, 0) = 0;
  logits(0, 2) = kInf;
  REQUIRE_THROWS_MESSAGE(loss.forward(logits, labels, ctx), "the loss of example 2 is not finite");
  // Large but finite logits are fine (the loss shifts by the column maximum).
  logits(0, 2) = 1e30f;
  CHECK(std::isfinite(loss.forward(logits, labels, ctx)));
}

TEST_CASE("A learning rate <= 0 and a momentum outside [0, 1) are refused", "[robustness]") {
  Linear<float> layer(2, 2);
  for (const float rate : {0.0f, -0.1f, kNaN})
    REQUIRE_THROWS_MESSAGE(Sgd<float>(layer.parameters(), {.learning_rate = rate, .momentum = 0.0f}),
                           "Sgd: learning_rate must be > 0");
  for (const float momentum : {1.0f, -0.5f})
    REQUIRE_THROWS_MESSAGE(Sgd<float>(layer.parameters(), {.learning_rate = 0.1f, .momentum = momentum}),
                           "momentum must be in [0, 1)");
}

TEST_CASE("Sparsity targets and probabilities outside (0, 1) are refused, naming the option", "[robustness]") {
  for (const float bad : {0.0f, 1.0f, -0.1f, 1.5f, kNaN}) {
    CAPTURE(bad);
    REQUIRE_THROWS_MESSAGE((KlSparsity<float>{.target = bad, .strength = 1.0f}.validate()),
                           "KlSparsity: target must be a probability in (0, 1)");
    REQUIRE_THROWS_MESSAGE(AdaptiveL1<float>(bad, 0.1f), "AdaptiveL1: target must be a probability in (0, 1)");
    REQUIRE_THROWS_MESSAGE(StraightThrough<float>(4, {.kl = KlSparsity<float>{.target = bad}}), "KlSparsity: target");
    REQUIRE_THROWS_MESSAGE(StochasticTimesSmooth<float>(4, {.beta_noise = BetaNoise<float>{.target = bad}}),
                           "StochasticTimesSmooth ('sts'): beta_noise.target must be a probability in (0, 1)");
    REQUIRE_THROWS_MESSAGE(
        NoisyRectifier<float>(4, {.firing_rate = FiringRateControl<float>{.target = bad}}),
        "NoisyRectifier ('noisy_rectifier'): firing_rate.target must be a probability in (0, 1)");
    REQUIRE_THROWS_MESSAGE(StochasticBinary<float>(4, {.average_rate = bad}),
                           "StochasticBinary ('sbn'): average_rate must be a probability in (0, 1)");
  }
  REQUIRE_THROWS_MESSAGE((KlSparsity<float>{.target = 0.1f, .strength = -1.0f}.validate()),
                         "KlSparsity: strength must be >= 0");
  REQUIRE_THROWS_MESSAGE(NoisyRectifier<float>(4, {.noise_scale = -1.0f}), "noise_scale must be >= 0");
}

TEST_CASE("A gated layer refuses a gater and an expert of different shapes", "[robustness]") {
  Generator rng(5);
  auto gater = Sequential(Linear<float>(6, 4, rng), StraightThrough<float>(4));
  REQUIRE_THROWS_MESSAGE(GatedLayer<decltype(gater)>(gater, Linear<float>(6, 5, rng)),
                         "the gater maps 6 -> 4 features but the expert maps 6 -> 5");
}

TEST_CASE("A score-function gate refuses to run backward without the per-example loss", "[robustness]") {
  Generator rng(6);
  StochasticBinary<float> gate(3);
  Context<float> ctx(Mode::train, rng);
  gate.forward(Matrix<float>::Zero(3, 4), ctx);
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<float>::Zero(3, 4), ctx), "needs the per-example loss");
  ctx.example_loss = RowVector<float>::Constant(4, kNaN);
  REQUIRE_THROWS_MESSAGE(gate.backward(Matrix<float>::Zero(3, 4), ctx), "per-example loss is not finite");
}

TEST_CASE("A stochastic layer without a generator says so", "[robustness]") {
  StraightThrough<float> gate(3);
  Context<float> ctx;  // Mode::train, no generator
  REQUIRE_THROWS_MESSAGE(gate.forward(Matrix<float>::Zero(3, 2), ctx), "needs a generator");
}

// ---- Backward must follow a training forward, for every layer ----

namespace {

constexpr Index kUnits = 4;

// How to build each layer under test, and how its messages start.
template <class L>
struct Make;
template <>
struct Make<Linear<float>> {
  static Linear<float> make(Generator& rng) { return Linear<float>(kUnits, kUnits, rng, "gater.hidden"); }
  static constexpr const char* prefix = "Linear::backward ('gater.hidden')";
};
template <>
struct Make<Tanh<float>> {
  static Tanh<float> make(Generator&) { return Tanh<float>(kUnits); }
  static constexpr const char* prefix = "Tanh::backward";
};
template <>
struct Make<Sigmoid<float>> {
  static Sigmoid<float> make(Generator&) { return Sigmoid<float>(kUnits); }
  static constexpr const char* prefix = "Sigmoid::backward";
};
template <>
struct Make<Rectifier<float>> {
  static Rectifier<float> make(Generator&) { return Rectifier<float>(kUnits); }
  static constexpr const char* prefix = "Rectifier::backward";
};
template <>
struct Make<Dropout<float>> {
  static Dropout<float> make(Generator&) { return Dropout<float>(kUnits, 0.5f); }
  static constexpr const char* prefix = "Dropout::backward";
};
template <>
struct Make<NoisySigmoid<float>> {
  static NoisySigmoid<float> make(Generator&) { return NoisySigmoid<float>(kUnits, {.noise_std = 1.0f}); }
  static constexpr const char* prefix = "NoisySigmoid::backward";
};
template <>
struct Make<NoisyRectifier<float>> {
  static NoisyRectifier<float> make(Generator&) { return NoisyRectifier<float>(kUnits, {}, "gater.nr"); }
  static constexpr const char* prefix = "NoisyRectifier::backward ('gater.nr')";
};
template <>
struct Make<StochasticTimesSmooth<float>> {
  static StochasticTimesSmooth<float> make(Generator&) { return StochasticTimesSmooth<float>(kUnits); }
  static constexpr const char* prefix = "StochasticTimesSmooth::backward ('sts')";
};
template <>
struct Make<StochasticBinary<float>> {
  static StochasticBinary<float> make(Generator&) { return StochasticBinary<float>(kUnits, {}, "gater.sbn"); }
  static constexpr const char* prefix = "StochasticBinary::backward ('gater.sbn')";
};
template <>
struct Make<StraightThrough<float>> {
  static StraightThrough<float> make(Generator&) { return StraightThrough<float>(kUnits); }
  static constexpr const char* prefix = "StraightThrough::backward ('straight_through')";
};
template <>
struct Make<GumbelSigmoid<float>> {
  static GumbelSigmoid<float> make(Generator&) { return GumbelSigmoid<float>(kUnits); }
  static constexpr const char* prefix = "GumbelSigmoid::backward ('gumbel_sigmoid')";
};
template <>
struct Make<GumbelSigmoidStraightThrough<float>> {
  static GumbelSigmoidStraightThrough<float> make(Generator&) { return GumbelSigmoidStraightThrough<float>(kUnits); }
  static constexpr const char* prefix = "GumbelSigmoidStraightThrough::backward ('gumbel_sigmoid_st')";
};
template <>
struct Make<SlopeAnnealedStraightThrough<float>> {
  static SlopeAnnealedStraightThrough<float> make(Generator&) { return SlopeAnnealedStraightThrough<float>(kUnits); }
  static constexpr const char* prefix = "SlopeAnnealedStraightThrough::backward ('slope_st')";
};
using Chain = Sequential<Linear<float>, Tanh<float>, Dropout<float>>;
template <>
struct Make<Chain> {
  static Chain make(Generator& rng) {
    return Chain(Linear<float>(kUnits, kUnits, rng), Tanh<float>(kUnits), Dropout<float>(kUnits, 0.25f));
  }
  static constexpr const char* prefix = "Sequential::backward";
};
using Gater = Sequential<Linear<float>, StraightThrough<float>>;
template <>
struct Make<GatedLayer<Gater>> {
  static GatedLayer<Gater> make(Generator& rng) {
    return GatedLayer<Gater>(Gater(Linear<float>(kUnits, kUnits, rng, "gater"), StraightThrough<float>(kUnits)),
                             Linear<float>(kUnits, kUnits, rng), "layer1");
  }
  static constexpr const char* prefix = "GatedLayer::backward ('layer1')";
};

constexpr const char* kNeedsTrainingForward =
    ": needs a forward in Mode::train first (call forward with a training Context)";

}  // namespace

TEMPLATE_TEST_CASE("Every layer refuses a backward that does not follow a training forward", "[robustness]",
                   Linear<float>, Tanh<float>, Sigmoid<float>, Rectifier<float>, Dropout<float>,
                   NoisySigmoid<float>, NoisyRectifier<float>, StochasticTimesSmooth<float>,
                   StochasticBinary<float>, StraightThrough<float>, GumbelSigmoid<float>,
                   GumbelSigmoidStraightThrough<float>, SlopeAnnealedStraightThrough<float>, Chain,
                   GatedLayer<Gater>) {
  Generator rng(21);
  TestType layer = Make<TestType>::make(rng);
  const std::string message = std::string(Make<TestType>::prefix) + kNeedsTrainingForward;
  Context<float> train(Mode::train, rng);
  train.example_loss = RowVector<float>::Ones(3);  // for SBN
  Context<float> eval(Mode::eval);
  const Matrix<float> x = test::random_matrix<float>(kUnits, 3, 5);
  const Matrix<float> dy = Matrix<float>::Ones(kUnits, 3);

  // Before any forward (it used to report a shape mismatch).
  REQUIRE_THROWS_MESSAGE(layer.backward(dy, train), message);
  // After a training forward: fine, and repeatable.
  layer.forward(x, train);
  CHECK_NOTHROW(layer.backward(dy, train));
  // After a training forward then an evaluation forward (it used to use the stale training input).
  layer.forward(x, eval);
  REQUIRE_THROWS_MESSAGE(layer.backward(dy, train), message);
  // After a training forward then a forward that threw.
  layer.forward(x, train);
  CHECK_THROWS(layer.forward(Matrix<float>::Zero(kUnits + 1, 3), train));
  REQUIRE_THROWS_MESSAGE(layer.backward(dy, train), message);
  // set_input_gradient(false) does not bypass the check (a chain may skip its leading layers' backward).
  if constexpr (OptionalInputGradient<TestType>) {
    layer.set_input_gradient(false);
    layer.forward(x, eval);
    REQUIRE_THROWS_MESSAGE(layer.backward(dy, train), message);
  }
}

TEST_CASE("The loss refuses a backward that does not follow a training forward", "[robustness]") {
  SoftmaxCrossEntropy<float> loss(3);
  const std::vector<int> labels{0, 2};
  const Matrix<float> logits = Matrix<float>::Zero(3, 2);
  const char* message = "SoftmaxCrossEntropy::backward: needs a forward in Mode::train first";
  REQUIRE_THROWS_MESSAGE(loss.backward(), message);
  Context<float> train;
  loss.forward(logits, labels, train);
  CHECK_NOTHROW(loss.backward());
  Context<float> eval(Mode::eval);
  loss.forward(logits, labels, eval);
  REQUIRE_THROWS_MESSAGE(loss.backward(), message);
}

// ---- A NaN reaching a gate from inside the network ----

TEMPLATE_TEST_CASE("Every gate and elementwise layer refuses a non-finite pre-activation, naming itself",
                   "[robustness]", Tanh<float>, Sigmoid<float>, Rectifier<float>, Dropout<float>,
                   NoisySigmoid<float>, NoisyRectifier<float>, StochasticTimesSmooth<float>,
                   StochasticBinary<float>, StraightThrough<float>, GumbelSigmoid<float>,
                   GumbelSigmoidStraightThrough<float>, SlopeAnnealedStraightThrough<float>) {
  Generator rng(22);
  TestType layer = Make<TestType>::make(rng);
  std::string forward = Make<TestType>::prefix;
  forward.replace(forward.find("::backward"), 10, "::forward");
  const char* kind = Gate<TestType> ? ": non-finite pre-activation " : ": non-finite input ";
  for (const Mode mode : {Mode::train, Mode::eval})
    for (const float bad : {kNaN, kInf, -kInf}) {
      CAPTURE(mode == Mode::train, bad);
      Context<float> ctx(mode, rng);
      Matrix<float> a = Matrix<float>::Zero(kUnits, 3);
      a(2, 1) = bad;
      REQUIRE_THROWS_MESSAGE(layer.forward(a, ctx), forward + kind);
      REQUIRE_THROWS_MESSAGE(layer.forward(a, ctx),
                             "(NaN or Inf) at feature 2 of example 1: a diverged weight upstream?");
    }
}

TEST_CASE("A diverged weight stops training at the gate it feeds, before any gradient or step", "[robustness]") {
  // The SBN gater of Sec. 5: a NaN weight makes the gate's pre-activations NaN. Without the check the gate
  // would close (1[u < NaN] is 0) and its estimator (h - p)(L - Lbar) would write NaN into every gradient.
  Generator rng(23);
  auto gater = Sequential(Linear<float>(4, 3, rng, "gater"), StochasticBinary<float>(3, {}, "gater.sbn"));
  gater.get<0>().weight().value(1, 2) = kNaN;
  Context<float> ctx(Mode::train, rng);
  REQUIRE_THROWS_MESSAGE(gater.forward(Matrix<float>::Ones(4, 5), ctx),
                         "StochasticBinary::forward ('gater.sbn'): non-finite pre-activation ");
  REQUIRE_THROWS_MESSAGE(gater.forward(Matrix<float>::Ones(4, 5), ctx),
                         "nan (NaN or Inf) at feature 1 of example 0: a diverged weight upstream?");
  for (Parameter<float>* p : gater.parameters()) CHECK(p->grad.isZero(0));
}
