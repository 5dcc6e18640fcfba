// stoch — the kernels that make conditional computation real (Sec. 5: "first compute h_i and only compute
// H_i if h_i != 0"): which (unit, example) pairs are open, and the expert's forward and backward over them.
//
// Layout. The gate matrix h is `units x batch`. The expert's weights are stored transposed, `in x units`,
// so that one unit's incoming weights are one contiguous column. The active pairs are kept unit-major:
// for each unit, the (increasing) list of examples where its gate is open. A kernel then loads a piece of
// the unit's weight column once and uses it for K examples at a time (register blocking), so that W, the
// largest operand (2000 x 784 floats = 6 MB in the paper's network), is streamed once per pass instead of
// once per example.
//
// Cache blocking. When the inputs of a batch are very large (kChunkBytes), the `in` axis is cut into
// chunks and every pass runs chunk by chunk.
//
// What bounds the forward. Each FMA needs a fresh packet of x (the unit's weight packet is reused K
// times, x is not reused across units: two units share an open example with probability density^2).
// Measured on Zen 4: 2.1-2.3 cycles per 16-wide FMA when x comes from L2 or L3, 1.1 when it sits in L1,
// about 1.2 for Eigen's dense GEMM; so at density d the sparse forward gains about 0.5 / d over dense.
// Streaming the weight columns from L3 adds about a third to that at the paper's shape (measured on Zen 5
// against the same lists reading cached columns: BM_SparseForwardKernelCachedWeights).
// Tiling x into L1-sized packed tiles (running packet sums per open pair between tiles) was tried and was
// 1.4-2.9x slower: a unit has only about 3 open examples per tile at 10%, so the per-tile bookkeeping
// outweighs the FMAs. Software prefetch of the x streams gained nothing measurable either. What does help
// at small batches is the order in which the units are walked (VisitOrder): sorted by their first open
// examples, consecutive units share an input column, which then comes from L1.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <span>
#include <vector>

#include <Eigen/Core>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "stoch/core/bit_sets.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/zero_skipping_product.hpp"

namespace stoch {

/// How the open pairs are listed: for each unit its examples, or for each example its units.
enum class ListLayout { by_unit, by_example };

/// The order in which the forward kernel walks the (non-empty) lists. `natural`: by index. By unit,
/// `by_leading_examples` sorts the units by their first, then second open example, so that units walked
/// one after the other share input columns and find them in L1: at the paper's shape (a batch of 32
/// MNIST images, 100 KB of x against 32-48 KB of L1 on Zen 4-5) the kernel loads every packet of x from
/// L2, and the order makes it 1.15-1.2x faster at 5-10% density. With long lists (a unit shares only its
/// first column of many) or large columns (few fit in L1) it gains nothing and scatters the reads of W,
/// so the layer asks for it only where it pays (internal::leading_order_pays); it applies to by-unit
/// lists of batches up to ActiveSet::kMaskBatch. It changes no result: each open pair's dot product is
/// computed exactly as in the natural order.
enum class VisitOrder { natural, by_leading_examples };

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
  /// come from the masks, and where it was measured to pay); other lists are walked naturally.
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

  /// Batches up to this size list by unit through one bit mask of open examples per unit, swept by
  /// count(h): cheaper than the per-example lists and their transposition at the paper's shape (2000 x 32
  /// at 10%: 7 us against 12.6 for the lists, for 1-2 us more in count), and the masks give the keys of
  /// the leading-examples order directly.
  static constexpr Index kMaskBatch = 64;

