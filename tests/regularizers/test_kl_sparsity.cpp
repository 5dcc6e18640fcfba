#include "stoch/regularizers/kl_sparsity.hpp"

#include <algorithm>
#include <cmath>

#include "stoch/core/math.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

Matrix<double> sigmoid_of(const Matrix<double>& a) { return sigmoid(a.array()).matrix(); }

}  // namespace

TEMPLATE_TEST_CASE("KlSparsity value is Eq. 14 on the batch-mean activations", "[kl_sparsity]", float, double) {
  using T = TestType;
  Matrix<double> p_exact(2, 4);
  p_exact << 0.1, 0.3, 0.2, 0.2,  // pbar = 0.2
      0.9, 0.7, 0.5, 0.5;         // pbar = 0.65
  const Matrix<T> p = p_exact.cast<T>();
  const KlSparsity<T> kl{.target = T(0.25), .strength = T(0.5)};
  const double expected = -0.5 * (0.25 * std::log(0.2) + 0.75 * std::log(0.8) +  //
                                   0.25 * std::log(0.65) + 0.75 * std::log(0.35));
  CHECK(static_cast<double>(kl.value(p)) == Approx(expected).epsilon(1e-5));
  // The minimum over pbar is at pbar = s: moving the mean either way raises the penalty.
  const Matrix<T> at_target = Matrix<T>::Constant(2, 4, T(0.25));
  CHECK(kl.value(at_target) < kl.value(Matrix<T>::Constant(2, 4, T(0.24))));
  CHECK(kl.value(at_target) < kl.value(Matrix<T>::Constant(2, 4, T(0.26))));
}

TEST_CASE("KlSparsity gradients match central finite differences", "[kl_sparsity]") {
  const KlSparsity<double> kl{.target = 0.1, .strength = 0.7};
  const Matrix<double> a = test::random_matrix<double>(5, 6, 21, 1.5);
  const Matrix<double> p = sigmoid_of(a);
  const double eps = 1e-6;

  // Through p = sigm(a); `add` must accumulate onto what is already there.
  const Matrix<double> offset = test::random_matrix<double>(5, 6, 22);
  Matrix<double> da = offset;
  kl.add_gradient_wrt_pre_activation(p, da);
  da -= offset;
  Matrix<double> dp = offset;
  kl.add_gradient_wrt_activation(p, dp);
  dp -= offset;

  double max_error_a = 0, max_error_p = 0;
  Matrix<double> probe = a, probe_p = p;
  for (Index k = 0; k < a.size(); ++k) {
    probe.data()[k] = a.data()[k] + eps;
    const double up = kl.value(sigmoid_of(probe));
    probe.data()[k] = a.data()[k] - eps;
    const double down = kl.value(sigmoid_of(probe));
    probe.data()[k] = a.data()[k];
    max_error_a = std::max(max_error_a, std::abs(da.data()[k] - (up - down) / (2 * eps)));

    probe_p.data()[k] = p.data()[k] + eps;
    const double up_p = kl.value(probe_p);
    probe_p.data()[k] = p.data()[k] - eps;
    const double down_p = kl.value(probe_p);
    probe_p.data()[k] = p.data()[k];
    max_error_p = std::max(max_error_p, std::abs(dp.data()[k] - (up_p - down_p) / (2 * eps)));
  }
  CHECK(da.cwiseAbs().maxCoeff() > 1e-3);  // the check is not vacuous
  CHECK(max_error_a < 1e-8);
  CHECK(max_error_p < 1e-8);
}

TEST_CASE("Gradient descent on the KL penalty alone moves mean activations to the target", "[kl_sparsity]") {
  const KlSparsity<double> kl{.target = 0.1, .strength = 1.0};
  // Units start far from s on both sides: some mostly on, some mostly off.
  Matrix<double> a = test::random_matrix<double>(12, 32, 5, 2.0);
  for (Index i = 0; i < a.rows(); ++i) a.row(i).array() += (i % 2 == 0 ? 2.0 : -4.0);
  auto distance = [&] { return (sigmoid_of(a).rowwise().mean().array() - 0.1).abs().maxCoeff(); };
  const double start = distance();
  REQUIRE(start > 0.3);

  Matrix<double> da(a.rows(), a.cols());
  double previous_value = kl.value(sigmoid_of(a));
  for (int step = 0; step < 3000; ++step) {
    da.setZero();
    kl.add_gradient_wrt_pre_activation(sigmoid_of(a), da);
    a -= 20.0 * da;  // the per-entry gradient carries a 1/batch factor
    const double value = kl.value(sigmoid_of(a));
    REQUIRE(value <= previous_value + 1e-12);  // plain descent on a smooth penalty never goes up
    previous_value = value;
  }
  CHECK(distance() < 1e-3);
}

