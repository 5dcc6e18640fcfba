// not part of the public API; included by stoch/detail/sparse_plan.hpp and stoch/detail/sparse_kernels.hpp.
//
// stoch — the open gates of one batch (Sec. 5: "first compute h_i and only compute H_i if h_i != 0"):
// which (unit, example) pairs of the gate matrix h (`units x batch`) are open, listed by unit or by example,
// and the orders in which the kernels walk them.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "stoch/conditional/expert_path.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/detail/bit_sets.hpp"
#include "stoch/detail/zero_skipping_product.hpp"

namespace stoch::internal {

/// The open gates of one batch: which (unit, example) pairs have h[i, b] != 0.
///
/// Built in two passes so that the dense path pays almost nothing: `count` (every batch) is one
/// vectorised sweep over h giving per-unit counts, hence the density that chooses the path; `build_lists`
/// (only when the sparse path runs) lists the open pairs by unit or by example without a data-dependent
/// branch per gate. The gate values are not copied: a reader of h at the pairs walks them with
/// for_each_open_matrix_order.
class ActiveSet {
 public:
  /// Pass 1: per-unit counts of open gates. h is `units x batch`; a gate is open iff h != 0
  /// (internal::is_nonzero: -0 closed, NaN open).
  template <class T>
  void count(const MatrixCRef<T>& h) {
    units_ = h.rows();
    batch_ = h.cols();
    counts_.assign(static_cast<std::size_t>(units_), 0);
    std::int32_t* counts = counts_.data();
    if (batch_ <= kMaskBatch) {  // the masks of build_from_masks, and the counts from them
      sweep_masks(h);
      for (std::size_t i = 0; i < counts_.size(); ++i) counts[i] = std::popcount(masks_[i]);
    }
    Index b = batch_ <= kMaskBatch ? batch_ : 0;
    for (; b + 4 <= batch_; b += 4) {  // four columns per sweep: the counts are loaded and stored once
      const T* c0 = h.col(b).data();
      const T* c1 = h.col(b + 1).data();
      const T* c2 = h.col(b + 2).data();
      const T* c3 = h.col(b + 3).data();
      for (Index i = 0; i < units_; ++i)
        counts[i] += static_cast<std::int32_t>(internal::is_nonzero(c0 + i)) +
                     static_cast<std::int32_t>(internal::is_nonzero(c1 + i)) +
                     static_cast<std::int32_t>(internal::is_nonzero(c2 + i)) +
                     static_cast<std::int32_t>(internal::is_nonzero(c3 + i));
    }
    for (; b < batch_; ++b) {
      const T* column = h.col(b).data();
      for (Index i = 0; i < units_; ++i) counts[i] += static_cast<std::int32_t>(internal::is_nonzero(column + i));
    }
    nonzeros_ = 0;
    active_units_ = 0;
    for (const std::int32_t c : counts_) {
      nonzeros_ += c;
      active_units_ += static_cast<Index>(c > 0);
    }
    lists_built_ = false;
  }

  /// Pass 2 (requires `count(h)` on the same h): the open pairs as lists in `layout`, minor indices
  /// increasing within each list, and the order in which the forward walks them. By unit with batches
  /// up to kMaskBatch, through one bit mask of open examples per unit; otherwise through per-example
  /// lists (branch-free, 16 gates per vector test), transposed by a counting sort for by_unit.
  /// VisitOrder::by_leading_examples applies to by-unit lists of batches up to kMaskBatch (where its keys
  /// come from the masks); other lists are walked naturally.
  template <class T>
  void build_lists(const MatrixCRef<T>& h, ListLayout layout, VisitOrder order = VisitOrder::natural) {
    const bool masks = layout == ListLayout::by_unit && batch_ <= kMaskBatch;
    if (masks) build_from_masks();
    else build_through_columns(h, layout);
    order_naturally();
    leading_ = masks && order == VisitOrder::by_leading_examples;
    if (leading_) order_by_leading_examples();
    index_lists();
    lists_built_ = true;
  }

