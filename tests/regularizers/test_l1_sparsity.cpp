#include "stoch/regularizers/l1_sparsity.hpp"

#include <cmath>
#include <cstdio>

#include "stoch/layers/linear.hpp"
#include "stoch/layers/rectifier.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("AdaptiveL1 value and gradient are Eq. 15 on batch means", "[l1_sparsity]", float, double) {
  using T = TestType;
  AdaptiveL1<T> l1(T(0.1), T(0.5));
  Matrix<T> h(2, 4);
  h << 0, 2, 0, 2,  // mean 1
      0, 0, 0, T(0.4);  // mean 0.1
  CHECK(l1.value(h) == Approx(0.5 * 1.1));
  Matrix<T> dh = Matrix<T>::Constant(2, 4, T(1));
  l1.add_gradient_wrt_output(h, dh);  // accumulates
  Matrix<T> expected(2, 4);
  expected << 1, 1.125, 1, 1.125, 1, 1, 1, 1.125;
  CHECK(dh.isApprox(expected));
  CHECK(AdaptiveL1<T>::effective_density(h) == Approx(3.0 / 8.0));
}

TEMPLATE_TEST_CASE("AdaptiveL1 adapts lambda by the factor outside the band only", "[l1_sparsity]", float, double) {
  using T = TestType;
  AdaptiveL1<T> l1(T(0.1), T(2), T(1.5), T(0.01));
  l1.adapt(T(0.105));  // inside [0.09, 0.11]: unchanged
  CHECK(l1.lambda() == T(2));
  l1.adapt(T(0.2));
  CHECK(l1.lambda() == Approx(3.0));
  l1.adapt(T(0.05));
  l1.adapt(T(0.05));
  CHECK(l1.lambda() == Approx(2.0 / 1.5));
  // lambda is saved state: a 1 x 1 non-trainable Parameter whose value is lambda itself.
  CHECK_FALSE(l1.state().trainable);
  CHECK(l1.state().value(0, 0) == l1.lambda());
  l1.state().value(0, 0) = T(7);  // what load_model does
  CHECK(l1.lambda() == T(7));
  // A zero lambda can still be raised, and lowering never reaches zero.
  AdaptiveL1<T> zero(T(0.1), T(0));
  zero.adapt(T(0.5));
  CHECK(zero.lambda() > T(0));
  for (int i = 0; i < 20000; ++i) zero.adapt(T(0));
  CHECK(zero.lambda() > T(0));
}

TEST_CASE("AdaptiveL1 rejects bad options naming the option", "[l1_sparsity]") {
  REQUIRE_THROWS_MESSAGE(AdaptiveL1<float>(0.0f, 1.0f), "target");
  REQUIRE_THROWS_MESSAGE(AdaptiveL1<float>(0.1f, -1.0f), "initial_lambda must be >= 0");
  REQUIRE_THROWS_MESSAGE(AdaptiveL1<float>(0.1f, 1.0f, 1.0f), "adapt_factor must be > 1");
  REQUIRE_THROWS_MESSAGE(AdaptiveL1<float>(0.1f, 1.0f, 1.01f, -0.1f), "band must be >= 0");
  AdaptiveL1<float> l1(0.1f, 1.0f);
  REQUIRE_THROWS_MESSAGE(l1.adapt(1.5f), "effective density must be in [0, 1]");
  Matrix<float> dh(3, 2);
  REQUIRE_THROWS_MESSAGE(l1.add_gradient_wrt_output(Matrix<float>::Zero(3, 4), dh), "shape mismatch");
}

// App. A.1 on a toy rectifier gater: h = max(0, W x + b) trained by full-batch gradient descent on a squared error
// towards a teacher's rectified linear outputs that are non-zero 60% of the time (the loss that wants activity),
// plus the adaptive L1 penalty. Since the solution is roughly h = max(0, t - lambda), the density falls smoothly
// as lambda grows; the rule must bring it into [s - 0.01, s + 0.01] and keep it there.
//
// The rule only acts once s_e has left the band, so "keeps it there" means: after settling, every excursion is
// corrected at once (at most 2 consecutive batches out of band), overshoots the band by less than 0.001 (10 of the
// 10240 gate outputs; one step of drift is about 1 output), and at least 99% of batches are in the band.
TEST_CASE("Adaptive lambda brings a toy rectifier gater's density to the target and keeps it", "[l1_sparsity]") {
  const Index inputs = 8, units = 40, batch = 256;
  const double s = 0.1, band = 0.01, lr = 1.0;
  Generator rng(2013);
  Linear<double> gater(inputs, units, rng);
  Rectifier<double> rectifier(units);
  AdaptiveL1<double> l1(s, 1e-3, 1.01, band);
  const Matrix<double> x = test::random_matrix<double>(inputs, batch, 3);
  Matrix<double> teacher = test::random_matrix<double>(units, inputs, 4, 1.0 / std::sqrt(double(inputs))) * x;
  teacher.array() += 0.25;  // P(t > 0) = P(N(0, 1) > -0.25) = 0.6
  const Matrix<double> target = teacher.cwiseMax(0.0);
  Context<double> ctx(Mode::train, rng);

  Matrix<double> dh(units, batch);
  const int steps = 4000, settle = 1500;
  double first_density = -1, worst = 0;
  int first_in_band = -1, out_of_band = 0, run = 0, longest_run = 0;
  for (int step = 0; step < steps; ++step) {
    const Matrix<double>& h = rectifier.forward(gater.forward(x, ctx), ctx);
    const double density = AdaptiveL1<double>::effective_density(h);
    const double miss = std::abs(density - s);
    if (step == 0) first_density = density;
    if (first_in_band < 0 && miss <= band) first_in_band = step;
    if (step >= settle) {
      worst = std::max(worst, miss);
      run = miss > band ? run + 1 : 0;
      out_of_band += miss > band;
      longest_run = std::max(longest_run, run);
    }
    dh = (h - target) / static_cast<double>(batch);
    l1.add_gradient_wrt_output(h, dh);
    for (Parameter<double>* p : gater.parameters()) p->grad.setZero();
    gater.backward(rectifier.backward(dh, ctx), ctx);
    for (Parameter<double>* p : gater.parameters()) p->value -= lr * p->grad;
    l1.adapt(density);
  }
  std::printf("toy gater: density %.4f at start, first in band at step %d; steps %d-%d: max |s_e - s| = %.5f, "
              "%d batches out of band (longest run %d); final lambda %.4f\n",
              first_density, first_in_band, settle, steps, worst, out_of_band, longest_run, l1.lambda());
  CHECK(first_density > 0.3);
  CHECK(first_in_band >= 0);
  CHECK(first_in_band < settle);
  CHECK(worst < band + 0.001);
  CHECK(longest_run <= 2);
  CHECK(out_of_band <= (steps - settle) / 100);
}
