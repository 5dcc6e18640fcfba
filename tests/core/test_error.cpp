// Tests for include/stoch/core/error.hpp: the shared checks name the problem, and the vectorised finite
// test (all_finite) agrees with std::isfinite wherever the bad entry sits (packet body or scalar tail).
#include "stoch/core/error.hpp"

#include <limits>

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("all_finite finds one Inf or NaN at any position and passes the largest finite values",
                   "[error]", float, double) {
  using T = TestType;
  using limits = std::numeric_limits<T>;
  // 37 x 3: 111 entries, not a multiple of any packet size, so some positions fall in the scalar tail.
  const Matrix<T> clean = test::random_matrix<T>(37, 3, 5);
  REQUIRE(internal::all_finite(clean));
  for (const T extreme : {limits::max(), limits::lowest(), limits::denorm_min(), T(-0.0)}) {
    Matrix<T> m = clean;
    m(36, 2) = extreme;
    m(0, 0) = extreme;
    CHECK(internal::all_finite(m));
  }
  for (const T bad : {limits::infinity(), -limits::infinity(), limits::quiet_NaN()}) {
    for (Index k = 0; k < clean.size(); ++k) {
      Matrix<T> m = clean;
      m.data()[k] = bad;
      if (internal::all_finite(m)) FAIL("missed " << bad << " at entry " << k);
    }
  }
  CHECK(internal::all_finite(Matrix<T>(0, 4)));
}

TEST_CASE("all_finite reads expressions and strided blocks", "[error]") {
  Matrix<double> m = test::random_matrix<double>(8, 6, 2);
  m(7, 5) = std::numeric_limits<double>::infinity();
  CHECK(internal::all_finite(m.topLeftCorner(7, 6)));  // a block with the outer stride of m
  CHECK_FALSE(internal::all_finite(m.bottomRows(2)));
  CHECK_FALSE(internal::all_finite(m.array() + 1.0));
  const MatrixCRef<double> ref(m.leftCols(5));
  CHECK(internal::all_finite(ref));
}

TEST_CASE("check_finite names the first non-finite entry by feature and example", "[error]") {
  Matrix<float> m = Matrix<float>::Zero(4, 3);
  m(2, 1) = std::numeric_limits<float>::quiet_NaN();
  m(3, 2) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(internal::check_finite("Layer::forward: input", m), Error);
  REQUIRE_THROWS_WITH(internal::check_finite("Layer::forward: input", m),
                      "Layer::forward: input: non-finite value nan (NaN or Inf) at feature 2 of example 1");
  m(2, 1) = 0.0f;
  REQUIRE_THROWS_WITH(internal::check_finite("x", m), STOCH_CONTAINS("at feature 3 of example 2"));
  m(3, 2) = 1e30f;
  CHECK_NOTHROW(internal::check_finite("x", m));
}

TEST_CASE("the shape checks name the caller, the expected and the actual shape", "[error]") {
  REQUIRE_THROWS_WITH(internal::check_rows("Linear::forward: input", 5, 32, 784),
                      "Linear::forward: input: shape mismatch, expected 784 rows (features) but got 5 x 32");
  REQUIRE_THROWS_WITH(internal::check_shape("Layer::backward: output gradient", 10, 31, 10, 32),
                      "Layer::backward: output gradient: shape mismatch, expected 10 x 32 but got 10 x 31");
  REQUIRE_THROWS_WITH(internal::check_batch("Layer::forward", 0), "Layer::forward: empty batch (0 columns)");
  CHECK_NOTHROW(internal::check_rows("x", 3, 2, 3));
  CHECK_NOTHROW(internal::check_shape("x", 3, 2, 3, 2));
  CHECK_NOTHROW(internal::check_batch("x", 1));
}

TEST_CASE("the range checks refuse the boundary and NaN, naming the value", "[error]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const double bad : {0.0, 1.0, -0.5, nan})
    REQUIRE_THROWS_WITH(internal::check_open_unit_interval("target", bad),
                        Catch::Matchers::StartsWith("target must be a probability in (0, 1), got"));
  CHECK_NOTHROW(internal::check_open_unit_interval("target", 0.1));
  for (const double bad : {0.0, -1.0, nan})
    REQUIRE_THROWS_WITH(internal::check_positive("rate", bad), Catch::Matchers::StartsWith("rate must be > 0, got"));
  for (const double bad : {-1e-12, nan})
    REQUIRE_THROWS_WITH(internal::check_non_negative("lambda", bad), Catch::Matchers::StartsWith("lambda must be >= 0, got"));
  CHECK_NOTHROW(internal::check_non_negative("lambda", 0.0));
}

TEST_CASE("where() gives every layer's message prefix: Class::method ('instance')", "[error]") {
  CHECK(internal::where("Linear", "backward", "gater.hidden") == "Linear::backward ('gater.hidden')");
  CHECK(internal::where("Tanh", "forward") == "Tanh::forward");
  CHECK(internal::where("GatedLayer", "", "layer1") == "GatedLayer ('layer1')");
  CHECK(internal::where("Dropout", "") == "Dropout");
}

TEST_CASE("TrainingForward lets backward run only after a completed training forward", "[error]") {
  internal::TrainingForward state;
  const char* message = "Tanh::backward: needs a forward in Mode::train first (call forward with a training Context)";
  REQUIRE_THROWS_WITH(state.require("Tanh::backward"), message);  // no forward yet
  state.forget();
  state.remember(true);
  CHECK_NOTHROW(state.require("Tanh::backward"));
  CHECK_NOTHROW(state.require("Tanh::backward"));  // backward may be repeated
  state.forget();  // a forward that starts, then throws
  REQUIRE_THROWS_WITH(state.require("Tanh::backward"), message);
  state.remember(false);  // an evaluation forward
  REQUIRE_THROWS_WITH(state.require("Tanh::backward"), message);
}

TEST_CASE("check_finite names the kind of value and adds the hint", "[error]") {
  Matrix<float> a = Matrix<float>::Zero(3, 2);
  a(1, 1) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(internal::check_finite("Gate::forward", a, "pre-activation", "a diverged weight upstream?"),
                      "Gate::forward: non-finite pre-activation inf (NaN or Inf) at feature 1 of example 1: a "
                      "diverged weight upstream?");
  REQUIRE_THROWS_WITH(internal::check_finite("Linear::forward: input", a),
                      "Linear::forward: input: non-finite value inf (NaN or Inf) at feature 1 of example 1");
}
