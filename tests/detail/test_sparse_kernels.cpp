// Tests for include/stoch/detail/sparse_kernels.hpp: the sparse forward kernel against the dense product,
// its independence of the order in which the lists are walked, and both kernels' independence of the thread count.
#include "stoch/detail/sparse_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "detail/mask_shapes.hpp"
#include "support/threads.hpp"

using namespace stoch;
using internal::ActiveSet;

TEMPLATE_TEST_CASE("The sparse forward gives the same bits in either visit order, and the dense values",
                   "[sparse_kernels]", float, double) {
  using T = TestType;
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const Index in = 37;
  std::uint64_t seed = 500;
  for (const test::MaskShape shape : test::kMaskShapes)
    for (const double density : test::kMaskDensities) {
      CAPTURE(shape.units, shape.batch, density);
      const Matrix<T> h = test::exact_mask<T>(shape.units, shape.batch, density, ++seed);
      const Matrix<T> weights_t = test::random_matrix<T>(in, shape.units, ++seed);
      const Matrix<T> x = test::random_matrix<T>(in, shape.batch, ++seed);
      // Coefficient by coefficient: the reference needs no GEMM (whose inlined AVX-512 transposes trip
      // GCC 12's -Wuninitialized, bug 105593, in a translation unit this small).
      const Matrix<T> dense = weights_t.transpose().lazyProduct(x);
      ActiveSet active;
      active.count<T>(h);
      std::vector<T> natural(static_cast<std::size_t>(active.nonzeros()));
      std::vector<T> leading(natural.size());
      active.build_lists<T>(h, ListLayout::by_unit, VisitOrder::natural);
      internal::sparse_expert_forward<T>(active, weights_t, x, natural.data());
      active.build_lists<T>(h, ListLayout::by_unit, VisitOrder::by_leading_examples);
      internal::sparse_expert_forward<T>(active, weights_t, x, leading.data());
      CHECK(natural == leading);
      double worst = 0.0;
      active.for_each_open([&](Index i, Index b, Index k) {
        const double error = std::abs(static_cast<double>(leading[static_cast<std::size_t>(k)] - dense(i, b)));
        worst = std::max(worst, error / (1.0 + std::abs(static_cast<double>(dense(i, b)))));
      });
      CHECK(worst <= tolerance);
    }
}

TEST_CASE("The sparse forward gives the same bits on one thread and on two", "[sparse_kernels][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  // Large enough to be split: 2000 units, 784 inputs, batch 32, 10 % and 50 % open, both list layouts.
  const Index units = 2000, in = 784, batch = 32;
  const Matrix<float> weights_t = test::random_matrix<float>(in, units, 1), x = test::random_matrix<float>(in, batch, 2);
  for (const double density : {0.1, 0.5})
    for (const ListLayout layout : {ListLayout::by_unit, ListLayout::by_example}) {
      CAPTURE(density, layout == ListLayout::by_unit);
      const Matrix<float> h = test::exact_mask<float>(units, batch, density, 3);
      ActiveSet active;
      active.count<float>(h);
      active.build_lists<float>(h, layout, VisitOrder::natural);
      auto run = [&](int count) {
        const test::ThreadCount thread_count(count);
        std::vector<float> sums(static_cast<std::size_t>(active.nonzeros()));
        internal::sparse_expert_forward<float>(active, weights_t, x, sums.data());
        return sums;
      };
      CHECK(run(1) == run(2));
    }
}

TEST_CASE("The sparse backward gives the same bits on one thread and on two", "[sparse_kernels][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  // Split by ranges of the 784 inputs (one boundary inside the rows, the last range shorter than the first),
  // and 789 inputs (a scalar tail after the last packet); both layouts, with and without dL/dx.
  const Index units = 2000, batch = 32;
  for (const Index in : {784, 789})
    for (const double density : {0.1, 0.5})
      for (const ListLayout layout : {ListLayout::by_unit, ListLayout::by_example})
        for (const bool with_input_gradient : {true, false}) {
          CAPTURE(in, density, layout == ListLayout::by_unit, with_input_gradient);
          const Matrix<float> weights_t = test::random_matrix<float>(in, units, 1);
          const Matrix<float> x = test::random_matrix<float>(in, batch, 2);
          const Matrix<float> h = test::exact_mask<float>(units, batch, density, 3);
          ActiveSet active;
          active.count<float>(h);
          active.build_lists<float>(h, layout, VisitOrder::natural);
          const Matrix<float> c = test::random_matrix<float>(active.nonzeros(), 1, 4);
          const Matrix<float> start_dw = test::random_matrix<float>(in, units, 5);
          const Matrix<float> start_dx = test::random_matrix<float>(in, batch, 6);
          auto run = [&](int count) {
            const test::ThreadCount thread_count(count);
            Matrix<float> weight_gradient = start_dw, input_gradient = start_dx;
            internal::sparse_expert_backward<float>(active, c.data(), weights_t, x, weight_gradient, input_gradient,
                                                    with_input_gradient);
            return std::pair{weight_gradient, input_gradient};
          };
          const auto [dw1, dx1] = run(1);
          const auto [dw2, dx2] = run(2);
          CHECK(dw1 == dw2);
          CHECK(dx1 == dx2);
          // Not trivially equal: the weight gradient changed in both halves of the rows.
          CHECK(dw1.topRows(in / 2) != start_dw.topRows(in / 2));
          CHECK(dw1.bottomRows(in / 2) != start_dw.bottomRows(in / 2));
        }
}
