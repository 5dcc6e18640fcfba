// not part of the public API; included by stoch/conditional/gated_layer.hpp.
//
// stoch — the expert of a gated layer whose gates govern blocks of k consecutive units (Sec. 5 with
// y_i = h_{floor(i/k)} H_i): the open (block, example) pairs computed block by block as small dense
// products over the examples that open the block, and the block mask of the dense path.
//
// Layout. The expert's weights are stored `units x in` (as Linear's), so block j's weights are the rows
// jk .. jk + k - 1, a `k x in` matrix whose k weights from one input are contiguous (one cache line for 16
// floats). For block j with open examples E_j (the by-unit lists of an ActiveSet counted on the
// `units / k x batch` gate matrix), the inputs x[:, E_j] are gathered into a contiguous `in x n_j` scratch
// and H_j = W_j X_j (`k x n_j`) is one Eigen product: the block's weights are read once per batch and reused
// over its n_j examples, as in the dense product. When x is mostly zeros (the output of a gated layer below),
// each open pair instead sums the block's weights of its example's non-zero inputs only (the zero-skipping
// product's kernel, one line per non-zero input). H at the open pairs is kept flat, block-major (block j's
// `k x n_j` matrix at offset(j) * k), for the backward.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "stoch/core/matrix.hpp"
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

/// Growing buffers of the block kernels (no allocation once the batch's shape is steady).
template <class T>
struct BlockScratch {
  std::vector<T> inputs, coefficients, products;
};

/// A `rows x cols` column-major view of `buffer`, grown if it is too small.
template <class T>
Eigen::Map<Matrix<T>> scratch_matrix(std::vector<T>& buffer, Index rows, Index cols) {
  const auto size = static_cast<std::size_t>(rows * cols);
  if (buffer.size() < size) buffer.resize(size);
  return {buffer.data(), rows, cols};
}

/// x[:, columns] into a contiguous `x.rows() x columns.size()` matrix.
template <class T>
void gather_columns(const MatrixCRef<T>& x, std::span<const std::int32_t> columns, Eigen::Map<Matrix<T>> out) {
  for (std::size_t q = 0; q < columns.size(); ++q) out.col(static_cast<Index>(q)) = x.col(columns[q]);
}

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

/// One open pair from the non-zero inputs only: out (k values) = bias + sum over the listed rows r of
/// x[r] w[:, r], where w points at the block's first weight in a `units x in` matrix of leading dimension ld.
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

/// Forward over the open pairs: for every block j with open examples E_j (active's by-unit lists, built on
/// the `units / k x batch` gate matrix h), H_j = W[jk : (j+1)k, :] x[:, E_j] + b[jk : (j+1)k], kept at
/// open_expert + offset(j) * k (`k x n_j`, nonzeros * k values in all), and y[jk + r, e_q] = h(j, e_q) H_j(r, q);
/// y is `units x batch`, zero at the closed blocks. w is `units x in`. With `nonzero` (NonzeroRows::build(x),
/// complete) each pair reads only its example's non-zero inputs (sparse_input_block), else the block is one
/// product over the gathered inputs.
template <class T>
void block_expert_forward(const ActiveSet& active, Index k, const MatrixCRef<T>& w, const T* bias,
                          const MatrixCRef<T>& x, const MatrixCRef<T>& h, T* open_expert, Matrix<T>& y,
                          BlockScratch<T>& scratch, const NonzeroRows* nonzero = nullptr) {
  const Index in = w.cols();
  y.setZero(w.rows(), x.cols());
  for (const std::int32_t list : active.natural_order()) {
    const Index j = list;
    const std::span<const std::int32_t> examples = active.list(j);
    const auto n = static_cast<Index>(examples.size());
    Eigen::Map<Matrix<T>> H(open_expert + active.offset(j) * k, k, n);
    const auto weights = w.middleRows(j * k, k);
    if (nonzero != nullptr) {
      for (Index q = 0; q < n; ++q) {
        const auto e = static_cast<std::size_t>(examples[static_cast<std::size_t>(q)]);
        const std::int32_t first = nonzero->offsets[e];
        sparse_input_block<T>(w.data() + j * k, w.outerStride(), k, x.col(static_cast<Index>(e)).data(),
                              nonzero->rows.data() + first, nonzero->offsets[e + 1] - first, bias + j * k,
                              H.col(q).data());
      }
    } else {
      if (n == x.cols()) {  // open in every example: x itself is the block's input
        H.noalias() = weights * x;
      } else {
        Eigen::Map<Matrix<T>> inputs = scratch_matrix(scratch.inputs, in, n);
        gather_columns<T>(x, examples, inputs);
        H.noalias() = weights * inputs;
      }
      const Eigen::Map<const Vector<T>> b(bias + j * k, k);
      H.colwise() += b;
    }
    for (Index q = 0; q < n; ++q) {
      const Index e = examples[static_cast<std::size_t>(q)];
      y.col(e).segment(j * k, k) = h(j, e) * H.col(q);
    }
  }
}

