// stoch — matrix conventions shared by every header.
//
// Activations are `features x batch`, column-major: each example is one contiguous column.
// Weights of an affine map from `in` to `out` features are `out x in`, so `y = W x + b`.
#pragma once

#include <Eigen/Core>

namespace stoch {

using Index = Eigen::Index;

template <class T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;

/// Read-only view of a column-major matrix (a Matrix, a block of whole columns, a Map) without a copy.
template <class T>
using MatrixCRef = Eigen::Ref<const Matrix<T>>;
/// Writable view, for samplers and kernels that fill caller-owned storage.
template <class T>
using MatrixRef = Eigen::Ref<Matrix<T>>;

}  // namespace stoch
