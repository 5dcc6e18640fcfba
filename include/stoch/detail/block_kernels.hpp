// not part of the public API; included by stoch/conditional/gated_layer.hpp.
//
// stoch — the expert of a gated layer whose gates govern blocks of k consecutive units (Sec. 5 with
// y_i = h_{floor(i/k)} H_i): the open (block, example) pairs computed block by block over the examples that
// open the block, the dense path in the same layout, and their backward.
//
// Layout ("block layout"). The expert's weights, `units x in` as a matrix, are stored block after block: the
// stored matrix is `(k in) x (units / k)`, its column j holding block j's `k x in` weights column-major, so a
// block is one contiguous run of memory (read at the memory's streaming speed by a batch of one) and the k
// weights from one input are one cache line for k = 16 floats.
//
// Kernels. For block j and a tile of E of its examples, the k x E results stay in registers while the loop runs
// over the inputs: each step loads the block's k weights of input i once and multiplies them by the E inputs
// x_e[i] (broadcast), so the block's weights are read once per tile, and a block open in few examples costs
// what its multiply-adds cost. Every result is bias + sum over i in increasing order of W(r, i) x(i, e), one
// fused multiply-add after another: the same bits whatever the tile, the number of open examples, the path
// (dense or sparse) or the thread count. dW accumulates the same way (each tile adds its columns in order to
// dW's line), so dW's bits do not depend on the tiling either; dL/dx uses Eigen's product per block.
//
// Threads: the forward, dH, db, dL/dh and dW are split by blocks (each thread writes its blocks' rows only);
// dL/dx by ranges of inputs (each thread sums every block, in order, into its rows only). No result depends on
// the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"
#include "stoch/core/threads.hpp"
#include "stoch/detail/active_set.hpp"
#include "stoch/detail/zero_skipping_product.hpp"

// See zero_skipping_product.hpp (Eigen's packet traits) and sparse_kernels.hpp (GCC bug 105593 in the
// AVX-512 intrinsics of Eigen's packet math).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace stoch::internal {

// ---- the block layout ----

/// `w` (`units x in`) in the block layout: `(k in) x (units / k)`, column j = rows jk .. jk + k - 1 of w,
/// column-major.
template <class T>
void to_block_layout(const MatrixCRef<T>& w, Index k, Matrix<T>& stored) {
  const Index blocks = w.rows() / k, in = w.cols();
  stored.resize(k * in, blocks);
  for (Index j = 0; j < blocks; ++j) Eigen::Map<Matrix<T>>(stored.col(j).data(), k, in) = w.middleRows(j * k, k);
}

/// The `units x in` matrix of weights stored in the block layout with blocks of k.
template <class T>
Matrix<T> from_block_layout(const MatrixCRef<T>& stored, Index k) {
  const Index blocks = stored.cols(), in = stored.rows() / k;
  Matrix<T> w(blocks * k, in);
  for (Index j = 0; j < blocks; ++j)
    w.middleRows(j * k, k) = Eigen::Map<const Matrix<T>>(stored.col(j).data(), k, in);
  return w;
}

/// Growing buffers of the block kernels (no allocation once the batch's shape is steady).
template <class T>
struct BlockScratch {
  std::vector<const T*> columns;    ///< x's columns
  std::vector<T> coefficients;      ///< dH = h ⊙ dy at the open pairs, flat as the forward's H
  std::vector<std::vector<T>> parts;  ///< per range of inputs: one block's share of dL/dx before its scatter
  std::vector<std::vector<T>> gradients;  ///< per thread: one block's dW for a fused step (FusedStep)
  std::vector<Vector<T>> norms;           ///< per thread: the max-norm projection's k norms
  std::vector<std::uint8_t> refused;      ///< per block: the fused step refused the update (not finite)
};

/// Sgd's step fused into the backward (Parameter::fused_rate): each open block's dW is computed into a
/// per-thread buffer (in L2) and stepped at once with internal::sgd_block_step, so the weights' gradient
/// never passes through memory: the step reads and writes the block's weights once. `parameter`: the
/// expert weights (their `grad` is not written), `rate`: the learning rate times the parameter's scale.
template <class T>
struct FusedStep {
  Parameter<T>* parameter;
  T rate;
};

