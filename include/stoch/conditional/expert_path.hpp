// stoch — the choices a user can fix on a GatedLayer (Sec. 5): which path computes the expert, how the
// sparse kernels list the open (unit, example) pairs and in which order the forward walks them. By
// default the layer chooses per batch (internal::plan_expert, stoch/detail/sparse_plan.hpp); fixing a
// choice is for tests and measurements. None of them changes a computed value beyond rounding: the paths
// agree to rounding, and the list layout and visit order not even in the last bit of the forward.
#pragma once

namespace stoch {

/// How the gated layer computes its expert.
enum class ExpertPath {
  automatic,  ///< per batch: sparse when the density of open gates is at most `crossover()`, else dense
  dense,      ///< the full Eigen product, then the mask (what a framework does)
  sparse,     ///< the skipping kernels, whatever the density
};

/// How the open pairs are listed: for each unit its examples, or for each example its units.
enum class ListLayout { by_unit, by_example };

/// The order in which the sparse forward walks the (non-empty) lists. `natural`: by index. By unit,
/// `by_leading_examples` sorts the units by their first, then second open example, so that units walked
/// one after the other share input columns and find them in L1. It applies to by-unit lists of batches
/// up to internal::ActiveSet::kMaskBatch and changes no result: each open pair's dot product is computed
/// exactly as in the natural order. Why and where it pays: docs/performance-notes.md#leading-order.
enum class VisitOrder { natural, by_leading_examples };

}  // namespace stoch
