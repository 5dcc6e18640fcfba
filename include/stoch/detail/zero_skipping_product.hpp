// not part of the public API; included by stoch/layers/linear.hpp and stoch/detail/active_set.hpp.
//
// stoch — y = W x + b reading only the columns of W at the non-zero entries of x: the product of a layer
// whose input is mostly zeros, such as the output of a gated layer (Sec. 5: a closed unit outputs 0, so the
// next layer needs none of its outgoing weights either).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "stoch/detail/bit_sets.hpp"
#include "stoch/core/matrix.hpp"

// Eigen's packet traits take SIMD types as template arguments, whose alignment attributes GCC warns about
// dropping (-Wignored-attributes): harmless here, only the traits' constants are read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
#endif

namespace stoch::internal {

/// The non-zero entries of a `rows x batch` matrix, column by column: column b's rows, increasing, are
/// rows[offsets[b] .. offsets[b + 1]).
struct NonzeroRows {
  std::vector<std::int32_t> rows, offsets;

  /// Lists x's non-zero entries (-0 counts as zero, NaN as non-zero; 16 values per vector test, no branch
  /// per value) and returns how many; or stops after the first column that takes the count above `limit`
  /// and returns that count, the lists then incomplete (a caller that would run the dense product above
  /// `limit` lists no more than it needs to decide).
  template <class T>
  Index build(const MatrixCRef<T>& x, Index limit = std::numeric_limits<Index>::max()) {
    const Index height = x.rows(), batch = x.cols();
    rows.resize(static_cast<std::size_t>(height * batch) + kLaneSlack);
    offsets.resize(static_cast<std::size_t>(batch) + 1);
    std::int32_t count = 0;
    for (Index b = 0; b < batch; ++b) {
      offsets[static_cast<std::size_t>(b)] = count;
      const T* column = x.col(b).data();
      for (Index i = 0; i < height; i += kLaneSlack) {
        const int block = static_cast<int>(std::min<Index>(kLaneSlack, height - i));
        count += append_nonzero(column + i, static_cast<std::int32_t>(i), block, rows.data() + count);
      }
      if (count > limit) return count;
    }
    offsets[static_cast<std::size_t>(batch)] = count;
    return count;
  }
};

/// A packet of `from`'s first `count` values (1 <= count <= S), zeros past them: a masked load, or a whole
/// one when count == S (targets without masked loads only ever ask for whole packets).
template <class T>
inline Packet<T> load_first(const T* from, Index count) {
  using P = Packet<T>;
  if constexpr (Eigen::internal::unpacket_traits<P>::masked_load_available) {
    if (count < kPacketSize<T>)
      return Eigen::internal::ploadu<P>(
          from, static_cast<typename Eigen::internal::unpacket_traits<P>::mask_t>((1u << count) - 1u));
  }
  return Eigen::internal::ploadu<P>(from);
}
/// Stores a packet's first `count` values to `to` (as load_first).
template <class T>
inline void store_first(T* to, const Packet<T>& packet, Index count) {
  using P = Packet<T>;
  if constexpr (Eigen::internal::unpacket_traits<P>::masked_store_available) {
    if (count < kPacketSize<T>) {
      Eigen::internal::pstoreu(
          to, packet, static_cast<typename Eigen::internal::unpacket_traits<P>::mask_t>((1u << count) - 1u));
      return;
    }
  }
  Eigen::internal::pstoreu(to, packet);
}

/// Q packets of rows of y's column, the last one `last` rows long: bias plus the sum over the listed rows r
/// of x[r] times W's column r. With one or two packets the listed rows go round-robin to several sets of
/// accumulators, so that the FMAs do not wait on each other.
template <class T, int Q>
inline void zero_skipping_block(const T* w, Index ld, const T* x, const std::int32_t* rows, Index n, const T* bias,
                                T* y, Index last) {
  using P = Packet<T>;
  constexpr Index S = kPacketSize<T>;
  constexpr int C = Q == 1 ? 4 : Q == 2 ? 2 : 1;
  auto size = [&](int q) { return q + 1 < Q ? S : last; };
  P acc[C][Q];
  for (int q = 0; q < Q; ++q) {
    acc[0][q] = load_first(bias + q * S, size(q));
    for (int c = 1; c < C; ++c) acc[c][q] = Eigen::internal::pset1<P>(T(0));
  }
  Index k = 0;
  for (; k + C <= n; k += C)
    for (int c = 0; c < C; ++c) {
      const std::int32_t r = rows[k + c];
      const P value = Eigen::internal::pset1<P>(x[r]);
      for (int q = 0; q < Q; ++q)
        acc[c][q] = Eigen::internal::pmadd(load_first(w + r * ld + q * S, size(q)), value, acc[c][q]);
    }
  for (; k < n; ++k) {
    const std::int32_t r = rows[k];
    const P value = Eigen::internal::pset1<P>(x[r]);
    for (int q = 0; q < Q; ++q)
      acc[0][q] = Eigen::internal::pmadd(load_first(w + r * ld + q * S, size(q)), value, acc[0][q]);
  }
  for (int q = 0; q < Q; ++q) {
    for (int c = 1; c < C; ++c) acc[0][q] = Eigen::internal::padd(acc[0][q], acc[c][q]);
    store_first(y + q * S, acc[0][q], size(q));
  }
}

/// y = W x + b (W `out x in`, x `in x batch`, b `out` values, y resized to `out x batch`) over the non-zero
/// entries `nonzero` of x (NonzeroRows::build(x)): column b of y reads only the columns of W at column b's
/// non-zero rows, in blocks of up to 4 packets of output rows. The same sums as the dense product up to
/// rounding (another order). Where the target has no masked packet loads (Eigen's
/// unpacket_traits::masked_load_available), the rows past the last whole packet are summed one by one.
template <class T>
void zero_skipping_product(const MatrixCRef<T>& w, const T* bias, const MatrixCRef<T>& x, const NonzeroRows& nonzero,
                           Matrix<T>& y) {
  using P = Packet<T>;
  constexpr Index S = kPacketSize<T>;
  constexpr bool kMasked = Eigen::internal::unpacket_traits<P>::masked_load_available &&
                          Eigen::internal::unpacket_traits<P>::masked_store_available;
  const Index out = w.rows(), ld = w.outerStride();
  y.resize(out, x.cols());
  const Index vector_rows = kMasked ? out : out / S * S;
  for (Index b = 0; b < x.cols(); ++b) {
    const std::int32_t* rows = nonzero.rows.data() + nonzero.offsets[static_cast<std::size_t>(b)];
    const Index n = nonzero.offsets[static_cast<std::size_t>(b) + 1] - nonzero.offsets[static_cast<std::size_t>(b)];
    const T* xb = x.col(b).data();
    T* yb = y.col(b).data();
    for (Index r0 = 0; r0 < vector_rows; r0 += 4 * S) {
      const Index packets = std::min<Index>(4, (vector_rows - r0 + S - 1) / S);
      const Index last = std::min(S, vector_rows - r0 - (packets - 1) * S);
      const T* wb = w.data() + r0;
      switch (packets) {
        case 1: zero_skipping_block<T, 1>(wb, ld, xb, rows, n, bias + r0, yb + r0, last); break;
        case 2: zero_skipping_block<T, 2>(wb, ld, xb, rows, n, bias + r0, yb + r0, last); break;
        case 3: zero_skipping_block<T, 3>(wb, ld, xb, rows, n, bias + r0, yb + r0, last); break;
        default: zero_skipping_block<T, 4>(wb, ld, xb, rows, n, bias + r0, yb + r0, last); break;
      }
    }
    for (Index r = vector_rows; r < out; ++r) {  // no masked loads: the last rows one by one
      T sum = bias[r];
      for (Index k = 0; k < n; ++k) sum += w(r, rows[k]) * xb[rows[k]];
      yb[r] = sum;
    }
  }
}

}  // namespace stoch::internal

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