/// A `rows x cols` column-major view of `buffer`, grown if it is too small.
template <class T>
Eigen::Map<Matrix<T>> scratch_matrix(std::vector<T>& buffer, Index rows, Index cols) {
  const auto size = static_cast<std::size_t>(rows * cols);
  if (buffer.size() < size) buffer.resize(size);
  return {buffer.data(), rows, cols};
}

/// Where block j's columns are: `examples` (nullptr: all `count` columns of the batch, in order), and the
/// block's values (H or dH), column q at values + first + q * ld.
struct BlockColumns {
  const std::int32_t* examples;
  Index count, first, ld;
  Index example(Index q) const { return examples == nullptr ? q : examples[q]; }
};

// ---- the register tiles ----

/// Vector registers of the target: the tiles keep Q E accumulators, Q weights and a broadcast in them.
inline constexpr int kVectorRegisters =
#if defined(__AVX512F__)
    32;
#else
    16;
#endif

/// Columns of a tile of Q packets of rows (at most 8).
template <int Q>
inline constexpr int kTileColumns = std::min(8, (kVectorRegisters - Q - 2) / Q);

/// E columns of a block's rows [row, row + (Q - 1) S + last): out_e = bias + sum_i w[:, i] x_e[i] (w: the
/// block's first weight of these rows, column stride ld; bias may be null).
template <class T, int Q, int E>
void forward_tile(const T* w, Index ld, Index in, const T* const* x, const T* bias, T* const* out, Index last) {
  using P = Packet<T>;
  constexpr Index S = kPacketSize<T>;
  auto size = [&](int q) { return q + 1 < Q ? S : last; };
  P acc[E][Q];
  for (int q = 0; q < Q; ++q) {
    const P b = bias != nullptr ? load_first(bias + q * S, size(q)) : Eigen::internal::pset1<P>(T(0));
    for (int e = 0; e < E; ++e) acc[e][q] = b;
  }
  for (Index i = 0; i < in; ++i) {
    P wi[Q];
    for (int q = 0; q < Q; ++q) wi[q] = load_first(w + i * ld + q * S, size(q));
    for (int e = 0; e < E; ++e) {
      const P v = Eigen::internal::pset1<P>(x[e][i]);
      for (int q = 0; q < Q; ++q) acc[e][q] = Eigen::internal::pmadd(wi[q], v, acc[e][q]);
    }
  }
  for (int e = 0; e < E; ++e)
    for (int q = 0; q < Q; ++q) store_first(out[e] + q * S, acc[e][q], size(q));
}

/// dw[:, i] += sum_e dh_e x_e[i] for every input i, the E columns added in order (rows as forward_tile).
template <class T, int Q, int E>
void weight_gradient_tile(T* dw, Index ld, Index in, const T* const* x, const T* const* dh, Index last) {
  using P = Packet<T>;
  constexpr Index S = kPacketSize<T>;
  auto size = [&](int q) { return q + 1 < Q ? S : last; };
  P d[E][Q];
  for (int e = 0; e < E; ++e)
    for (int q = 0; q < Q; ++q) d[e][q] = load_first(dh[e] + q * S, size(q));
  for (Index i = 0; i < in; ++i) {
    P acc[Q];
    for (int q = 0; q < Q; ++q) acc[q] = load_first(dw + i * ld + q * S, size(q));
    for (int e = 0; e < E; ++e) {
      const P v = Eigen::internal::pset1<P>(x[e][i]);
      for (int q = 0; q < Q; ++q) acc[q] = Eigen::internal::pmadd(d[e][q], v, acc[q]);
    }
    for (int q = 0; q < Q; ++q) store_first(dw + i * ld + q * S, acc[q], size(q));
  }
}

/// The tiles of one block: Q packets of rows at a time (chunks of up to 4 packets), E columns at a time.
/// `kind` 0: forward (out = bias + W x), 1: weight gradient (dw += dh x^T). Targets without masked packet
/// loads sum the rows past the last whole packet one by one, in the same order.
template <class T>
struct BlockTiles {
  const T* w;        // forward: the block's weights; weight gradient: unused
  T* dw;             // weight gradient: the block's gradient; forward: unused
  Index k, in;
  const T* const* columns;  // x's columns, by example
  BlockColumns cols;        // the block's examples and values
  T* values;                // forward: H (written); weight gradient: dH (read)
  const T* bias;            // forward only, may be null

