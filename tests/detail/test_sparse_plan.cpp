// Tests for include/stoch/detail/sparse_plan.hpp: each decision of plan_expert (path, stride, list layout,
// visit order) on masks built to sit on either side of its rule.
#include "stoch/detail/sparse_plan.hpp"

#include <optional>

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"

using namespace stoch;
using internal::ActiveSet;
using internal::ExpertPlan;

namespace {

/// A `units x batch` mask in which unit i is open in examples i .. i + per_unit - 1 (mod batch).
Matrix<float> banded_mask(Index units, Index batch, Index per_unit) {
  Matrix<float> h = Matrix<float>::Zero(units, batch);
  for (Index i = 0; i < units; ++i)
    for (Index k = 0; k < per_unit; ++k) h(i, (i + k) % batch) = 1.0f;
  return h;
}

ExpertPlan plan_for(const Matrix<float>& h, Index in, ExpertPath path = ExpertPath::sparse, double crossover = 0.35,
                    std::optional<ListLayout> layout = std::nullopt, std::optional<VisitOrder> order = std::nullopt) {
  ActiveSet active;
  active.count<float>(h);
  return internal::plan_expert<float>(active, in, path, crossover, layout, order);
}

}  // namespace

TEST_CASE("plan_expert: the path follows ExpertPath and, when automatic, the crossover", "[sparse_plan]") {
  const Matrix<float> h = test::exact_mask<float>(100, 10, 0.3, 7);  // density exactly 0.3
  CHECK(plan_for(h, 50, ExpertPath::sparse, 0.0).sparse);
  CHECK_FALSE(plan_for(h, 50, ExpertPath::dense, 1.0).sparse);
  CHECK(plan_for(h, 50, ExpertPath::automatic, 0.3).sparse);  // at the crossover: sparse
  CHECK_FALSE(plan_for(h, 50, ExpertPath::automatic, 0.29).sparse);
  CHECK(plan_for(h, 50, ExpertPath::automatic, internal::kDefaultSparseCrossover).sparse);
  CHECK_FALSE(plan_for(test::exact_mask<float>(100, 10, 0.4, 8), 50, ExpertPath::automatic,
                       internal::kDefaultSparseCrossover)
                  .sparse);
}

TEST_CASE("plan_expert: a column that is a multiple of 1 KiB gets one cache line of padding", "[sparse_plan]") {
  CHECK(internal::padded_stride<float>(37) == 37);
  CHECK(internal::padded_stride<float>(256) == 256 + 16);
  CHECK(internal::padded_stride<float>(1024) == 1024 + 16);
  CHECK(internal::padded_stride<double>(128) == 128 + 8);
  CHECK(internal::padded_stride<double>(129) == 129);
  const Matrix<float> h = banded_mask(20, 8, 3);
  CHECK(plan_for(h, 1024).stride == 1040);
  CHECK(plan_for(h, 1000).stride == 1000);
  CHECK(plan_for(h, 1024, ExpertPath::dense).stride == 1040);  // the training copy uses it too
}

TEST_CASE("plan_expert: the list layout", "[sparse_plan]") {
  // One open example per unit: fewer than 2 per active unit, so by example; two per unit: by unit.
  CHECK(plan_for(banded_mask(20, 8, 1), 50).layout == ListLayout::by_example);
  CHECK(plan_for(banded_mask(20, 8, 2), 50).layout == ListLayout::by_unit);
  // A padded stride (in = 256 floats) keeps the lists by unit whatever the density.
  CHECK(plan_for(banded_mask(20, 8, 1), 256).layout == ListLayout::by_unit);
  // A layout that was set is taken as it is.
  CHECK(plan_for(banded_mask(20, 8, 2), 50, ExpertPath::sparse, 0.35, ListLayout::by_example).layout ==
        ListLayout::by_example);
  CHECK(plan_for(banded_mask(20, 8, 1), 50, ExpertPath::sparse, 0.35, ListLayout::by_unit).layout ==
        ListLayout::by_unit);
}

TEST_CASE("plan_expert: the leading-examples order only where leading_order_pays", "[sparse_plan]") {
  const Index in = internal::kLeadingOrderColumnBytes / Index(sizeof(float));  // the largest column it takes
  const Index per_unit = internal::kLeadingOrderExamples;                     // the longest lists it takes
  CHECK(plan_for(banded_mask(20, 32, per_unit), in).order == VisitOrder::by_leading_examples);
  CHECK(plan_for(banded_mask(20, 32, per_unit + 1), in).order == VisitOrder::natural);      // lists too long
  CHECK(plan_for(banded_mask(20, 32, 2), in + 1).order == VisitOrder::natural);             // columns too large
  CHECK(plan_for(banded_mask(20, ActiveSet::kMaskBatch + 1, 2), 50).order == VisitOrder::natural);  // batch
  CHECK(plan_for(banded_mask(20, 32, 1), 50).order == VisitOrder::natural);  // by example (one per unit)
  CHECK(plan_for(banded_mask(20, 32, 2), 50, ExpertPath::sparse, 0.35, std::nullopt, VisitOrder::natural).order ==
        VisitOrder::natural);
  CHECK(plan_for(banded_mask(20, 32, 20), 50, ExpertPath::sparse, 0.35, std::nullopt,
                 VisitOrder::by_leading_examples)
            .order == VisitOrder::by_leading_examples);
  // The dense path plans no lists.
  const ExpertPlan dense = plan_for(banded_mask(20, 32, 2), 50, ExpertPath::dense);
  CHECK_FALSE(dense.sparse);
  CHECK(dense.order == VisitOrder::natural);
}
