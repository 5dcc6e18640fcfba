#include "stoch/optim/parameter_average.hpp"

#include <limits>
#include <vector>

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

/// The average of `iterates` by the definition r_t = min(decay, 1 - 1/t), in double.
double reference_average(const std::vector<double>& iterates, double decay) {
  double average = 0;
  for (std::size_t t = 1; t <= iterates.size(); ++t) {
    const double keep = std::min(decay, 1.0 - 1.0 / static_cast<double>(t));
    average = keep * average + (1 - keep) * iterates[t - 1];
  }
  return average;
}

}  // namespace

TEMPLATE_TEST_CASE("ParameterAverage is the running mean, then an exponential average", "[average]", float,
                   double) {
  using T = TestType;
  Parameter<T> w("w", 1, 1);
  ParameterAverage<T> average({&w}, T(0.75));  // 1 / (1 - 0.75) = 4: the plain mean for the first 4 steps
  const std::vector<double> iterates = {1, 2, 3, 6, 10, -2, 4};
  std::vector<double> seen;
  for (const double v : iterates) {
    w.value(0, 0) = static_cast<T>(v);
    average.update();
    seen.push_back(v);
    average.swap_in();
    CHECK(w.value(0, 0) == Approx(reference_average(seen, 0.75)).epsilon(1e-6));
    average.swap_out();
    CHECK(w.value(0, 0) == static_cast<T>(v));  // the trained value is back, bit for bit
  }
  CHECK(average.steps() == iterates.size());
  // The first 4 steps: the mean 3; then 0.75 * 3 + 0.25 * 10 = 4.75, and so on.
  CHECK(reference_average({1, 2, 3, 6}, 0.75) == Approx(3.0));
  CHECK(reference_average({1, 2, 3, 6, 10}, 0.75) == Approx(4.75));
}

TEMPLATE_TEST_CASE("ParameterAverage sampling every k-th step averages those samples over the same window",
                   "[average]", float, double) {
  using T = TestType;
  Parameter<T> w("w", 1, 1);
  // decay 0.5 per step, every 2: r_n = min(0.25, 1 - 1/n) on the values of steps 2, 4, 6, ...
  ParameterAverage<T> average({&w}, T(0.5), 2);
  const std::vector<double> iterates = {1, 2, 3, 6, 10, -2, 4, 8};
  std::vector<double> samples;
  for (std::size_t t = 1; t <= iterates.size(); ++t) {
    w.value(0, 0) = static_cast<T>(iterates[t - 1]);
    average.update();
    if (t % 2 == 0) samples.push_back(iterates[t - 1]);
    if (samples.empty()) continue;
    average.swap_in();
    CHECK(w.value(0, 0) == Approx(reference_average(samples, 0.25)).epsilon(1e-6));  // unchanged on odd steps
    average.swap_out();
  }
  CHECK(average.every() == 2);
  // A window of 1 / (1 - 0.5) = 2 steps is one sample: r_2 = min(0.25, 1/2) = 0.25 already.
  CHECK(reference_average({2, 6}, 0.25) == Approx(0.25 * 2 + 0.75 * 6));
  CHECK(reference_average({2, 6, -2}, 0.25) == Approx(0.25 * 5 + 0.75 * -2));
}

TEMPLATE_TEST_CASE("ParameterAverage leaves non-trainable state alone and checkpoints exactly", "[average]",
                   float, double) {
  using T = TestType;
  Parameter<T> w("w", 3, 2), b("b", 3, 1), threshold("t", 1, 1, /*trainable=*/false);
  threshold.value(0, 0) = T(0.25);
  ParameterAverage<T> uninterrupted({&w, &b, &threshold}, T(0.9));
  REQUIRE(uninterrupted.state().size() == 2);
  CHECK(uninterrupted.state()[0]->name == "average/w");
  CHECK_FALSE(uninterrupted.state()[0]->trainable);

  auto step = [&](int s) {
    w.value = test::random_matrix<T>(3, 2, 100 + static_cast<std::uint64_t>(s));
    b.value = test::random_matrix<T>(3, 1, 200 + static_cast<std::uint64_t>(s));
    threshold.value(0, 0) = T(s);
  };
  ParameterAverage<T> resumed({&w, &b, &threshold}, T(0.9));
  for (int s = 0; s < 30; ++s) {
    step(s);
    uninterrupted.update();
    if (s == 19) {  // "checkpoint" after 20 steps: copy the state into a fresh average, as load_model would
      for (std::size_t k = 0; k < 2; ++k) resumed.state()[k]->value = uninterrupted.state()[k]->value;
      resumed.set_steps(uninterrupted.steps());
    }
    if (s > 19) resumed.update();
  }
  for (std::size_t k = 0; k < 2; ++k) CHECK(resumed.state()[k]->value == uninterrupted.state()[k]->value);

  {
    ScopedAverage<T> scope(&uninterrupted);
    CHECK(uninterrupted.swapped_in());
    CHECK(threshold.value(0, 0) == T(29));  // not averaged
  }
  CHECK_FALSE(uninterrupted.swapped_in());
  CHECK(w.value == test::random_matrix<T>(3, 2, 129));
  ScopedAverage<T> none(nullptr);  // averaging off: nothing to do
}

TEST_CASE("ParameterAverage refuses bad input with a message that names it", "[average]") {
  Parameter<float> w("w", 2, 2);
  CHECK_THROWS_WITH(ParameterAverage<float>({&w}, 1.0f), Catch::Contains("decay must be in [0, 1)"));
  CHECK_THROWS_WITH(ParameterAverage<float>({&w}, -0.1f), Catch::Contains("decay"));
  CHECK_THROWS_WITH(ParameterAverage<float>({&w, nullptr}, 0.5f), Catch::Contains("parameter 1 is a null pointer"));
  CHECK_THROWS_WITH(ParameterAverage<float>({&w}, 0.5f, 0), Catch::Contains("every must be at least 1"));

  ParameterAverage<float> average({&w}, 0.5f);
  average.swap_in();
  CHECK_THROWS_WITH(average.update(), Catch::Contains("swapped in"));
  CHECK_THROWS_WITH(average.swap_in(), Catch::Contains("swap_out() first"));
  average.swap_out();
  CHECK_THROWS_WITH(average.swap_out(), Catch::Contains("not swapped in"));

  w.value.resize(3, 2);  // the model changed shape behind the average's back
  CHECK_THROWS_WITH(average.update(), Catch::Contains("'w' is 3 x 2 but its average is 2 x 2"));
}

TEST_CASE("ParameterAverage refuses a non-finite value, naming it, and keeps its averages finite", "[average]") {
  // Large enough for several chunks of the update (2048 floats each): the bad entry is in the third.
  Parameter<float> w("hidden.W", 3000, 2);
  w.value = test::random_matrix<float>(3000, 2, 11);
  ParameterAverage<float> average({&w}, 0.9f);
  average.update();
  const Matrix<float> before = average.state()[0]->value;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    CAPTURE(bad);
    w.value(2500, 1) = bad;  // entry 5500
    CHECK_THROWS_WITH(average.update(),
                      Catch::Contains("ParameterAverage::update: parameter 'hidden.W': non-finite value") &&
                          Catch::Contains("(NaN or Inf) at entry 5500 of 3000 x 2"));
    CHECK(average.state()[0]->value.allFinite());
    CHECK(average.state()[0]->value.col(1).tail(1000) == before.col(1).tail(1000));  // its chunk: untouched
    // swap_in therefore never puts a NaN into the parameters.
    w.value(2500, 1) = 0.0f;
    average.swap_in();
    CHECK(w.value.allFinite());
    average.swap_out();
  }
}