  template <int Q, int E>
  void tile(Index row, Index q0, Index last, bool forward) const {
    const T* x[E];
    T* v[E];
    for (int e = 0; e < E; ++e) {
      x[e] = columns[cols.example(q0 + e)];
      v[e] = values + cols.first + (q0 + e) * cols.ld + row;
    }
    if (forward) forward_tile<T, Q, E>(w + row, k, in, x, bias != nullptr ? bias + row : nullptr, v, last);
    else weight_gradient_tile<T, Q, E>(dw + row, k, in, x, v, last);
  }

  template <int Q>
  void rows(Index row, Index last, bool forward) const {
    constexpr int E = kTileColumns<Q>;
    const Index n = cols.count;
    Index q = 0;
    for (; q + E <= n; q += E) tile<Q, E>(row, q, last, forward);
    rest<Q, E - 1>(row, q, n - q, last, forward);
  }

  template <int Q, int E>
  void rest(Index row, Index q, Index left, Index last, bool forward) const {
    if constexpr (E > 0) {
      if (left == E) tile<Q, E>(row, q, last, forward);
      else rest<Q, E - 1>(row, q, left, last, forward);
    }
  }

  void run(bool forward) const {
    using P = Packet<T>;
    constexpr Index S = kPacketSize<T>;
    constexpr bool kMasked = Eigen::internal::unpacket_traits<P>::masked_load_available &&
                            Eigen::internal::unpacket_traits<P>::masked_store_available;
    const Index vector_rows = kMasked ? k : k / S * S;
    for (Index r0 = 0; r0 < vector_rows; r0 += 4 * S) {
      const Index packets = std::min<Index>(4, (vector_rows - r0 + S - 1) / S);
      const Index last = std::min(S, vector_rows - r0 - (packets - 1) * S);
      switch (packets) {
        case 1: rows<1>(r0, last, forward); break;
        case 2: rows<2>(r0, last, forward); break;
        case 3: rows<3>(r0, last, forward); break;
        default: rows<4>(r0, last, forward); break;
      }
    }
    for (Index r = vector_rows; r < k; ++r)  // no masked loads: the last rows one by one
      for (Index q = 0; q < cols.count; ++q) {
        const T* x = columns[cols.example(q)];
        T* v = values + cols.first + q * cols.ld + r;
        if (forward) {
          T sum = bias != nullptr ? bias[r] : T(0);
          for (Index i = 0; i < in; ++i) sum += w[r + i * k] * x[i];
          *v = sum;
        } else {
          for (Index i = 0; i < in; ++i) dw[r + i * k] += *v * x[i];
        }
      }
  }
};

/// One open pair from the non-zero inputs only: out (k values) = bias + sum over the listed rows r of
/// x[r] w[:, r], where w points at the block's first weight (column stride ld = k in the block layout).
/// Chunks of up to 4 packets of units, as zero_skipping_product; targets without masked loads sum the units
/// past the last whole packet one by one.
template <class T>
void sparse_input_block(const T* w, Index ld, Index k, const T* x, const std::int32_t* rows, Index n,
                        const T* bias, T* out) {
  constexpr Index S = kPacketSize<T>;
  constexpr bool kMasked = Eigen::internal::unpacket_traits<Packet<T>>::masked_load_available &&
                          Eigen::internal::unpacket_traits<Packet<T>>::masked_store_available;
  const Index vector_units = kMasked ? k : k / S * S;
  for (Index r0 = 0; r0 < vector_units; r0 += 4 * S) {
    const Index packets = std::min<Index>(4, (vector_units - r0 + S - 1) / S);
    const Index last = std::min(S, vector_units - r0 - (packets - 1) * S);
    switch (packets) {
      case 1: zero_skipping_block<T, 1>(w + r0, ld, x, rows, n, bias + r0, out + r0, last); break;
      case 2: zero_skipping_block<T, 2>(w + r0, ld, x, rows, n, bias + r0, out + r0, last); break;
      case 3: zero_skipping_block<T, 3>(w + r0, ld, x, rows, n, bias + r0, out + r0, last); break;
      default: zero_skipping_block<T, 4>(w + r0, ld, x, rows, n, bias + r0, out + r0, last); break;
    }
  }
  for (Index u = vector_units; u < k; ++u) {
    T sum = bias[u];
    for (Index p = 0; p < n; ++p) sum += w[u + rows[p] * ld] * x[rows[p]];
    out[u] = sum;
  }
}

