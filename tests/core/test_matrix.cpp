// Tests for include/stoch/core/matrix.hpp: the conventions every layer relies on — `features x batch`,
// column-major, one example per contiguous column — and which views MatrixCRef / MatrixRef take without a
// copy (a batch of whole columns, the top rows of a padded buffer) and which they copy (a transpose).
#include "stoch/core/matrix.hpp"

#include <type_traits>

#include "support/catch.hpp"

using namespace stoch;

namespace {
template <class T>
const T* address_seen_by(const MatrixCRef<T>& view) {
  return view.data();
}
template <class T>
Index outer_stride_seen_by(const MatrixCRef<T>& view) {
  return view.outerStride();
}
}  // namespace

TEMPLATE_TEST_CASE("Matrix is column-major: each example is one contiguous column", "[matrix]", float, double) {
  using T = TestType;
  STATIC_REQUIRE_FALSE(Matrix<T>::IsRowMajor);
  STATIC_REQUIRE(std::is_same_v<typename Matrix<T>::Scalar, T>);
  Matrix<T> x(3, 4);
  x.setZero();
  CHECK(x.col(2).data() == x.data() + 2 * 3);
  CHECK(&x(1, 2) == x.col(2).data() + 1);
  STATIC_REQUIRE(Vector<T>::ColsAtCompileTime == 1);
  STATIC_REQUIRE(RowVector<T>::RowsAtCompileTime == 1);
}

TEMPLATE_TEST_CASE("MatrixCRef views a batch of whole columns and a padded buffer's top rows without a copy",
                   "[matrix]", float, double) {
  using T = TestType;
  Matrix<T> data = Matrix<T>::Random(5, 10);
  // A minibatch: columns 3..6 of the data set.
  CHECK(address_seen_by<T>(data.middleCols(3, 4)) == data.col(3).data());
  // The kernels' padded copies: `in` rows of a `stride x batch` buffer (outer stride kept).
  CHECK(address_seen_by<T>(data.topRows(3)) == data.data());
  CHECK(outer_stride_seen_by<T>(data.topRows(3)) == 5);
  // A transpose is not column-major storage of the same data: Eigen binds a temporary copy, which is
  // why the layers take `features x batch` and never transpose their inputs.
  const Matrix<T> square = Matrix<T>::Random(4, 4);
  CHECK(address_seen_by<T>(square.transpose()) != square.data());
}

TEMPLATE_TEST_CASE("MatrixRef writes through to the caller's storage", "[matrix]", float, double) {
  using T = TestType;
  Matrix<T> out = Matrix<T>::Zero(2, 6);
  auto fill = [](MatrixRef<T> view) { view.setConstant(T(7)); };
  fill(out.middleCols(2, 3));
  CHECK(out.col(1).isZero());
  CHECK((out.middleCols(2, 3).array() == T(7)).all());
  CHECK(out.col(5).isZero());
}