  /// The layout that lets a kernel reuse the most loads: by unit (one weight column against the unit's
  /// examples) unless units are open in fewer than 2 examples on average, then by example (one input
  /// column against the example's units; W is then read about as often as by unit, at most twice).
  ListLayout preferred_layout() const noexcept {
    return nonzeros_ < 2 * active_units_ ? ListLayout::by_example : ListLayout::by_unit;
  }

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
  /// that each column is walked forward (unit by unit, the 4096-unit layer's scatter of its outputs,
  /// reading h and writing y at the pairs, touched cold lines: 0.80 ms against 0.18); unit by unit
  /// (examples increasing) for small batches, whose `units x batch` matrices sit in L2 and whose lists
  /// come from masks (9.3 us against 10.0 at 2000 x 32, 10%). Either way, the pairs of one unit come
  /// with their examples increasing.
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
  /// mispredicted its exit about once per list (some 1,700 lists of 1-10 pairs at the paper's shape), and
  /// the gated layer's scatter of its outputs over this walk took 27-36 us per batch instead of 10-12.
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
    // The lists by example first, branch-free (internal::NonzeroRows, the zero-skipping product's lists).
    // Walking each column's open gates straight into unit lists mispredicted the loop over each 16-gate
    // block's open bits (1.6 on average at 10%): 634 us of list building at (4096 units, batch 256), 230 us
    // this way.
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

namespace internal {

// The kernels' loops over the K examples of a block (and the unrolled packets) must be unrolled
// completely, so that the K accumulators and pointers live in registers: measured 2x slower when GCC
// kept them in stack arrays.
#if defined(__clang__)
#define STOCH_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define STOCH_UNROLL _Pragma("GCC unroll 16")
#else
#define STOCH_UNROLL
#endif

/// Keeps a pointer in a general register: otherwise GCC packs the K pointers of a block into vector
/// registers (SLP) and extracts them again in the innermost loop, at every iteration.
template <class T>
inline const T* in_register(const T* pointer) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+r"(pointer));
#endif
  return pointer;
}
template <class T>
inline T* in_register(T* pointer) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+r"(pointer));
#endif
  return pointer;
}

/// Asks for the cache line at `address` ahead of its use. The kernels walk many short streams (one
/// weight column of ~3 KB per unit, read once from L3 or DRAM), too short for the hardware prefetcher to
/// ramp up on each; so while one list is computed, the next list's fixed column is prefetched.
template <class T>
inline void prefetch(const T* address) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(address, 0, 3);
#else
  (void)address;
#endif
}
template <class T>
inline void prefetch_for_write(T* address) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(address, 1, 3);
#else
  (void)address;
#endif
}

/// How many lists ahead the kernels prefetch the fixed column: the line must arrive before it is used
/// (one list's work, ~100 ns at 10% density, is about one L3 latency plus the transfer).
inline constexpr Index kPrefetchLists = 2;

/// Default bytes of x per cache chunk (rows x batch). Measured on the development machine (Zen 4, 1 MiB
/// L2 per core, 32 MiB L3) for the (4096, 4096, 256) layer at 10% density: chunks of 128 KiB to 2 MiB were
/// 1.4-1.7x SLOWER than one pass (each chunk repeats the list walk, the reductions and the branch
/// mispredictions, while the hardware prefetcher streams x well from L3). So chunking only starts when x
/// outgrows half of that L3.
inline constexpr Index kChunkBytes = Index(16) * 1024 * 1024;

/// Rows of the `in` axis per chunk for a batch of `batch` columns and a budget of `bytes`: a multiple of
/// the packet size, at least 64 rows (shorter dot products would be dominated by their horizontal sums),
/// at most `in`.
template <class T>
Index chunk_rows(Index in, Index batch, Index bytes = kChunkBytes) {
  const Index packet = kPacketSize<T>;
  Index rows = bytes / (batch * static_cast<Index>(sizeof(T)));
  rows = std::max<Index>(rows / packet * packet, 64);
  return rows >= in ? in : rows;
}