/// x's column pointers into scratch.columns.
template <class T>
const T* const* column_pointers(const MatrixCRef<T>& x, BlockScratch<T>& scratch) {
  scratch.columns.resize(static_cast<std::size_t>(x.cols()));
  for (Index e = 0; e < x.cols(); ++e) scratch.columns[static_cast<std::size_t>(e)] = x.col(e).data();
  return scratch.columns.data();
}

/// Whether a loop over `blocks` blocks of `work` multiply-adds each is worth more than one thread.
inline bool worth_threads(Index blocks, double work) {
  return blocks > 1 && static_cast<double>(blocks) * work > kMinParallelWork && threads() > 1;
}

/// Calls body(j, columns of block j) for every block, split over the threads by blocks. `columns(j)` gives
/// a BlockColumns.
template <class Columns, class Body>
void for_each_block(Index blocks, double work_per_block, const Columns& columns, const Body& body) {
  [[maybe_unused]] const bool parallel = worth_threads(blocks, work_per_block);
  STOCH_OMP_PARALLEL_FOR(parallel)
  for (Index j = 0; j < blocks; ++j) {
    const BlockColumns c = columns(j);
    if (c.count > 0) body(j, c);
  }
}

// ---- forward ----

/// H = W x + b for every unit and example (the dense path: `units x batch`), W in the block layout.
template <class T>
void block_dense_forward(Index k, const Matrix<T>& w, const T* bias, const MatrixCRef<T>& x, Matrix<T>& H,
                         BlockScratch<T>& scratch) {
  const Index blocks = w.cols(), in = x.rows(), units = blocks * k, batch = x.cols();
  H.resize(units, batch);
  const T* const* columns = column_pointers(x, scratch);
  for_each_block(
      blocks, static_cast<double>(k * in * batch), [&](Index j) { return BlockColumns{nullptr, batch, j * k, units}; },
      [&](Index j, const BlockColumns& c) {
        BlockTiles<T>{w.col(j).data(), nullptr, k, in, columns, c, H.data(), bias + j * k}.run(true);
      });
}

/// Forward over the open pairs: for every block j with open examples E_j (active's by-unit lists, built on
/// the `units / k x batch` gate matrix h), H_j = W_j x[:, E_j] + b_j, kept at open_expert + offset(j) * k
/// (`k x n_j`, nonzeros * k values in all), and y[jk + r, e_q] = h(j, e_q) H_j(r, q); y is `units x batch`,
/// zero at the closed blocks. w is in the block layout. With `nonzero` (NonzeroRows::build(x), complete) each
/// pair reads only its example's non-zero inputs (sparse_input_block).
template <class T>
void block_expert_forward(const ActiveSet& active, Index k, const Matrix<T>& w, const T* bias,
                          const MatrixCRef<T>& x, const MatrixCRef<T>& h, T* open_expert, Matrix<T>& y,
                          BlockScratch<T>& scratch, const NonzeroRows* nonzero = nullptr) {
  const Index in = x.rows(), blocks = w.cols();
  y.setZero(blocks * k, x.cols());
  const T* const* columns = column_pointers(x, scratch);
  const double per_block =
      static_cast<double>(k) * (nonzero != nullptr ? 0.1 * static_cast<double>(in) : static_cast<double>(in)) *
      static_cast<double>(std::max<Index>(1, active.nonzeros() / std::max<Index>(1, blocks)));
  auto open = [&](Index j) {
    const std::span<const std::int32_t> examples = active.list(j);
    return BlockColumns{examples.data(), static_cast<Index>(examples.size()), active.offset(j) * k, k};
  };
  for_each_block(blocks, per_block, open, [&](Index j, const BlockColumns& c) {
    if (nonzero != nullptr) {
      for (Index q = 0; q < c.count; ++q) {
        const auto e = static_cast<std::size_t>(c.example(q));
        const std::int32_t first = nonzero->offsets[e];
        sparse_input_block<T>(w.col(j).data(), k, k, columns[e], nonzero->rows.data() + first,
                              nonzero->offsets[e + 1] - first, bias + j * k, open_expert + c.first + q * k);
      }
    } else {
      BlockTiles<T>{w.col(j).data(), nullptr, k, in, columns, c, open_expert, bias + j * k}.run(true);
    }
    for (Index q = 0; q < c.count; ++q) {
      const Index e = c.example(q);
      y.col(e).segment(j * k, k) = h(j, e) * Eigen::Map<const Vector<T>>(open_expert + c.first + q * k, k);
    }
  });
}

