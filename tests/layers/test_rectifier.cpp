// Tests for include/stoch/layers/rectifier.hpp: forward is max(0, a), backward matches central finite
// differences away from the kink and passes the gradient exactly where the output is positive.
#include "stoch/layers/rectifier.hpp"

#include "layers/kink_checks.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

// Its zeros have zero derivative, so a gated layer may skip the expert there in training (Sec. 5).
static_assert(Gate<Rectifier<float>> && skips_in_training<Rectifier<float>>);

TEMPLATE_TEST_CASE("Rectifier forward is max(0, a) and backward masks by the sign", "[rectifier]", float, double) {
  using T = TestType;
  Rectifier<T> layer(2);
  test::check_at_kink_input(layer, {T(0), T(0), T(3), T(2), T(0), T(1e-30)},
                            {T(5), T(6), T(7), T(8), T(9), T(10)},
                            {T(0), T(0), T(7), T(8), T(0), T(10)});
}

TEST_CASE("Rectifier backward matches central finite differences away from the kink", "[rectifier]") {
  Rectifier<double> layer(6);
  Matrix<double> x = test::random_matrix<double>(6, 4, 3);
  x = (x.array() >= 0).select(x.array() + 0.1, x.array() - 0.1).matrix();  // keep every entry at least 0.1 from 0
  const auto r = test::check_gradients(layer, x);
  CHECK(r.finite);
  CHECK(r.max_input_error < 1e-8);
}