  /// Batches up to this size (one 64-bit mask per unit) list by unit through one bit mask of open
  /// examples per unit, swept by count(h): cheaper than the per-example lists and their transposition,
  /// and the masks give the keys of the leading-examples order directly.
  /// Why: docs/performance-notes.md#mask-batch.
  static constexpr Index kMaskBatch = 64;

  Index units() const noexcept { return units_; }
  Index batch() const noexcept { return batch_; }
  /// Number of open (unit, example) pairs.
  Index nonzeros() const noexcept { return nonzeros_; }
  /// Number of units open in at least one example of the batch.
  Index active_units() const noexcept { return active_units_; }
  /// Fraction of open gates, in [0, 1] (0 before the first count).
  double density() const noexcept {
    return units_ * batch_ == 0 ? 0.0 : static_cast<double>(nonzeros_) / static_cast<double>(units_ * batch_);
  }
  bool lists_built() const noexcept { return lists_built_; }

  ListLayout layout() const noexcept { return layout_; }
  /// Number of lists: units (by_unit) or examples (by_example).
  Index lists() const noexcept { return layout_ == ListLayout::by_unit ? units_ : batch_; }
  /// Position of list m's first entry in the flat list of all open pairs (requires build_lists).
  Index offset(Index m) const { return offsets_[static_cast<std::size_t>(m)]; }
  /// List m: the examples where unit m is open (by_unit) or the units open for example m (by_example).
  std::span<const std::int32_t> list(Index m) const {
    const auto first = static_cast<std::size_t>(offsets_[static_cast<std::size_t>(m)]);
    const auto last = static_cast<std::size_t>(offsets_[static_cast<std::size_t>(m) + 1]);
    return {examples_.data() + first, last - first};
  }
  /// The non-empty lists in the order the forward kernel walks them (requires build_lists).
  std::span<const std::int32_t> visit_order() const noexcept { return leading_ ? visit_ : natural_; }
  /// The non-empty lists by index.
  std::span<const std::int32_t> natural_order() const noexcept { return natural_; }
  /// Calls f(unit, example, k) for every open pair, k its position in the flat list, in the order that
  /// reads or writes a `units x batch` matrix at the pairs best: example by example (units increasing)
  /// when the lists were built through per-example lists (batches over kMaskBatch, or by example), so
  /// that each column is walked forward (unit by unit, a large layer's scatter touches a cold line per
  /// pair); unit by unit (examples increasing) for small batches, whose `units x batch` matrices stay in
  /// cache and whose lists come from masks. Either way, the pairs of one unit come with their examples
  /// increasing. Why: docs/performance-notes.md#matrix-order.
  template <class F>
  void for_each_open_matrix_order(F&& f) const {
    if (!column_lists_) {
      for_each_open(f);
      return;
    }
    const bool by_unit = layout_ == ListLayout::by_unit;
    for (Index b = 0; b < batch_; ++b) {
      const std::int32_t last = columns_.offsets[static_cast<std::size_t>(b) + 1];
      for (std::int32_t p = columns_.offsets[static_cast<std::size_t>(b)]; p < last; ++p)
        f(Index(columns_.rows[static_cast<std::size_t>(p)]), b,
          Index(by_unit ? column_positions_[static_cast<std::size_t>(p)] : p));
    }
  }
  /// Calls f(unit, example, k) for every open pair, k its position in the flat list, k increasing. One flat
  /// loop over the pairs, each entry's list read from an index built with the lists: a loop per list
  /// mispredicts its exit about once per list, and the lists are short (1-10 pairs at the paper's shape).
  /// Why: docs/performance-notes.md#flat-walk.
  template <class F>
  void for_each_open(F&& f) const {
    const std::int32_t* lists = list_of_.data();
    const std::int32_t* others = examples_.data();
    if (layout_ == ListLayout::by_unit)
      for (Index k = 0; k < nonzeros_; ++k) f(Index(lists[k]), Index(others[k]), k);
    else
      for (Index k = 0; k < nonzeros_; ++k) f(Index(others[k]), Index(lists[k]), k);
  }