// ---- backward ----

/// dx[:, columns] += W^T dH over every block, W in the block layout, dH block j's columns as `columns(j)`
/// says (values at dh). Split over the threads by ranges of inputs aligned to 192 rows (whole panels of
/// Eigen's product kernel), each thread summing the blocks in order into its own rows.
template <class T, class Columns>
void block_input_gradient(Index k, const Matrix<T>& w, const T* dh, const Columns& columns, Matrix<T>& dx,
                          BlockScratch<T>& scratch) {
  const Index blocks = w.cols(), in = w.rows() / k;
  constexpr Index kAlign = 192;
  const Index chunks = std::max<Index>(1, std::min<Index>(threads(), (in + kAlign - 1) / kAlign));
  if (scratch.parts.size() < static_cast<std::size_t>(chunks)) scratch.parts.resize(static_cast<std::size_t>(chunks));
  const Index span = (in / chunks + kAlign - 1) / kAlign * kAlign;
  [[maybe_unused]] const bool parallel = chunks > 1 && static_cast<double>(in) * static_cast<double>(k) *
                                                               static_cast<double>(dx.cols()) > kMinParallelWork;
  STOCH_OMP_PARALLEL_FOR(parallel)
  for (Index t = 0; t < chunks; ++t) {
    const Index i0 = std::min(in, t * span), i1 = t + 1 == chunks ? in : std::min(in, (t + 1) * span);
    if (i1 <= i0) continue;
    std::vector<T>& buffer = scratch.parts[static_cast<std::size_t>(t)];
    for (Index j = 0; j < blocks; ++j) {
      const BlockColumns c = columns(j);
      if (c.count == 0) continue;
      const Eigen::Map<const Matrix<T>> wj(w.col(j).data(), k, in);
      const Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> dhj(dh + c.first, k, c.count,
                                                                      Eigen::OuterStride<>(c.ld));
      if (c.examples == nullptr) {
        dx.middleRows(i0, i1 - i0).noalias() += wj.middleCols(i0, i1 - i0).transpose() * dhj;
      } else {
        Eigen::Map<Matrix<T>> part = scratch_matrix(buffer, i1 - i0, c.count);
        part.noalias() = wj.middleCols(i0, i1 - i0).transpose() * dhj;
        for (Index q = 0; q < c.count; ++q) dx.col(c.example(q)).segment(i0, i1 - i0) += part.col(q);
      }
    }
  }
}

/// dw += dH_j X_j^T for block j's open examples (dw: the block's `k x in` gradient, column-major): the register
/// tiles, or with `nonzero` each example's non-zero inputs only.
template <class T>
void block_weight_gradient(Index k, Index in, const T* const* columns, const BlockColumns& c, T* dH,
                           const NonzeroRows* nonzero, T* dw) {
  if (nonzero == nullptr) {
    BlockTiles<T>{nullptr, dw, k, in, columns, c, dH, nullptr}.run(false);
    return;
  }
  const Eigen::Map<const Matrix<T>> dHj(dH + c.first, k, c.count);
  for (Index q = 0; q < c.count; ++q) {
    const auto e = static_cast<std::size_t>(c.example(q));
    const T* xe = columns[e];
    for (std::int32_t p = nonzero->offsets[e]; p < nonzero->offsets[e + 1]; ++p) {
      const std::int32_t r = nonzero->rows[static_cast<std::size_t>(p)];
      Eigen::Map<Vector<T>>(dw + r * k, k) += xe[r] * dHj.col(q);
    }
  }
}