/// Backward over the open pairs (lists as in block_expert_forward): dH_j = h ⊙ dy at the block's open
/// examples, db += row sums of dH_j, dW[jk : (j+1)k, :] += dH_j X_j^T (weight_grad `units x in`, as the
/// weights; with `nonzero`, only at the examples' non-zero inputs), and, when `input_gradient` is given
/// (`in x batch`, zeroed by the caller), the scatter-add dx[:, E_j] += W_j^T dH_j. When `open_expert` (the
/// forward's H at the open pairs) and `gate_gradient` are given, gate_gradient(j, e) = sum over the block of
/// dy ⊙ H at the open pairs (its other entries are left as they are).
template <class T>
void block_expert_backward(const ActiveSet& active, Index k, const MatrixCRef<T>& w, const MatrixCRef<T>& x,
                           const MatrixCRef<T>& h, const MatrixCRef<T>& dy, const T* open_expert,
                           Matrix<T>& weight_grad, T* bias_grad, Matrix<T>* gate_gradient,
                           Matrix<T>* input_gradient, BlockScratch<T>& scratch, const NonzeroRows* nonzero = nullptr) {
  const Index in = w.cols();
  const bool gate = open_expert != nullptr && gate_gradient != nullptr;
  for (const std::int32_t list : active.natural_order()) {
    const Index j = list;
    const std::span<const std::int32_t> examples = active.list(j);
    const auto n = static_cast<Index>(examples.size());
    Eigen::Map<Matrix<T>> dH = scratch_matrix(scratch.coefficients, k, n);
    for (Index q = 0; q < n; ++q) {
      const Index e = examples[static_cast<std::size_t>(q)];
      const auto d = dy.col(e).segment(j * k, k);
      dH.col(q) = h(j, e) * d;
      if (gate) {
        const Eigen::Map<const Vector<T>> H(open_expert + (active.offset(j) + q) * k, k);
        (*gate_gradient)(j, e) = d.dot(H);
      }
    }
    Eigen::Map<Vector<T>>(bias_grad + j * k, k) += dH.rowwise().sum();
    if (nonzero != nullptr) {
      for (Index q = 0; q < n; ++q) {
        const auto e = static_cast<std::size_t>(examples[static_cast<std::size_t>(q)]);
        const T* xe = x.col(static_cast<Index>(e)).data();
        for (std::int32_t p = nonzero->offsets[e]; p < nonzero->offsets[e + 1]; ++p) {
          const std::int32_t r = nonzero->rows[static_cast<std::size_t>(p)];
          weight_grad.col(r).segment(j * k, k) += xe[r] * dH.col(q);
        }
      }
    } else if (n == x.cols()) {
      weight_grad.middleRows(j * k, k).noalias() += dH * x.transpose();
    } else {
      Eigen::Map<Matrix<T>> inputs = scratch_matrix(scratch.inputs, in, n);
      gather_columns<T>(x, examples, inputs);
      weight_grad.middleRows(j * k, k).noalias() += dH * inputs.transpose();
    }
    if (input_gradient != nullptr) {
      Eigen::Map<Matrix<T>> dx = scratch_matrix(scratch.products, in, n);
      dx.noalias() = w.middleRows(j * k, k).transpose() * dH;
      for (Index q = 0; q < n; ++q) input_gradient->col(examples[static_cast<std::size_t>(q)]) += dx.col(q);
    }
  }
}

}  // namespace stoch::internal

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
