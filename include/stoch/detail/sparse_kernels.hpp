// not part of the public API; included by stoch/conditional/gated_layer.hpp.
//
// stoch — the kernels that make conditional computation real (Sec. 5: "first compute h_i and only compute
// H_i if h_i != 0"): the expert's forward and backward over the open pairs of an ActiveSet.
//
// Layout. The gate matrix h is `units x batch`. The expert's weights are stored transposed, `in x units`,
// so that one unit's incoming weights are one contiguous column. With by-unit lists a kernel loads a piece
// of the unit's weight column once and uses it for K examples at a time (register blocking), so that W, the
// largest operand (2000 x 784 floats = 6 MB in the paper's network), is streamed once per pass instead of
// once per example; with by-example lists the roles of W and x swap (ListOperands).
//
// What bounds the forward: each FMA needs a fresh packet of x (the unit's weight packet is reused K times,
// x is not reused across units: two units share an open example with probability density^2), so the
// kernel runs at the rate x arrives from the cache level that holds it, and at density d it gains about
// 0.5 / d over the dense product. The order in which the units are walked (VisitOrder) lets consecutive
// units share input columns from L1. Why: docs/performance-notes.md#sparse-forward-bound.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include <Eigen/Core>

#include "stoch/core/matrix.hpp"
#include "stoch/core/threads.hpp"
#include "stoch/detail/active_set.hpp"
#include "stoch/detail/sparse_plan.hpp"

// GCC 12's AVX-512 extract and undefined-vector intrinsics, which Eigen's horizontal sums (predux) use, trip
// -Wuninitialized where they are inlined (GCC bug 105593); the warning is about the intrinsics, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace stoch::internal {

// The kernels' loops over the K examples of a block (and the unrolled packets) must be unrolled
// completely, so that the K accumulators and pointers live in registers, not in stack arrays.
// Why: docs/performance-notes.md#unroll.
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

/// out[k] = sum_j w[j] * x[k][j] for k < K, j < n: one weight column against K input columns, loading
/// each packet of w once. With fewer than 8 columns the j loop is unrolled so that at least 8 (K = 1, 2, 4)
/// or 9 (K = 3) independent accumulators hide the FMA latency (latency times FMA pipes, 4 x 2 on current
/// x86-64 cores); `ahead` is the column whose lines are prefetched meanwhile, one line per packet of w.
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
      // Two chains for g (even and odd k): one chain of K dependent FMAs per packet would be latency-bound.
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
/// accumulators fit and halve the reloads of the weight column against 8; with 16 registers more than 8
/// would spill. Why: docs/performance-notes.md#widest-dot-block.
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
  const T* fixed(Index m) const { return (by_unit() ? weights_t.col(m) : x.col(m)).data(); }
  const T* partner(Index other) const { return (by_unit() ? x.col(other) : weights_t.col(other)).data(); }
};

/// Sparse expert forward: for every open pair (i, b) of `active`, the dot product
/// H[i, b] = sum_j Wt[j, i] x[j, b], written to `sums` (nonzeros() values) in the flat order of the lists
/// (ActiveSet::for_each_open gives each value's pair). Wt is `in x units`, x is `in x batch`. The sums are
/// written sequentially: scattering them into `units x batch` matrices inside the kernel (cold lines, one
/// per pair) would slow its loads. The lists are walked in active.visit_order(); the values do not depend
/// on it.
template <class T>
void sparse_expert_forward(const ActiveSet& active, const MatrixCRef<T>& weights_t, const MatrixCRef<T>& x, T* sums) {
  const ListOperands<T> operands{active, weights_t, x};
  const Index n = x.rows();
  const std::span<const std::int32_t> order = active.visit_order();
  const auto lists = static_cast<Index>(order.size());
  // Each list writes its own sums, whatever thread computes it: split over the threads by runs of lists.
  [[maybe_unused]] const bool parallel =
      threads() > 1 && static_cast<double>(active.nonzeros()) * static_cast<double>(n) > kMinParallelWork;
  STOCH_OMP_PARALLEL_FOR(parallel)
  for (Index q = 0; q < lists; ++q) {
    const Index m = order[static_cast<std::size_t>(q)];
    const std::span<const std::int32_t> others = active.list(m);
    const T* fixed = operands.fixed(m);
    // The fixed column kPrefetchLists lists ahead, or the last one again near the end (harmless).
    const T* ahead = operands.fixed(order[static_cast<std::size_t>(std::min<Index>(q + kPrefetchLists, lists - 1))]);
    T* list_sums = sums + active.offset(m);
    for_each_block<kWidestDotBlock>(static_cast<Index>(others.size()), [&]<int K>(Index first) {
      const T* partners[K];
      T out[K];
      STOCH_UNROLL
      for (int k = 0; k < K; ++k) partners[k] = operands.partner(others[static_cast<std::size_t>(first + k)]);
      dot_block<T, K>(fixed, partners, n, out, ahead);
      STOCH_UNROLL
      for (int k = 0; k < K; ++k) list_sums[first + k] = out[k];
    });
  }
}