/// The fused step (FusedStep) of every block with columns: dW_j into a per-thread buffer, then
/// sgd_block_step; split over the threads by blocks. Returns the first block whose step was refused, or -1.
template <class T, class Columns>
Index fused_block_steps(Index blocks, double per_block, const Columns& columns_of, Index k, Index in,
                        const T* const* columns, T* dH, const NonzeroRows* nonzero, const FusedStep<T>& fused,
                        BlockScratch<T>& scratch) {
  const auto slots = static_cast<std::size_t>(threads());
  scratch.gradients.resize(std::max(scratch.gradients.size(), slots));
  scratch.norms.resize(std::max(scratch.norms.size(), slots));
  scratch.refused.assign(static_cast<std::size_t>(blocks), 0);
  for_each_block(blocks, per_block, columns_of, [&](Index j, const BlockColumns& c) {
    const auto t = static_cast<std::size_t>(thread_index());
    std::vector<T>& dw = scratch.gradients[t];
    dw.assign(static_cast<std::size_t>(k * in), T(0));
    block_weight_gradient(k, in, columns, c, dH, nonzero, dw.data());
    if (!sgd_block_step(*fused.parameter, j, dw.data(), fused.rate, scratch.norms[t]))
      scratch.refused[static_cast<std::size_t>(j)] = 1;
  });
  const auto bad = std::find(scratch.refused.begin(), scratch.refused.end(), std::uint8_t{1});
  return bad == scratch.refused.end() ? Index(-1) : static_cast<Index>(bad - scratch.refused.begin());
}

/// The dense path's backward, W in the block layout: dW += dH x^T, db += row sums of dH, and, when
/// `input_gradient` is given, dx = W^T dH (`in x batch`, overwritten). dH: `units x batch`. With `fused`, as
/// block_expert_backward: every block stepped at once after dx has read W; returns the first refused, or -1.
template <class T>
Index block_dense_backward(Index k, const Matrix<T>& w, const MatrixCRef<T>& x, Matrix<T>& dH,
                           Matrix<T>& weight_grad, T* bias_grad, Matrix<T>* input_gradient, BlockScratch<T>& scratch,
                           const FusedStep<T>* fused = nullptr) {
  const Index blocks = w.cols(), in = x.rows(), units = blocks * k, batch = x.cols();
  const T* const* columns = column_pointers(x, scratch);
  auto all = [&](Index j) { return BlockColumns{nullptr, batch, j * k, units}; };
  const double per_block = static_cast<double>(k * in * batch);
  for_each_block(blocks, per_block, all, [&](Index j, const BlockColumns& c) {
    if (fused == nullptr)
      BlockTiles<T>{nullptr, weight_grad.col(j).data(), k, in, columns, c, dH.data(), nullptr}.run(false);
    Eigen::Map<Vector<T>>(bias_grad + j * k, k) += dH.middleRows(j * k, k).rowwise().sum();
  });
  if (input_gradient != nullptr) {
    input_gradient->setZero(in, batch);
    block_input_gradient<T>(k, w, dH.data(), all, *input_gradient, scratch);
  }
  if (fused == nullptr) return -1;
  return fused_block_steps(blocks, per_block, all, k, in, columns, dH.data(), nullptr, *fused, scratch);
}

