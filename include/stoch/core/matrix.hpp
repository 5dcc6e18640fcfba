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

namespace internal {

/// SIMD packets from Eigen's own packet math, so the kernels vectorise wherever Eigen does
/// (SSE, AVX, AVX-512, NEON) with the same -march flags the user compiles Eigen with.
template <class T>
using Packet = typename Eigen::internal::packet_traits<T>::type;
template <class T>
inline constexpr Index kPacketSize = Eigen::internal::unpacket_traits<Packet<T>>::size;

}  // namespace internal

}  // namespace stoch
