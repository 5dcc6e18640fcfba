// not part of the public API; included by stoch/conditional/gated_layer.hpp.
//
// stoch — the expert of a gated layer whose gates govern blocks of k consecutive units (Sec. 5 with
// y_i = h_{floor(i/k)} H_i): the open (block, example) pairs computed block by block as small dense
// products over the examples that open the block, and the block mask of the dense path.
//
// Layout. The expert's weights are stored transposed, `in x units`, so block j's weights, the columns
// jk .. jk + k - 1, are one contiguous `in x k` matrix. For block j with open examples E_j (the by-unit lists
// of an ActiveSet counted on the `units / k x batch` gate matrix), the inputs x[:, E_j] are gathered into a
// contiguous `in x n_j` scratch and H_j = W_j^T X_j (`k x n_j`) is one Eigen product: the block's weights are
// read once per batch and reused over its n_j examples, as in the dense product. H at the open pairs is kept
// flat, block-major (block j's `k x n_j` matrix at offset(j) * k), for the backward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Core>

#include "stoch/core/matrix.hpp"
#include "stoch/detail/active_set.hpp"

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

/// Forward over the open pairs: for every block j with open examples E_j (active's by-unit lists, built on
/// the `units / k x batch` gate matrix h), H_j = W^T[:, jk : (j+1)k]^T x[:, E_j] + b[jk : (j+1)k], kept at
/// open_expert + offset(j) * k (`k x n_j`, nonzeros * k values in all), and y[jk + r, e_q] = h(j, e_q) H_j(r, q);
/// y is `units x batch`, zero at the closed blocks. wt is the transposed weight matrix, `in x units`.
template <class T>
void block_expert_forward(const ActiveSet& active, Index k, const MatrixCRef<T>& wt, const T* bias,
                          const MatrixCRef<T>& x, const MatrixCRef<T>& h, T* open_expert, Matrix<T>& y,
                          BlockScratch<T>& scratch) {
  const Index in = wt.rows();
  y.setZero(wt.cols(), x.cols());
  for (const std::int32_t list : active.natural_order()) {
    const Index j = list;
    const std::span<const std::int32_t> examples = active.list(j);
    const auto n = static_cast<Index>(examples.size());
    Eigen::Map<Matrix<T>> H(open_expert + active.offset(j) * k, k, n);
    const auto weights = wt.middleCols(j * k, k);
    if (n == x.cols()) {  // open in every example: x itself is the block's input
      H.noalias() = weights.transpose() * x;
    } else {
      Eigen::Map<Matrix<T>> inputs = scratch_matrix(scratch.inputs, in, n);
      gather_columns<T>(x, examples, inputs);
      H.noalias() = weights.transpose() * inputs;
    }
    const Eigen::Map<const Vector<T>> b(bias + j * k, k);
    H.colwise() += b;
    for (Index q = 0; q < n; ++q) {
      const Index e = examples[static_cast<std::size_t>(q)];
      y.col(e).segment(j * k, k) = h(j, e) * H.col(q);
    }
  }
}

/// Backward over the open pairs (lists as in block_expert_forward): dH_j = h ⊙ dy at the block's open
/// examples, db += row sums of dH_j, dW[:, jk : (j+1)k] += X_j dH_j^T (weight_grad `in x units`, transposed
/// like the weights), and, when `input_gradient` is given (`in x batch`, zeroed by the caller), the scatter-add
/// dx[:, E_j] += W_j dH_j. When `open_expert` (the forward's H at the open pairs) and `gate_gradient` are
/// given, gate_gradient(j, e) = sum over the block of dy ⊙ H at the open pairs (its other entries are left
/// as they are).
template <class T>
void block_expert_backward(const ActiveSet& active, Index k, const MatrixCRef<T>& wt, const MatrixCRef<T>& x,
                           const MatrixCRef<T>& h, const MatrixCRef<T>& dy, const T* open_expert,
                           Matrix<T>& weight_grad, T* bias_grad, Matrix<T>* gate_gradient,
                           Matrix<T>* input_gradient, BlockScratch<T>& scratch) {
  const Index in = wt.rows();
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
    if (n == x.cols()) {
      weight_grad.middleCols(j * k, k).noalias() += x * dH.transpose();
    } else {
      Eigen::Map<Matrix<T>> inputs = scratch_matrix(scratch.inputs, in, n);
      gather_columns<T>(x, examples, inputs);
      weight_grad.middleCols(j * k, k).noalias() += inputs * dH.transpose();
    }
    if (input_gradient != nullptr) {
      Eigen::Map<Matrix<T>> dx = scratch_matrix(scratch.products, in, n);
      dx.noalias() = wt.middleCols(j * k, k) * dH;
      for (Index q = 0; q < n; ++q) input_gradient->col(examples[static_cast<std::size_t>(q)]) += dx.col(q);
    }
  }
}

}  // namespace stoch::internal