/// Whether the forward should walk the units by leading examples (VisitOrder::by_leading_examples):
/// by-unit lists of at most kLeadingOrderExamples open examples per active unit on average, and input
/// columns of at most kLeadingOrderColumnBytes (so that the ~8 most recent ones stay in a 32 KiB L1).
/// Measured on the development machine (Zen 4) with the kernel alone: 1.2-1.4x at (2000, 784, 32) for 2-10%
/// density, 1.05x at 25%; no gain or a loss with 12.8 examples per unit (batch 128) or 8 KiB columns.
/// Only the forward uses it (see sparse_expert_backward).
inline constexpr Index kLeadingOrderExamples = 8;
inline constexpr Index kLeadingOrderColumnBytes = 4096;
inline bool leading_order_pays(const ActiveSet& active, ListLayout layout, Index column_bytes) noexcept {
  return layout == ListLayout::by_unit && active.batch() <= ActiveSet::kMaskBatch &&
         column_bytes <= kLeadingOrderColumnBytes &&
         active.nonzeros() <= kLeadingOrderExamples * active.active_units();
}

/// Leading dimension for a copy of `rows x batch` activations that the kernels read K columns at a time.
/// When a column is a multiple of 1 KiB (e.g. 4096 floats) the K columns fall into the same few L1 cache
/// sets and evict each other (and stores alias loads 4 KiB apart): measured 3-5x slower at in = 4096. One
/// cache line of padding spreads them over the sets.
template <class T>
Index padded_stride(Index rows) {
  return (rows * static_cast<Index>(sizeof(T))) % 1024 == 0 ? rows + 64 / static_cast<Index>(sizeof(T)) : rows;
}

/// out[k] = sum_j w[j] * x[k][j] for k < K, j < n: one weight column against K input columns, loading
/// each packet of w once. With fewer than 8 columns the j loop is unrolled so that at least 8 (K = 1, 2, 4)
/// or 9 (K = 3) independent accumulators hide the FMA latency (4 cycles, 2 FMA pipes on Zen 4); `ahead`
/// is the column whose lines are prefetched meanwhile, one line per packet of w.
template <class T, int K>
inline void dot_block(const T* w, const T* const* partners, Index n, T* out, const T* ahead) {
  using P = Packet<T>;
  const T* x[K];
  STOCH_UNROLL
  for (int k = 0; k < K; ++k) x[k] = in_register(partners[k]);
  constexpr Index S = kPacketSize<T>;
  constexpr int U = K >= 8 ? 1 : K >= 4 ? 2 : K == 3 ? 3 : 8 / K;
  P acc[U][K];
  STOCH_UNROLL
  for (int u = 0; u < U; ++u)
    STOCH_UNROLL
    for (int k = 0; k < K; ++k) acc[u][k] = Eigen::internal::pset1<P>(T(0));
  Index j = 0;
  for (; j + U * S <= n; j += U * S)
    STOCH_UNROLL
    for (int u = 0; u < U; ++u) {
      prefetch(ahead + j + u * S);
      const P wp = Eigen::internal::ploadu<P>(w + j + u * S);
      STOCH_UNROLL
      for (int k = 0; k < K; ++k)
        acc[u][k] = Eigen::internal::pmadd(wp, Eigen::internal::ploadu<P>(x[k] + j + u * S), acc[u][k]);
    }
  for (; j + S <= n; j += S) {
    const P wp = Eigen::internal::ploadu<P>(w + j);
    STOCH_UNROLL
    for (int k = 0; k < K; ++k)
      acc[0][k] = Eigen::internal::pmadd(wp, Eigen::internal::ploadu<P>(x[k] + j), acc[0][k]);
  }
  STOCH_UNROLL
  for (int k = 0; k < K; ++k) {
    STOCH_UNROLL
    for (int u = 1; u < U; ++u) acc[0][k] = Eigen::internal::padd(acc[0][k], acc[u][k]);
    T sum = Eigen::internal::predux(acc[0][k]);
    for (Index t = j; t < n; ++t) sum += w[t] * x[k][t];
    out[k] = sum;
  }
}