/// Backward over the open pairs (lists as in block_expert_forward): dH_j = h ⊙ dy at the block's open
/// examples, db += row sums of dH_j, dW_j += dH_j X_j^T (weight_grad in the block layout; with `nonzero`, only
/// at the examples' non-zero inputs), and, when `input_gradient` is given (`in x batch`, zeroed by the
/// caller), dx[:, E_j] += W_j^T dH_j. When `open_expert` (the forward's H at the open pairs) and
/// `gate_gradient` are given, gate_gradient(j, e) = sum over the block of dy ⊙ H at the open pairs (its other
/// entries are left as they are). With `fused` (w must be fused->parameter's value), dW_j is not added to
/// weight_grad but stepped at once (FusedStep), after dx has read W; returns the first block whose step was
/// refused (its update not finite; nothing of it written), or -1.
template <class T>
Index block_expert_backward(const ActiveSet& active, Index k, const Matrix<T>& w, const MatrixCRef<T>& x,
                            const MatrixCRef<T>& h, const MatrixCRef<T>& dy, const T* open_expert,
                            Matrix<T>& weight_grad, T* bias_grad, Matrix<T>* gate_gradient,
                            Matrix<T>* input_gradient, BlockScratch<T>& scratch, const NonzeroRows* nonzero = nullptr,
                            const FusedStep<T>* fused = nullptr) {
  const Index in = x.rows(), blocks = w.cols();
  const bool gate = open_expert != nullptr && gate_gradient != nullptr;
  const T* const* columns = column_pointers(x, scratch);
  scratch.coefficients.resize(static_cast<std::size_t>(active.nonzeros() * k));
  T* dH = scratch.coefficients.data();
  auto open = [&](Index j) {
    const std::span<const std::int32_t> examples = active.list(j);
    return BlockColumns{examples.data(), static_cast<Index>(examples.size()), active.offset(j) * k, k};
  };
  const double per_block = static_cast<double>(k * in) *
                           static_cast<double>(std::max<Index>(1, active.nonzeros() / std::max<Index>(1, blocks)));
  for_each_block(blocks, per_block, open, [&](Index j, const BlockColumns& c) {
    Eigen::Map<Matrix<T>> dHj(dH + c.first, k, c.count);
    for (Index q = 0; q < c.count; ++q) {
      const Index e = c.example(q);
      const auto d = dy.col(e).segment(j * k, k);
      dHj.col(q) = h(j, e) * d;
      if (gate) (*gate_gradient)(j, e) = d.dot(Eigen::Map<const Vector<T>>(open_expert + c.first + q * k, k));
    }
    Eigen::Map<Vector<T>>(bias_grad + j * k, k) += dHj.rowwise().sum();
    if (fused == nullptr) block_weight_gradient(k, in, columns, c, dH, nonzero, weight_grad.col(j).data());
  });
  if (input_gradient != nullptr) block_input_gradient<T>(k, w, dH, open, *input_gradient, scratch);
  if (fused == nullptr) return -1;
  return fused_block_steps(blocks, per_block, open, k, in, columns, dH, nonzero, *fused, scratch);
}

// ---- the dense path's gate helpers ----

/// y = h ⊙ H with each gate h(j, b) scaling the rows jk .. jk + k - 1 of column b (h: `units / k x batch`,
/// H and y: `units x batch`). Also dL/dH = h ⊙ dy on the dense path.
template <class T>
void block_mask_product(const MatrixCRef<T>& h, Index k, const MatrixCRef<T>& H, Matrix<T>& y) {
  y.resize(H.rows(), H.cols());
  for (Index b = 0; b < H.cols(); ++b)
    for (Index j = 0; j < h.rows(); ++j) y.col(b).segment(j * k, k) = h(j, b) * H.col(b).segment(j * k, k);
}

/// dL/dh for block gates on the dense path: g(j, b) = sum over the block of dy ⊙ H (the chain rule through
/// y_i = h_j H_i), at every gate (`open_only` false: straight-through's closed gates learn from it) or at
/// the open gates only (zeros elsewhere).
template <class T>
void block_gate_gradient(const MatrixCRef<T>& h, Index k, const MatrixCRef<T>& dy, const MatrixCRef<T>& H,
                         bool open_only, Matrix<T>& g) {
  g.resize(h.rows(), h.cols());
  for (Index b = 0; b < h.cols(); ++b)
    for (Index j = 0; j < h.rows(); ++j)
      g(j, b) = open_only && !is_nonzero(h.col(b).data() + j) ? T(0)
                                                              : dy.col(b).segment(j * k, k).dot(H.col(b).segment(j * k, k));
}

}  // namespace stoch::internal

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
