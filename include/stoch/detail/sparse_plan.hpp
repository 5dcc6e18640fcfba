// not part of the public API; included by stoch/conditional/gated_layer.hpp and stoch/detail/sparse_kernels.hpp.
//
// stoch — the gated layer's one planning step per batch: every tuned constant and heuristic that decides how
// the expert is computed (dense or sparse, how the open pairs are listed, the order the forward walks them,
// the stride of the kernels' copy of x), in one place. GatedLayer::forward counts the open gates, calls
// plan_expert once and follows the plan. The numbers behind each constant are in
// docs/performance-notes.md, under the anchor named next to it.
#pragma once

#include <optional>

#include "stoch/conditional/expert_path.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/detail/active_set.hpp"

namespace stoch::internal {

/// Density of open gates up to which ExpertPath::automatic takes the sparse kernels: below the slowest
/// crossover of the benchmarked shapes, so that the automatic choice never takes the sparse path where it
/// is the slower one. GatedLayer::set_crossover overrides it for another machine.
/// Why this value: docs/performance-notes.md#sparse-crossover.
inline constexpr double kDefaultSparseCrossover = 0.35;

/// The layout that lets a kernel reuse the most loads: by unit (one weight column against the unit's
/// examples) unless units are open in fewer than 2 examples on average, then by example (one input column
/// against the example's units; W is then read about as often as by unit, at most twice).
/// Why: docs/performance-notes.md#list-layout.
inline ListLayout preferred_layout(const ActiveSet& active) noexcept {
  return active.nonzeros() < 2 * active.active_units() ? ListLayout::by_example : ListLayout::by_unit;
}

/// Whether the forward should walk the units by leading examples (VisitOrder::by_leading_examples):
/// by-unit lists of at most kLeadingOrderExamples open examples per active unit on average, and input
/// columns of at most kLeadingOrderColumnBytes (so that the ~8 most recent ones stay in a 32 KiB L1). With
/// long lists (a unit shares only its first column of many) or large columns (few fit in L1) the order
/// gains nothing and scatters the reads of W. Only the forward uses it (see sparse_expert_backward).
/// Why these values: docs/performance-notes.md#leading-order.
inline constexpr Index kLeadingOrderExamples = 8;
inline constexpr Index kLeadingOrderColumnBytes = 4096;
inline bool leading_order_pays(const ActiveSet& active, ListLayout layout, Index column_bytes) noexcept {
  return layout == ListLayout::by_unit && active.batch() <= ActiveSet::kMaskBatch &&
         column_bytes <= kLeadingOrderColumnBytes && active.nonzeros() <= kLeadingOrderExamples * active.active_units();
}

/// Leading dimension for a copy of `rows x batch` activations that the kernels read K columns at a time.
/// When a column is a multiple of 1 KiB (e.g. 4096 floats) the K columns fall into the same few L1 cache
/// sets and evict each other (and stores alias loads 4 KiB apart); one cache line of padding spreads them
/// over the sets. Why: docs/performance-notes.md#padded-stride.
template <class T>
Index padded_stride(Index rows) {
  return (rows * static_cast<Index>(sizeof(T))) % 1024 == 0 ? rows + 64 / static_cast<Index>(sizeof(T)) : rows;
}

/// How many lists ahead the kernels prefetch the fixed column: the line must arrive before it is used
/// (one list's work is about one last-level-cache latency plus the transfer).
/// Why: docs/performance-notes.md#prefetch-distance.
inline constexpr Index kPrefetchLists = 2;

/// What GatedLayer::forward does with one batch.
struct ExpertPlan {
  bool sparse = false;                          ///< the skipping kernels (else the dense product)
  ListLayout layout = ListLayout::by_unit;      ///< how the open pairs are listed (sparse only)
  VisitOrder order = VisitOrder::natural;       ///< the order the sparse forward walks the lists
  Index stride = 0;                             ///< leading dimension of the kernels' copy of x
};

/// The plan for a batch whose open gates `active` has counted (ActiveSet::count), for an expert with `in`
/// inputs of type T. `path` and `crossover` choose the path; a set `layout` or `order` is taken as it is,
/// an empty one is chosen here (preferred_layout, leading_order_pays). By example the partners are columns
/// of W (`in` apart, not padded), so the lists are by unit when the input stride is padded.
template <class T>
ExpertPlan plan_expert(const ActiveSet& active, Index in, ExpertPath path, double crossover,
                       std::optional<ListLayout> layout, std::optional<VisitOrder> order) {
  ExpertPlan plan;
  plan.sparse = path == ExpertPath::sparse || (path == ExpertPath::automatic && active.density() <= crossover);
  plan.stride = padded_stride<T>(in);
  if (plan.sparse) {
    plan.layout = layout.value_or(plan.stride != in ? ListLayout::by_unit : preferred_layout(active));
    const Index column_bytes = in * static_cast<Index>(sizeof(T));
    plan.order = order.value_or(leading_order_pays(active, plan.layout, column_bytes) ? VisitOrder::by_leading_examples
                                                                                      : VisitOrder::natural);
  }
  return plan;
}

/// Fraction of non-zero inputs up to which the block kernels read only the non-zero inputs of each open
/// (block, example) pair (the kernel of Linear's zero skipping, zero_skipping_block, per block) instead of one
/// product over the gathered inputs: the same kernel against a dense product as Linear::forward's choice, so
/// its measured crossover, Linear::kZeroSkippingCrossover. Why: docs/performance-notes.md#sparse-input.
inline constexpr double kSparseInputCrossover = 0.15;

/// The default crossover of a block-gated layer (GatedLayer::block() > 1): 1, the block kernels at every
/// density. Its dense path runs the same register tiles over every (block, example) pair, so the block kernels
/// do d of its work at the same speed per multiply-add and add only the lists of open pairs.
/// Why, and the measurement: docs/performance-notes.md#block-crossover.
inline constexpr double kDefaultBlockCrossover = 1.0;

/// Whether a block-gated layer computes a batch with the block kernels over the open pairs
/// (stoch/detail/block_kernels.hpp): ExpertPath::sparse, or automatic with the density of open (block,
/// example) pairs at most `crossover`, the layer's crossover() (kDefaultBlockCrossover unless set).
inline bool block_path_sparse(const ActiveSet& active, ExpertPath path, double crossover) noexcept {
  return path == ExpertPath::sparse || (path == ExpertPath::automatic && active.density() <= crossover);
}

}  // namespace stoch::internal