/// The fused expert backward for one unit and K of its examples, over n rows of the `in` axis:
///   g[j]    += sum_k c[k] * x[k][j]   (dW: the unit's weight-gradient column)       if kFixedGradient
///   dx[k][j] += c[k] * w[j]           (the expert's share of dL/dx)                 if kPartnerGradients
/// with c[k] = dL/dH[i, b_k] = h[i, b_k] * dy[i, b_k]. w and g are loaded once per packet for K examples.
/// (By example the roles swap: see ListOperands.) A side that is not wanted (dL/dx at the bottom of a
/// network) is neither loaded nor stored; the other side's sums are the same, in the same order.
template <class T, int K, bool kFixedGradient = true, bool kPartnerGradients = true>
inline void backward_block(const T* w, T* g, const T* const* partners, T* const* partner_gradients, const T* c,
                           Index n, const T* ahead, T* ahead_g) {
  using P = Packet<T>;
  const T* x[K];
  T* dx[K];
  STOCH_UNROLL
  for (int k = 0; k < K; ++k) {
    x[k] = in_register(partners[k]);
    dx[k] = kPartnerGradients ? in_register(partner_gradients[k]) : nullptr;
  }
  constexpr Index S = kPacketSize<T>;
  P coefficient[K];
  STOCH_UNROLL
  for (int k = 0; k < K; ++k) coefficient[k] = Eigen::internal::pset1<P>(c[k]);
  Index j = 0;
  for (; j + S <= n; j += S) {
    prefetch(ahead + j);
    if constexpr (kFixedGradient) prefetch_for_write(ahead_g + j);
    if constexpr (kFixedGradient) {
      // Two chains for g (even and odd k): one chain of K dependent FMAs per packet was latency-bound.
      P gp[2] = {Eigen::internal::ploadu<P>(g + j), Eigen::internal::pset1<P>(T(0))};
      STOCH_UNROLL
      for (int k = 0; k < K; ++k)
        gp[k % 2] = Eigen::internal::pmadd(coefficient[k], Eigen::internal::ploadu<P>(x[k] + j), gp[k % 2]);
      Eigen::internal::pstoreu(g + j, K > 1 ? Eigen::internal::padd(gp[0], gp[1]) : gp[0]);
    }
    if constexpr (kPartnerGradients) {
      const P wp = Eigen::internal::ploadu<P>(w + j);
      STOCH_UNROLL
      for (int k = 0; k < K; ++k)
        Eigen::internal::pstoreu(dx[k] + j,
                                 Eigen::internal::pmadd(coefficient[k], wp, Eigen::internal::ploadu<P>(dx[k] + j)));
    }
  }
  for (; j < n; ++j) {
    T gj = kFixedGradient ? g[j] : T(0);
    STOCH_UNROLL
    for (int k = 0; k < K; ++k) {
      if constexpr (kFixedGradient) gj += c[k] * x[k][j];
      if constexpr (kPartnerGradients) dx[k][j] += c[k] * w[j];
    }
    if constexpr (kFixedGradient) g[j] = gj;
  }
}

/// Widest register block of the forward's dot products: with 32 vector registers (AVX-512) 16
/// accumulators fit and halve the reloads of the weight column against 8 (measured 4% faster on the
/// (4096, 4096, 256) layer at 10%); with 16 registers more than 8 would spill.
#if defined(__AVX512F__)
inline constexpr int kWidestDotBlock = 16;
#else
inline constexpr int kWidestDotBlock = 8;
#endif

