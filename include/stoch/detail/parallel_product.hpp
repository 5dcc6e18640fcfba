// not part of the public API; included by the layers whose products are dense (Linear, GatedLayer).
//
// stoch — a dense product split over the threads (stoch::set_threads) so that its result does not depend on
// their number. Eigen's own parallel product splits the work by the thread count and its blocking of the depth
// changes with it, so its sums change in the last bits from one thread count to another; stoch defines
// EIGEN_DONT_PARALLELIZE (CMake, with OpenMP) and splits instead the result's columns (the batch, in a forward
// and dL/dx) into ranges of at least kMinColumns starting at multiples of it, each range one single-threaded
// Eigen product. A column's sums do not depend on how many columns its product has (Eigen blocks the depth by
// the depth and the caches only) as long as it stays in the same place of Eigen's panels of columns, so each
// column holds the same bits as in the whole product (tests/detail/test_parallel_product.cpp checks it). A
// product with one column (a batch of one) is split by ranges of rows instead, each row's dot product being the
// same in any range.
//
// Built with STOCH_BLAS=BLIS (STOCH_WITH_BLIS), the products of more than one column run in BLIS instead, on
// stoch's thread count: BLIS splits its loops over rows and columns, never the depth, and keeps the whole
// product's kernels and blocking, so its results do not depend on the thread count either. A split by columns
// into separate BLIS calls would not do: BLIS picks its kernels and its depth blocking by the shape of each call,
// and a slice of a product was summed in another order than the whole at some shapes (e.g. (100, 2000, 37)).
// One-column products stay in Eigen, whose matrix-vector kernel is the faster one here. Why BLIS:
// docs/performance-notes.md#dense-products-eigen-openblas-and-blis.
#pragma once

#include <algorithm>
#include <type_traits>

#include <Eigen/Core>
#if defined(STOCH_WITH_BLIS)
#include <blis.h>
#endif

#include "stoch/core/matrix.hpp"
#include "stoch/core/threads.hpp"

namespace stoch::internal {

#if defined(STOCH_WITH_BLIS)
/// BLIS's strides of an operand (Eigen's matrices, their blocks, maps and transposes: direct access).
template <class X>
inline inc_t blis_row_stride(const X& x) {
  static_assert(bool(Eigen::internal::traits<X>::Flags & Eigen::DirectAccessBit), "BLIS needs an operand in memory");
  return X::IsRowMajor ? x.outerStride() : x.innerStride();
}
template <class X>
inline inc_t blis_column_stride(const X& x) {
  return X::IsRowMajor ? x.innerStride() : x.outerStride();
}

/// dst = lhs * rhs (Accumulate: dst += lhs * rhs) in BLIS on `count` threads; dst already sized.
template <bool Accumulate, class Dst, class Lhs, class Rhs>
void blis_product(Dst& dst, const Lhs& lhs, const Rhs& rhs, int count) {
  using T = typename std::decay_t<Dst>::Scalar;
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  T one(1), beta(Accumulate ? 1 : 0);  // beta = 0: BLIS writes dst without reading it
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(count, &rntm);
  auto gemm = [](auto... arguments) {
    if constexpr (std::is_same_v<T, float>) bli_sgemm_ex(arguments...);
    else bli_dgemm_ex(arguments...);
  };
  gemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, static_cast<dim_t>(dst.rows()), static_cast<dim_t>(dst.cols()),
       static_cast<dim_t>(lhs.cols()), &one, const_cast<T*>(lhs.data()), blis_row_stride(lhs), blis_column_stride(lhs),
       const_cast<T*>(rhs.data()), blis_row_stride(rhs), blis_column_stride(rhs), &beta, dst.data(),
       blis_row_stride(dst), blis_column_stride(dst), static_cast<cntx_t*>(nullptr), &rntm);
}
#endif

/// Columns of one thread's range at least, and the multiple its boundaries fall on: fewer, and Eigen may take
/// its matrix-vector or coefficient-wise paths; a boundary off its panels of columns (4 or 8 wide), and the
/// columns past the last whole panel, summed by another kernel, would move. Both sum in another order.
inline constexpr Index kMinColumns = 16;
/// Rows of one thread's range, in multiples of, for a one-column product (whole packets and panels).
inline constexpr Index kRowAlign = 64;

/// dst = lhs * rhs (Accumulate: dst += lhs * rhs), dst already sized; see the file's comment.
template <bool Accumulate, class Dst, class Lhs, class Rhs>
void split_product(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
  auto run = [&](auto&& d, const auto& l, const auto& r) {
    if constexpr (Accumulate) d.noalias() += l * r;
    else d.noalias() = l * r;
  };
  const Index rows = lhs.rows(), cols = rhs.cols(), depth = lhs.cols();
  const double work = static_cast<double>(rows) * static_cast<double>(cols) * static_cast<double>(depth);
  const int count = threads();
#if defined(STOCH_WITH_BLIS)
  // The same rule as the split below: one thread under kMinParallelWork (BLIS's pthreads start with each call).
  if (cols > 1 && rows > 0) {
    blis_product<Accumulate>(dst, lhs, rhs, work >= kMinParallelWork ? count : 1);
    return;
  }
#endif
  Index pieces = 1;
  const bool by_rows = cols == 1;
  if (count > 1 && work >= kMinParallelWork)
    pieces = by_rows ? std::min<Index>(count, rows / kRowAlign) : std::min<Index>(count, cols / kMinColumns);
  if (pieces <= 1) {
    run(dst, lhs, rhs);
    return;
  }
  const Index extent = by_rows ? rows : cols;
  const Index align = by_rows ? kRowAlign : kMinColumns;
  const Index span = (extent / pieces + align - 1) / align * align;
  STOCH_OMP_PARALLEL_FOR(true)
  for (Index p = 0; p < pieces; ++p) {
    const Index first = std::min(extent, p * span), last = p + 1 == pieces ? extent : std::min(extent, (p + 1) * span);
    if (last <= first) continue;
    if (by_rows) run(dst.middleRows(first, last - first), lhs.middleRows(first, last - first), rhs);
    else run(dst.middleCols(first, last - first), lhs, rhs.middleCols(first, last - first));
  }
}

/// dst = lhs * rhs, resizing dst, split over the threads.
template <class T, class Lhs, class Rhs>
void product(Matrix<T>& dst, const Lhs& lhs, const Rhs& rhs) {
  dst.resize(lhs.rows(), rhs.cols());
  split_product<false>(dst, lhs, rhs);
}

/// dst += lhs * rhs, split over the threads.
template <class T, class Lhs, class Rhs>
void add_product(Matrix<T>& dst, const Lhs& lhs, const Rhs& rhs) {
  split_product<true>(dst, lhs, rhs);
}

}  // namespace stoch::internal
