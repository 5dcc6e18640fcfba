// Tests for include/stoch/detail/zero_skipping_product.hpp: the non-zero rows listed column by column, and the
// product over them equal to the dense W x + b for every block shape (1 to 4 packets and more, with and
// without a partial last packet), every density, float and double.
#include "stoch/detail/zero_skipping_product.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

/// The largest difference between zero_skipping_product and the dense W x + b (infinity on a wrong shape).
template <class T>
double distance_from_dense(const MatrixCRef<T>& w, const Matrix<T>& bias, const Matrix<T>& x) {
  internal::NonzeroRows nonzero;
  nonzero.build<T>(x);
  Matrix<T> y;
  internal::zero_skipping_product<T>(w, bias.data(), x, nonzero, y);
  Matrix<T> expected = w * x;
  expected.colwise() += bias.col(0);
  if (y.rows() != expected.rows() || y.cols() != expected.cols()) return std::numeric_limits<double>::infinity();
  return static_cast<double>((y - expected).cwiseAbs().maxCoeff());
}

}  // namespace

TEMPLATE_TEST_CASE("NonzeroRows lists each column's non-zero rows, increasing (-0 is zero, NaN is not)",
                   "[zero_skipping]", float, double) {
  using T = TestType;
  for (const Index rows : {1, 15, 16, 17, 40}) {
    CAPTURE(rows);
    Matrix<T> x = test::exact_mask<T>(rows, 5, 0.3, static_cast<std::uint64_t>(rows));
    x(0, 1) = -T(0);
    x(rows - 1, 2) = std::numeric_limits<T>::quiet_NaN();
    internal::NonzeroRows nonzero;
    const Index count = nonzero.build<T>(x);
    Index expected_count = 0;
    for (Index b = 0; b < x.cols(); ++b) {
      std::vector<std::int32_t> expected;
      for (Index i = 0; i < rows; ++i)
        if (x(i, b) != T(0) || std::isnan(x(i, b))) expected.push_back(static_cast<std::int32_t>(i));
      const auto first = nonzero.rows.begin() + nonzero.offsets[static_cast<std::size_t>(b)];
      const auto last = nonzero.rows.begin() + nonzero.offsets[static_cast<std::size_t>(b) + 1];
      CHECK(std::vector<std::int32_t>(first, last) == expected);
      expected_count += static_cast<Index>(expected.size());
    }
    CHECK(count == expected_count);
  }
}

TEMPLATE_TEST_CASE("zero_skipping_product equals the dense W x + b", "[zero_skipping]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  std::uint64_t seed = 40;
  // out: one partial packet, exact packets, 1-4 packets with and without a tail, more than one block of 4.
  for (const Index out : {1, 3, 8, 10, 16, 17, 31, 33, 48, 64, 70, 129})
    for (const Index in : {1, 16, 37})
      for (const double density : {0.0, 0.1, 0.5, 1.0}) {
        CAPTURE(out, in, density);
        const Matrix<T> w = test::random_matrix<T>(out, in, ++seed);
        const Matrix<T> bias = test::random_matrix<T>(out, 1, ++seed);
        const Matrix<T> x = test::exact_mask<T>(in, 7, density, ++seed);
        CHECK(distance_from_dense<T>(w, bias, x) <= tolerance * (1.0 + static_cast<double>(in)));
      }
}

TEST_CASE("zero_skipping_product reads W through its outer stride (a block of a larger matrix)",
          "[zero_skipping]") {
  const Matrix<float> big = test::random_matrix<float>(30, 20, 3);
  const MatrixCRef<float> w = big.topRows(13);  // leading dimension 30, not 13
  const Matrix<float> bias = test::random_matrix<float>(13, 1, 4);
  const Matrix<float> x = test::exact_mask<float>(20, 4, 0.25, 5);
  CHECK(distance_from_dense<float>(w, bias, x) <= 1e-5);
}

TEST_CASE("NonzeroRows stops after the first column that takes the count above the limit", "[zero_skipping]") {
  const Matrix<float> x = Matrix<float>::Ones(40, 5);
  internal::NonzeroRows nonzero;
  CHECK(nonzero.build<float>(x, 50) == 80);   // columns 0 and 1, then stop
  CHECK(nonzero.build<float>(x, 200) == 200);  // never above: every column listed
  CHECK(nonzero.offsets.back() == 200);
  CHECK(nonzero.build<float>(x) == 200);
}