/// Sparse expert backward over the open pairs of `active`, with `coefficients` = dL/dH at those pairs in
/// the flat order of the lists: ACCUMULATES the weight gradient (`in x units`, transposed like the
/// weights) and, if `with_input_gradient`, ACCUMULATES the expert's share of dL/dx into `input_gradient`
/// (`in x batch`; not touched otherwise). The weight gradient is the same either way, bit for bit.
template <class T>
void sparse_expert_backward(const ActiveSet& active, const T* coefficients, const MatrixCRef<T>& weights_t,
                            const MatrixCRef<T>& x, MatrixRef<T> weight_gradient_t, MatrixRef<T> input_gradient,
                            bool with_input_gradient = true) {
  const ListOperands<T> operands{active, weights_t, x};
  const bool by_unit = operands.by_unit();
  // By unit the fixed operand's gradient is dW and the partners' are dL/dx; by example the reverse. A
  // gradient that is not updated is not addressed either (input_gradient may then be empty).
  const bool update_fixed = by_unit || with_input_gradient;
  const bool update_partners = !by_unit || with_input_gradient;
  auto fixed_gradient = [&](Index m) -> T* {
    if (by_unit) return weight_gradient_t.col(m).data();
    return update_fixed ? input_gradient.col(m).data() : nullptr;
  };
  auto partner_gradient = [&](Index other) -> T* {
    if (!by_unit) return weight_gradient_t.col(other).data();
    return update_partners ? input_gradient.col(other).data() : nullptr;
  };
  const Index n = x.rows();
  // The natural order, whatever visit_order() says: another order of the units would change the order of
  // the sums into each column of dL/dx, hence the rounding of training runs made with the natural order.
  const std::span<const std::int32_t> order = active.natural_order();
  // Every list writes into columns other lists share (dL/dx by unit, dW by example), so the threads split
  // the `in` axis instead: each walks all the lists over its own range of rows, whose boundaries fall on
  // whole cache lines (a multiple of the packet size), so that every row is summed by the same packet or
  // scalar code, in the same order, as on one thread: the same bits for any thread count.
  constexpr Index kAlign = std::max<Index>(64 / static_cast<Index>(sizeof(T)), kPacketSize<T>);
  const Index ranges = std::max<Index>(1, std::min<Index>(threads(), n / (4 * kAlign)));
  const Index span = (n / ranges + kAlign - 1) / kAlign * kAlign;
  [[maybe_unused]] const bool parallel =
      ranges > 1 && static_cast<double>(active.nonzeros()) * static_cast<double>(n) > kMinParallelWork;
  STOCH_OMP_PARALLEL_FOR(parallel)
  for (Index r = 0; r < ranges; ++r) {
    const Index j0 = std::min(n, r * span), rows = (r + 1 == ranges ? n : std::min(n, (r + 1) * span)) - j0;
    if (rows <= 0) continue;
    auto at = [j0](auto* pointer) { return pointer == nullptr ? pointer : pointer + j0; };
    for (std::size_t q = 0; q < order.size(); ++q) {
      const Index m = order[q];
      const std::span<const std::int32_t> others = active.list(m);
      // By unit: w = the unit's weights, g = its weight gradient, partners = inputs and input gradients.
      // By example: w = the example's input, g = its input gradient, partners = weights and their gradients.
      const T* w = at(operands.fixed(m));
      T* g = at(fixed_gradient(m));
      const T* c = coefficients + active.offset(m);
      const Index next = order[std::min(q + static_cast<std::size_t>(kPrefetchLists), order.size() - 1)];
      const T* ahead = at(operands.fixed(next));
      T* ahead_g = at(fixed_gradient(next));
      for_each_block(static_cast<Index>(others.size()), [&]<int K>(Index first) {
        const T* partners[K];
        T* partner_gradients[K];
        STOCH_UNROLL
        for (int k = 0; k < K; ++k) {
          const Index other = others[static_cast<std::size_t>(first + k)];
          partners[k] = at(operands.partner(other));
          partner_gradients[k] = at(partner_gradient(other));
        }
        if (update_fixed && update_partners)
          backward_block<T, K>(w, g, partners, partner_gradients, c + first, rows, ahead, ahead_g);
        else if (update_fixed)
          backward_block<T, K, true, false>(w, g, partners, partner_gradients, c + first, rows, ahead, ahead_g);
        else
          backward_block<T, K, false, true>(w, g, partners, partner_gradients, c + first, rows, ahead, ahead_g);
      });
    }
  }
}

}  // namespace stoch::internal

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
