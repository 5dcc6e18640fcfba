// Tests for include/stoch/detail/active_set.hpp: ActiveSet (the open pairs, their lists and the orders the
// kernels walk them) against a brute-force enumeration.
#include "stoch/detail/active_set.hpp"

#include <algorithm>
#include <numeric>
#include <tuple>
#include <utility>
#include <vector>

#include "detail/mask_shapes.hpp"

using namespace stoch;
using internal::ActiveSet;

namespace {

/// The examples where each unit is open, by brute force.
template <class T>
std::vector<std::vector<std::int32_t>> open_examples(const Matrix<T>& h) {
  std::vector<std::vector<std::int32_t>> lists(static_cast<std::size_t>(h.rows()));
  for (Index b = 0; b < h.cols(); ++b)
    for (Index i = 0; i < h.rows(); ++i)
      if (h(i, b) != T(0)) lists[static_cast<std::size_t>(i)].push_back(static_cast<std::int32_t>(b));
  return lists;
}

}  // namespace

TEMPLATE_TEST_CASE("ActiveSet lists every open pair once, in order, and walks them in matrix order",
                   "[active_set]", float, double) {
  using T = TestType;
  std::uint64_t seed = 300;
  for (const test::MaskShape shape : test::kMaskShapes)
    for (const double density : test::kMaskDensities) {
      CAPTURE(shape.units, shape.batch, density);
      Matrix<T> h = test::exact_mask<T>(shape.units, shape.batch, density, ++seed);
      if (h.size() > 2) h(0, 0) = -T(0);  // -0 is a closed gate, like +0
      const auto expected = open_examples(h);
      ActiveSet active;
      active.count<T>(h);
      Index nonzeros = 0;
      for (const auto& list : expected) nonzeros += static_cast<Index>(list.size());
      REQUIRE(active.nonzeros() == nonzeros);
      // The pairs (unit, example) by unit, examples increasing, and the same pairs by example.
      std::vector<std::pair<Index, Index>> by_unit, by_example;
      for (Index i = 0; i < shape.units; ++i)
        for (const std::int32_t b : expected[static_cast<std::size_t>(i)]) by_unit.emplace_back(i, Index(b));
      for (const auto& [i, b] : by_unit) by_example.emplace_back(b, i);
      std::sort(by_example.begin(), by_example.end());

      for (const ListLayout layout : {ListLayout::by_unit, ListLayout::by_example}) {
        CAPTURE(layout == ListLayout::by_unit);
        active.build_lists<T>(h, layout);
        REQUIRE(active.lists_built());
        // Flat positions: every k once, and list m's entries at offset(m) ... in for_each_open's order.
        std::vector<std::pair<Index, Index>> seen;
        std::vector<Index> positions;
        active.for_each_open([&](Index i, Index b, Index k) {
          seen.emplace_back(layout == ListLayout::by_unit ? i : b, layout == ListLayout::by_unit ? b : i);
          positions.push_back(k);
        });
        std::vector<Index> all(static_cast<std::size_t>(nonzeros));
        std::iota(all.begin(), all.end(), Index(0));
        CHECK(positions == all);
        CHECK(seen == (layout == ListLayout::by_unit ? by_unit : by_example));
        if (layout == ListLayout::by_unit)
          for (Index i = 0; i < shape.units; ++i) {
            const auto list = active.list(i);
            CHECK(std::vector<std::int32_t>(list.begin(), list.end()) == expected[static_cast<std::size_t>(i)]);
          }

        // Matrix order: example by example (units increasing) when the lists went through per-example
        // lists (by example, or batches over 64), else unit by unit; each pair with its flat position.
        std::vector<std::pair<Index, Index>> walked;
        std::vector<Index> walked_positions(static_cast<std::size_t>(nonzeros), -1);
        active.for_each_open_matrix_order([&](Index i, Index b, Index k) {
          walked.emplace_back(i, b);
          walked_positions[static_cast<std::size_t>(k)] = static_cast<Index>(walked.size()) - 1;
        });
        const bool columns = layout == ListLayout::by_example || shape.batch > ActiveSet::kMaskBatch;
        std::vector<std::pair<Index, Index>> walked_wanted = by_unit;
        if (columns) {
          walked_wanted.clear();
          for (const auto& [b, i] : by_example) walked_wanted.emplace_back(i, b);
        }
        CHECK(walked == walked_wanted);
        bool same_pair = true;  // position k of the walk names the same pair as for_each_open's k
        active.for_each_open([&](Index i, Index b, Index k) {
          const Index at = walked_positions[static_cast<std::size_t>(k)];
          same_pair = same_pair && at >= 0 && walked[static_cast<std::size_t>(at)] == std::pair{i, b};
        });
        CHECK(same_pair);
      }
    }
}

TEST_CASE("ActiveSet visit orders: the non-empty lists, by index or by (first, second) open example",
          "[active_set]") {
  using T = float;
  std::uint64_t seed = 400;
  for (const test::MaskShape shape : test::kMaskShapes)
    for (const double density : test::kMaskDensities) {
      CAPTURE(shape.units, shape.batch, density);
      const Matrix<T> h = test::exact_mask<T>(shape.units, shape.batch, density, ++seed);
      const auto expected = open_examples(h);
      std::vector<std::int32_t> natural;
      for (Index i = 0; i < shape.units; ++i)
        if (!expected[static_cast<std::size_t>(i)].empty()) natural.push_back(static_cast<std::int32_t>(i));
      const auto key = [&](std::int32_t unit) {
        const auto& list = expected[static_cast<std::size_t>(unit)];
        return std::make_tuple(list[0], list.size() > 1 ? list[1] : std::int32_t(shape.batch), unit);
      };
      std::vector<std::int32_t> leading = natural;
      std::sort(leading.begin(), leading.end(), [&](auto a, auto b) { return key(a) < key(b); });

      ActiveSet active;
      active.count<T>(h);
      active.build_lists<T>(h, ListLayout::by_unit, VisitOrder::natural);
      auto order = active.visit_order();
      CHECK(std::vector<std::int32_t>(order.begin(), order.end()) == natural);
      active.build_lists<T>(h, ListLayout::by_unit, VisitOrder::by_leading_examples);
      order = active.visit_order();  // batches over ActiveSet::kMaskBatch are walked naturally
      CHECK(std::vector<std::int32_t>(order.begin(), order.end()) ==
            (shape.batch <= ActiveSet::kMaskBatch ? leading : natural));
      const auto kept = active.natural_order();
      CHECK(std::vector<std::int32_t>(kept.begin(), kept.end()) == natural);
    }
}