/// Calls `block.template operator()<K>(first)` over `count` items: blocks of kWidest (16 or 8), then at
/// most one of 8, then one block of the exact remainder (a unit open in 3 examples is one K = 3 block:
/// 4 loads per 3 FMAs, not 5).
template <int kWidest = 8, class Block>
inline void for_each_block(Index count, Block&& block) {
  static_assert(kWidest == 8 || kWidest == 16);
  Index first = 0;
  for (; first + kWidest <= count; first += kWidest) block.template operator()<kWidest>(first);
  if constexpr (kWidest == 16)
    if (first + 8 <= count) {
      block.template operator()<8>(first);
      first += 8;
    }
  switch (count - first) {
    case 7: block.template operator()<7>(first); break;
    case 6: block.template operator()<6>(first); break;
    case 5: block.template operator()<5>(first); break;
    case 4: block.template operator()<4>(first); break;
    case 3: block.template operator()<3>(first); break;
    case 2: block.template operator()<2>(first); break;
    case 1: block.template operator()<1>(first); break;
    default: break;
  }
}

/// The two operands of a kernel pass in list order. By unit, list m is unit m: its weight column is the
/// operand loaded once ("fixed") and the inputs of its examples are the "partners"; by example the roles
/// swap. The dot products and the backward updates are symmetric in the two, so one kernel serves both.
template <class T>
struct ListOperands {
  const ActiveSet& active;
  const MatrixCRef<T>& weights_t;  // in x units
  const MatrixCRef<T>& x;          // in x batch
  bool by_unit() const { return active.layout() == ListLayout::by_unit; }
  const T* fixed(Index m, Index j0) const { return (by_unit() ? weights_t.col(m) : x.col(m)).data() + j0; }
  const T* partner(Index other, Index j0) const {
    return (by_unit() ? x.col(other) : weights_t.col(other)).data() + j0;
  }
};

/// The loop of sparse_expert_forward (below) over any `operands` with ListOperands' fixed(m, j0) and
/// partner(other, j0) (`in` rows, `batch` examples): the benchmarks use it to read the weights from a
/// few columns that stay in cache, a control for what streaming them costs.
template <class T, class Operands>
void sparse_expert_forward_with(const ActiveSet& active, const Operands& operands, Index in, Index batch, T* sums,
                                Index chunk_bytes = kChunkBytes) {
  const Index rows = chunk_rows<T>(in, batch, chunk_bytes);
  for (Index j0 = 0; j0 < in; j0 += rows) {
    const Index n = std::min(rows, in - j0);
    const bool first_chunk = j0 == 0;
    const std::span<const std::int32_t> order = active.visit_order();
    for (std::size_t q = 0; q < order.size(); ++q) {
      const Index m = order[q];
      const std::span<const std::int32_t> others = active.list(m);
      const T* fixed = operands.fixed(m, j0);
      // The fixed column kPrefetchLists lists ahead, or the last one again near the end (harmless).
      const T* ahead = operands.fixed(order[std::min(q + static_cast<std::size_t>(kPrefetchLists), order.size() - 1)], j0);
      T* list_sums = sums + active.offset(m);
      for_each_block<kWidestDotBlock>(static_cast<Index>(others.size()), [&]<int K>(Index first) {
        const T* partners[K];
        T out[K];
        STOCH_UNROLL
        for (int k = 0; k < K; ++k) partners[k] = operands.partner(others[static_cast<std::size_t>(first + k)], j0);
        dot_block<T, K>(fixed, partners, n, out, ahead);
        STOCH_UNROLL
        for (int k = 0; k < K; ++k) list_sums[first + k] = first_chunk ? out[k] : list_sums[first + k] + out[k];
      });
    }
  }
}

/// Sparse expert forward: for every open pair (i, b) of `active`, the dot product
/// H[i, b] = sum_j Wt[j, i] x[j, b], written to `sums` (nonzeros() values) in the flat order of the lists
/// (ActiveSet::for_each_open gives each value's pair). Wt is `in x units`, x is `in x batch`. The sums are
/// written sequentially; scattering them into `units x batch` matrices inside the kernel (cold lines,
/// one per pair, 16 KB apart for the 4096 layer) slowed its loads. `sums` also carries the running sums
/// between cache chunks.
template <class T>
void sparse_expert_forward(const ActiveSet& active, const MatrixCRef<T>& weights_t, const MatrixCRef<T>& x,
                           T* sums, Index chunk_bytes = kChunkBytes) {
  sparse_expert_forward_with<T>(active, ListOperands<T>{active, weights_t, x}, x.rows(), x.cols(), sums,
                                chunk_bytes);
}

