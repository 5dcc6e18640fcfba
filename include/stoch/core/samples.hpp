// stoch — multi-sample batches: K tiled copies of E examples, so that a gate can learn from the K losses of
// one example (REINFORCE leave-one-out, ARM, DisARM), and the antithetic uniforms of ARM's pairs.
//
// Layout (Context::samples, Context::antithetic): a batch of B = K E columns holds sample k of example e in
// column k E + e, i.e. the K blocks [k E, (k + 1) E) are each a copy of the E examples. A training loop
//   - sets ctx.set_samples(K) (or ctx.set_samples(2, true) for ARM / DisARM);
//   - feeds tile_samples(x, K) (`features x K E`) and tile_labels(labels, K) to the network and the loss;
//   - lets the loss layer write ctx.example_loss (`1 x K E`, one loss per column, as for K = 1) and report
//     the mean over all K E columns, which is the mean over the K samples of the mean loss over examples.
// Deterministic layers then see K identical copies of each example; their parameter gradients are sums
// over the columns, and every column's dL/d(output) already carries its 1 / (K E) share.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "stoch/core/context.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

namespace internal {

inline void check_sample_count(const char* who, Index samples) {
  if (samples < 1) fail(std::string(who) + ": samples must be >= 1, got " + std::to_string(samples));
}

/// The layout of the leave-one-out gates (ReinforceLoo, DoubleCv): K >= 2 independent samples per example
/// and a batch of K E columns; returns E. Antithetic pairs are refused: the leave-one-out baseline of a
/// sample must not depend on it, and its pair partner's shared uniforms would make it so.
template <class T>
Index leave_one_out_examples(const std::string& who, const Context<T>& ctx, Index columns) {
  if (ctx.antithetic)
    fail(who + ": needs independent samples; Context::antithetic pairs would make the "
               "leave-one-out baseline depend on the sample it is subtracted from");
  const Index examples = ctx.examples_for_batch(who.c_str(), columns);
  if (ctx.samples < 2)
    fail(who + ": needs K >= 2 samples per example for a leave-one-out baseline (Context::samples = " +
         std::to_string(ctx.samples) + ")");
  return examples;
}

/// Each column minus the mean of the same example's other samples (`x` is `rows x K E`, laid out as above):
///     out(:, k E + e) = x(:, k E + e) - (1 / (K - 1)) sum_{j != k} x(:, j E + e) = (K x(:, k E + e) - S_e) / (K - 1)
/// with S_e the sum over the example's K samples. The leave-one-out arithmetic of ReinforceLoo (on the
/// losses) and DoubleCv (on the losses, the control variates and dL/dh); x - out is the leave-one-out mean.
/// `out` (resized to x's shape) must not alias `x`; it holds S_e in column e until that column is written
/// last, so nothing is allocated.
template <class In, class Out>
void leave_one_out_centre(const Eigen::MatrixBase<In>& x, Index samples, Out& out) {
  using T = typename In::Scalar;
  const Index examples = x.cols() / samples;
  out.resize(x.rows(), x.cols());
  const T k_samples = static_cast<T>(samples), others = static_cast<T>(samples - 1);
  for (Index e = 0; e < examples; ++e) {
    out.col(e) = x.col(e);
    for (Index k = 1; k < samples; ++k) out.col(e) += x.col(k * examples + e);
    for (Index k = samples - 1; k >= 1; --k) {
      const Index c = k * examples + e;
      out.col(c) = (k_samples * x.col(c) - out.col(e)) / others;
    }
    out.col(e) = (k_samples * x.col(e) - out.col(e)) / others;
  }
}

}  // namespace internal

/// out = [x x ... x] (`features x K E` from `features x E`): column k E + e is example e. `out` keeps its
/// capacity, so a steady batch allocates nothing.
template <class Derived>
void tile_samples(const Eigen::MatrixBase<Derived>& x, Index samples, Matrix<typename Derived::Scalar>& out) {
  internal::check_sample_count("tile_samples", samples);
  internal::check_batch("tile_samples", x.cols());
  const Index examples = x.cols();
  out.resize(x.rows(), examples * samples);
  for (Index k = 0; k < samples; ++k) out.middleCols(k * examples, examples) = x;
}

/// The tiled batch as a new matrix (see the overload above).
template <class Derived>
Matrix<typename Derived::Scalar> tile_samples(const Eigen::MatrixBase<Derived>& x, Index samples) {
  Matrix<typename Derived::Scalar> out;
  tile_samples(x, samples, out);
  return out;
}

/// The labels of a tiled batch: label k E + e = labels[e].
inline std::vector<int> tile_labels(std::span<const int> labels, Index samples) {
  internal::check_sample_count("tile_labels", samples);
  if (labels.empty()) internal::fail("tile_labels: empty batch (0 labels)");
  std::vector<int> out;
  out.reserve(labels.size() * static_cast<std::size_t>(samples));
  for (Index k = 0; k < samples; ++k) out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

/// The per-example mean over the K samples of a per-column row (`1 x K E` -> `1 x E`), e.g. the mean loss
/// of each example from ctx.example_loss.
template <class T>
RowVector<T> mean_over_samples(const RowVector<T>& per_column, Index samples) {
  internal::check_sample_count("mean_over_samples", samples);
  if (per_column.size() == 0 || per_column.size() % samples != 0)
    internal::fail("mean_over_samples: " + std::to_string(per_column.size()) +
                   " values are not a non-empty multiple of samples = " + std::to_string(samples));
  const Index examples = per_column.size() / samples;
  RowVector<T> mean = RowVector<T>::Zero(examples);
  for (Index k = 0; k < samples; ++k) mean += per_column.segment(k * examples, examples);
  return mean / static_cast<T>(samples);
}

/// U(0, 1) for a multi-sample batch `u` (`units x K E`, contiguous). Without pairs, every column draws its
/// own uniforms (the words fill_uniform draws for the whole matrix). With antithetic pairs (K == 2), only
/// sample 0's block (the first E columns) is drawn; sample 1's is 1 - u. That is exact: u = (m + 1/2) 2^-N
/// (UniformBits) gives 1 - u = (2^N - 1 - m + 1/2) 2^-N, a value of the same grid, so the partner is itself
/// an open-interval uniform and u + (1 - u) == 1 in floating point.
template <class T>
void fill_sample_uniforms(Generator& rng, MatrixRef<T> u, Index samples, bool antithetic) {
  internal::require_contiguous("fill_sample_uniforms", u);
  if (!antithetic) {
    fill_uniform<T>(rng, u);
    return;
  }
  if (samples != 2)
    internal::fail("fill_sample_uniforms: antithetic pairs need samples == 2, got " + std::to_string(samples));
  if (u.cols() % 2 != 0)
    internal::fail("fill_sample_uniforms: a batch of " + std::to_string(u.cols()) +
                   " columns is not a multiple of samples = 2");
  const Index examples = u.cols() / 2;
  fill_uniform<T>(rng, u.leftCols(examples));
  u.rightCols(examples).array() = T(1) - u.leftCols(examples).array();
}

}  // namespace stoch