TEMPLATE_TEST_CASE("KlSparsity stays finite when a unit saturates", "[kl_sparsity]", float, double) {
  using T = TestType;
  const KlSparsity<T> kl{};
  Matrix<T> p(2, 3);
  p << 0, 0, 0, 1, 1, 1;
  CHECK(std::isfinite(kl.value(p)));
  Matrix<T> dp = Matrix<T>::Zero(2, 3);
  kl.add_gradient_wrt_activation(p, dp);
  CHECK(dp.allFinite());
  CHECK(dp(0, 0) < 0);  // an all-off unit is pushed up, an all-on unit down
  CHECK(dp(1, 0) > 0);
}

TEST_CASE("KlSparsity rejects bad options and shapes, naming the problem", "[kl_sparsity]") {
  const Matrix<float> p = Matrix<float>::Constant(3, 4, 0.5f);
  Matrix<float> wrong(3, 5);
  REQUIRE_THROWS_MESSAGE((KlSparsity<float>{.target = 0.0f}.value(p)), "target");
  REQUIRE_THROWS_MESSAGE((KlSparsity<float>{.target = 1.5f}.value(p)), "target");
  REQUIRE_THROWS_MESSAGE((KlSparsity<float>{.strength = -1.0f}.value(p)), "strength must be >= 0");
  REQUIRE_THROWS_MESSAGE(KlSparsity<float>{}.add_gradient_wrt_pre_activation(p, wrong), "shape mismatch");
  REQUIRE_THROWS_MESSAGE(KlSparsity<float>{}.value(Matrix<float>(3, 0)), "empty batch");
}

// The means are summed column by column in blocks of units (contiguous loads), in the order of Eigen's row
// mean: the penalty and both gradients are bit for bit those of the row-by-row definition, so training runs
// made before the blocked sums reproduce exactly. Shapes straddle the 256-unit blocks; views with an outer
// stride (a block of a larger matrix) and a saturated unit (its mean clamped) are included.
TEMPLATE_TEST_CASE("KlSparsity's blocked means give exactly the row-by-row results", "[kl_sparsity]", float, double) {
  using T = TestType;
  const KlSparsity<T> kl{.target = T(0.1), .strength = T(0.003)};
  for (const Index units : {1, 7, 255, 256, 257, 2000})
    for (const Index batch : {1, 2, 32, 33}) {
      CAPTURE(units, batch);
      const auto seed = static_cast<std::uint64_t>(100 + units + batch);
      Matrix<T> source = test::random_matrix<double>(units + 3, batch + 1, seed, 0.5)
                             .array().abs().min(1.0).template cast<T>().matrix();
      source.row(1 + units / 2).setZero();  // a unit off for the whole batch: its mean is clamped
      const MatrixCRef<T> p(source.block(1, 0, units, batch));  // a view with an outer stride

      T expected_value = T(0);
      Matrix<T> expected_dp = Matrix<T>::Constant(units, batch, T(0.25));
      Matrix<T> expected_da = Matrix<T>::Constant(units, batch, T(-0.5));
      const T inv_batch = T(1) / static_cast<T>(batch);
      for (Index i = 0; i < units; ++i) {
        const T pbar = std::clamp(p.row(i).mean(), kl.mean_clamp, T(1) - kl.mean_clamp);
        expected_value += kl.target * std::log(pbar) + (T(1) - kl.target) * std::log1p(-pbar);
        const T scale = kl.gradient_wrt_mean(pbar) * inv_batch;
        expected_dp.row(i).array() += scale;
        expected_da.row(i).array() += scale * p.row(i).array() * (T(1) - p.row(i).array());
      }
      expected_value *= -kl.strength;

      Matrix<T> dp = Matrix<T>::Constant(units, batch, T(0.25));
      Matrix<T> da = Matrix<T>::Constant(units, batch, T(-0.5));
      kl.add_gradient_wrt_activation(p, dp);
      kl.add_gradient_wrt_pre_activation(p, da);
      CHECK(kl.value(p) == expected_value);
      CHECK(dp == expected_dp);
      CHECK(da == expected_da);
    }
}