 private:
  template <class T>
  void build_through_columns(const MatrixCRef<T>& h, ListLayout layout) {
    layout_ = layout;
    column_lists_ = true;
    // The lists by example first, branch-free (internal::NonzeroRows, the zero-skipping product's lists):
    // walking each column's open gates straight into unit lists would mispredict the loop over each
    // 16-gate block's open bits. Why: docs/performance-notes.md#branch-free-lists.
    const auto nonzeros = static_cast<std::size_t>(nonzeros_);
    columns_.build<T>(h);
    examples_.resize(nonzeros);
    if (layout == ListLayout::by_example) {
      std::copy_n(columns_.rows.begin(), nonzeros, examples_.begin());
      offsets_ = columns_.offsets;
      return;
    }
    // A counting sort on the unit, from the counts of pass 1; each pair's place is kept for
    // for_each_open_matrix_order.
    offsets_from_counts();
    cursor_.assign(offsets_.begin(), offsets_.end() - 1);
    column_positions_.resize(nonzeros);
    std::int32_t* cursor = cursor_.data();
    std::int32_t* entries = examples_.data();
    std::int32_t* positions = column_positions_.data();
    const std::int32_t* units = columns_.rows.data();
    for (Index b = 0; b < batch_; ++b) {
      const std::int32_t last = columns_.offsets[static_cast<std::size_t>(b) + 1];
      for (std::int32_t p = columns_.offsets[static_cast<std::size_t>(b)]; p < last; ++p) {
        const std::int32_t at = cursor[units[p]]++;
        entries[at] = static_cast<std::int32_t>(b);
        positions[p] = at;
      }
    }
  }

  void offsets_from_counts() {
    offsets_.resize(static_cast<std::size_t>(units_) + 1);
    std::int32_t running = 0;
    for (std::size_t i = 0; i < static_cast<std::size_t>(units_); ++i) {
      offsets_[i] = running;
      running += counts_[i];
    }
    offsets_[static_cast<std::size_t>(units_)] = running;
  }

  /// By-unit lists from the per-unit masks of open examples that count(h) swept (batch_ <= kMaskBatch).
  void build_from_masks() {
    layout_ = ListLayout::by_unit;
    column_lists_ = false;
    const auto units = static_cast<std::size_t>(units_);
    const std::uint64_t* masks = masks_.data();
    offsets_from_counts();
    examples_.resize(static_cast<std::size_t>(nonzeros_) + internal::kLaneSlack);  // see append_set_lanes
    std::int32_t* entries = examples_.data();
    for (std::size_t i = 0; i < units; ++i) internal::append_set_bits(masks[i], entries + offsets_[i]);
    examples_.resize(static_cast<std::size_t>(nonzeros_));
  }

  /// masks_[i]: bit b set iff h(i, b) is open (batch_ <= kMaskBatch).
  template <class T>
  void sweep_masks(const MatrixCRef<T>& h) {
    const auto units = static_cast<std::size_t>(units_);
    masks_.assign(units, 0);
    std::uint64_t* masks = masks_.data();
    Index b = 0;
#if defined(__AVX512F__)
    // 16 units per step: one vector test per column gives their 16 open bits, OR-ed into two vectors of
    // masks under those bits; four columns per load and store of the masks.
    for (; b + 4 <= batch_; b += 4) {
      __m512i bits[4];
      for (int c = 0; c < 4; ++c) bits[c] = _mm512_set1_epi64(static_cast<long long>(std::uint64_t(1) << (b + c)));
      const T* columns[4] = {h.col(b).data(), h.col(b + 1).data(), h.col(b + 2).data(), h.col(b + 3).data()};
      std::size_t i = 0;
      for (; i + internal::kLaneSlack <= units; i += internal::kLaneSlack) {
        __m512i low = _mm512_loadu_si512(masks + i), high = _mm512_loadu_si512(masks + i + 8);
        for (int c = 0; c < 4; ++c) {
          const std::uint32_t open = internal::nonzero_mask(columns[c] + i);
          low = _mm512_mask_or_epi64(low, static_cast<__mmask8>(open), low, bits[c]);
          high = _mm512_mask_or_epi64(high, static_cast<__mmask8>(open >> 8), high, bits[c]);
        }
        _mm512_storeu_si512(masks + i, low);
        _mm512_storeu_si512(masks + i + 8, high);
      }
      for (; i < units; ++i)
        for (int c = 0; c < 4; ++c)
          masks[i] |= static_cast<std::uint64_t>(internal::is_nonzero(columns[c] + i)) << (b + c);
    }
#endif
    for (; b < batch_; ++b) {
      const T* column = h.col(b).data();
      for (std::size_t i = 0; i < units; ++i)
        masks[i] |= static_cast<std::uint64_t>(internal::is_nonzero(column + i)) << b;
    }
  }

