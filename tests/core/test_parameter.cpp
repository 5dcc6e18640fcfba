// Tests for include/stoch/core/parameter.hpp: set_unit_norms (the gate layer's initial norm in the MNIST
// example) on both storage orders, and its bad input; which parameters set_max_norm and set_weight_decay reach.
#include "stoch/core/parameter.hpp"

#include <cmath>
#include <limits>

#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

TEMPLATE_TEST_CASE("set_unit_norms gives every unit the norm and keeps its direction", "[parameter]", float, double) {
  using T = TestType;
  for (const FanIn fan_in : {FanIn::rows, FanIn::columns}) {
    Parameter<T> p("w", 7, 5);
    p.fan_in = fan_in;
    p.value = test::random_matrix<T>(7, 5, 11);
    const bool by_rows = fan_in == FanIn::rows;
    if (by_rows)  // one unit with no direction
      p.value.row(3).setZero();
    else
      p.value.col(2).setZero();
    const Matrix<T> before = p.value;
    set_unit_norms(p, T(2));
    const Index units = by_rows ? p.value.rows() : p.value.cols();
    for (Index u = 0; u < units; ++u) {
      const auto old_unit = by_rows ? Vector<T>(before.row(u).transpose()) : Vector<T>(before.col(u));
      const auto new_unit = by_rows ? Vector<T>(p.value.row(u).transpose()) : Vector<T>(p.value.col(u));
      if (old_unit.norm() == T(0)) {
        CHECK(new_unit.norm() == T(0));  // no direction: stays zero, no NaN
        continue;
      }
      CHECK(new_unit.norm() == Approx(2).epsilon(1e-5));
      // Same direction: new = (2 / |old|) old.
      CHECK((new_unit - old_unit * (T(2) / old_unit.norm())).norm() <= T(1e-5));
    }
  }
}

TEMPLATE_TEST_CASE("set_unit_norms on the block layout scales each unit of each block", "[parameter]", float, double) {
  using T = TestType;
  // 3 blocks of k = 4 units with 5 inputs: `(k in) x blocks`, unit jk + r = row r of block j's `k x 5` matrix.
  const Index k = 4, in = 5, blocks = 3;
  Parameter<T> p("expert.W", k * in, blocks);
  p.fan_in = FanIn::blocks;
  p.block = k;
  p.value = test::random_matrix<T>(k * in, blocks, 12);
  Eigen::Map<Matrix<T>>(p.value.col(1).data(), k, in).row(2).setZero();  // one unit with no direction
  const Matrix<T> before = p.value;
  set_unit_norms(p, T(2));
  for (Index j = 0; j < blocks; ++j)
    for (Index r = 0; r < k; ++r) {
      const Vector<T> old_unit = Eigen::Map<const Matrix<T>>(before.col(j).data(), k, in).row(r).transpose();
      const Vector<T> new_unit = Eigen::Map<const Matrix<T>>(p.value.col(j).data(), k, in).row(r).transpose();
      if (old_unit.norm() == T(0)) {
        CHECK(new_unit.norm() == T(0));
        continue;
      }
      CHECK(new_unit.norm() == Approx(2).epsilon(1e-5));
      CHECK((new_unit - old_unit * (T(2) / old_unit.norm())).norm() <= T(1e-5));
    }
  // A single block is still a weight matrix (max-norm and weight decay reach it).
  Parameter<T> one("expert.W", k * in, 1);
  one.fan_in = FanIn::blocks;
  one.block = k;
  set_max_norm<T>({&one}, T(1));
  CHECK(one.max_norm.has_value());
}

TEST_CASE("set_unit_norms refuses a negative or NaN norm, naming the parameter", "[parameter]") {
  Parameter<double> p("gater.gate.W", 3, 4);
  p.value.setOnes();
  REQUIRE_THROWS_MESSAGE(set_unit_norms(p, -1.0), "'gater.gate.W': norm must be >= 0");
  REQUIRE_THROWS_MESSAGE(set_unit_norms(p, std::nan("")), "norm must be >= 0");
  CHECK(p.value == Matrix<double>::Ones(3, 4));  // untouched
}

TEST_CASE("set_max_norm and set_weight_decay reach trainable weight matrices only", "[parameter]") {
  Parameter<float> w("linear.W", 3, 4), b("linear.b", 3, 1), state("gate.threshold", 2, 2, /*trainable=*/false);
  set_max_norm<float>({&w, &b, &state}, 2.0f);
  set_weight_decay<float>({&w, &b, &state}, 1e-4f);
  CHECK(w.max_norm == 2.0f);
  CHECK(w.weight_decay == 1e-4f);
  CHECK_FALSE(b.max_norm);  // biases are neither bounded nor decayed
  CHECK(b.weight_decay == 0.0f);
  CHECK_FALSE(state.max_norm);  // nor is layer state
  CHECK(state.weight_decay == 0.0f);

  REQUIRE_THROWS_MESSAGE(set_weight_decay<float>({&w}, -1.0f), "set_weight_decay: coefficient must be finite and >= 0");
  REQUIRE_THROWS_MESSAGE(set_weight_decay<float>({&w}, std::numeric_limits<float>::infinity()),
                         "set_weight_decay: coefficient must be finite");
  REQUIRE_THROWS_MESSAGE(set_weight_decay<float>({&w}, std::nanf("")), "set_weight_decay: coefficient");
  CHECK(w.weight_decay == 1e-4f);  // a refused value changes nothing
}