/// Sparse expert backward over the open pairs of `active`, with `coefficients` = dL/dH at those pairs in
/// the flat order of the lists: ACCUMULATES the weight gradient (`in x units`, transposed like the
/// weights) and, if `with_input_gradient`, ACCUMULATES the expert's share of dL/dx into `input_gradient`
/// (`in x batch`; not touched otherwise). The weight gradient is the same either way, bit for bit.
template <class T>
void sparse_expert_backward(const ActiveSet& active, const T* coefficients, const MatrixCRef<T>& weights_t,
                            const MatrixCRef<T>& x, MatrixRef<T> weight_gradient_t, MatrixRef<T> input_gradient,
                            Index chunk_bytes = kChunkBytes, bool with_input_gradient = true) {
  const ListOperands<T> operands{active, weights_t, x};
  const bool by_unit = operands.by_unit();
  // By unit the fixed operand's gradient is dW and the partners' are dL/dx; by example the reverse. A
  // gradient that is not updated is not addressed either (input_gradient may then be empty).
  const bool update_fixed = by_unit || with_input_gradient;
  const bool update_partners = !by_unit || with_input_gradient;
  auto fixed_gradient = [&](Index m, Index j0) -> T* {
    if (by_unit) return weight_gradient_t.col(m).data() + j0;
    return update_fixed ? input_gradient.col(m).data() + j0 : nullptr;
  };
  auto partner_gradient = [&](Index other, Index j0) -> T* {
    if (!by_unit) return weight_gradient_t.col(other).data() + j0;
    return update_partners ? input_gradient.col(other).data() + j0 : nullptr;
  };
  const Index in = x.rows();
  const Index rows = chunk_rows<T>(in, x.cols(), chunk_bytes);
  for (Index j0 = 0; j0 < in; j0 += rows) {
    const Index n = std::min(rows, in - j0);
    // The natural order, whatever visit_order() says: another order of the units would change the order
    // of the sums into each column of dL/dx, hence the rounding of training runs made before it existed.
    const std::span<const std::int32_t> order = active.natural_order();
    for (std::size_t q = 0; q < order.size(); ++q) {
      const Index m = order[q];
      const std::span<const std::int32_t> others = active.list(m);
      // By unit: w = the unit's weights, g = its weight gradient, partners = inputs and input gradients.
      // By example: w = the example's input, g = its input gradient, partners = weights and their gradients.
      const T* w = operands.fixed(m, j0);
      T* g = fixed_gradient(m, j0);
      const T* c = coefficients + active.offset(m);
      const Index next = order[std::min(q + static_cast<std::size_t>(kPrefetchLists), order.size() - 1)];
      const T* ahead = operands.fixed(next, j0);
      T* ahead_g = fixed_gradient(next, j0);
      for_each_block(static_cast<Index>(others.size()), [&]<int K>(Index first) {
        const T* partners[K];
        T* partner_gradients[K];
        STOCH_UNROLL
        for (int k = 0; k < K; ++k) {
          const Index other = others[static_cast<std::size_t>(first + k)];
          partners[k] = operands.partner(other, j0);
          partner_gradients[k] = partner_gradient(other, j0);
        }
        if (update_fixed && update_partners)
          backward_block<T, K>(w, g, partners, partner_gradients, c + first, n, ahead, ahead_g);
        else if (update_fixed)
          backward_block<T, K, true, false>(w, g, partners, partner_gradients, c + first, n, ahead, ahead_g);
        else
          backward_block<T, K, false, true>(w, g, partners, partner_gradients, c + first, n, ahead, ahead_g);
      });
    }
  }
}

}  // namespace internal
}  // namespace stoch