  /// The active units sorted by (first open example, second open example or none), ties by index: the
  /// key read off each unit's mask, one counting sort on it (at most 65 x 65 buckets).
  void order_by_leading_examples() {
    const std::size_t n = natural_.size();
    const auto none = static_cast<std::uint32_t>(batch_);
    const std::uint32_t radix = none + 1;
    keys_.resize(n);
    buckets_.assign(static_cast<std::size_t>(radix * radix) + 1, 0);
    for (std::size_t q = 0; q < n; ++q) {
      const std::uint64_t mask = masks_[static_cast<std::size_t>(natural_[q])];  // non-zero
      const std::uint64_t rest = mask & (mask - 1);
      const auto first = static_cast<std::uint32_t>(std::countr_zero(mask));
      const std::uint32_t second = rest != 0 ? static_cast<std::uint32_t>(std::countr_zero(rest)) : none;
      keys_[q] = static_cast<std::int32_t>(first * radix + second);
      ++buckets_[static_cast<std::size_t>(keys_[q]) + 1];
    }
    for (std::size_t k = 1; k < buckets_.size(); ++k) buckets_[k] += buckets_[k - 1];
    visit_.resize(n);
    for (std::size_t q = 0; q < n; ++q)
      visit_[static_cast<std::size_t>(buckets_[static_cast<std::size_t>(keys_[q])]++)] = natural_[q];
  }

  /// list_of_[k]: the list of the flat entry k (for_each_open). Branch-free for lists of up to 16 entries:
  /// 16 copies are stored at the list's offset and the next list overwrites the excess (kLaneSlack).
  void index_lists() {
    list_of_.resize(static_cast<std::size_t>(nonzeros_) + internal::kLaneSlack);
    std::int32_t* entries = list_of_.data();
    for (Index m = 0; m < lists(); ++m) {
      const std::int32_t first = offsets_[static_cast<std::size_t>(m)];
      const std::int32_t count = offsets_[static_cast<std::size_t>(m) + 1] - first;
      for (std::int32_t r = 0; r == 0 || r < count; r += internal::kLaneSlack)
        internal::fill_lanes(static_cast<std::int32_t>(m), entries + first + r);
    }
  }

  void order_naturally() {
    natural_.resize(static_cast<std::size_t>(lists()));
    std::size_t n = 0;
    for (Index m = 0; m < lists(); ++m) {  // branch-free: always write, advance only past non-empty lists
      natural_[n] = static_cast<std::int32_t>(m);
      n += offsets_[static_cast<std::size_t>(m) + 1] != offsets_[static_cast<std::size_t>(m)];
    }
    natural_.resize(n);
  }

  Index units_ = 0, batch_ = 0, nonzeros_ = 0, active_units_ = 0;
  bool lists_built_ = false;
  ListLayout layout_ = ListLayout::by_unit;
  std::vector<std::int32_t> counts_, offsets_, cursor_, examples_, list_of_;
  internal::NonzeroRows columns_;  // the open gates column by column (lists built through columns)
  std::vector<std::int32_t> column_positions_;
  std::vector<std::uint64_t> masks_;
  bool column_lists_ = false;
  std::vector<std::int32_t> natural_, visit_, keys_, buckets_;
  bool leading_ = false;  // visit_ holds the leading-examples order (else the natural one is walked)
};

}  // namespace stoch::internal
