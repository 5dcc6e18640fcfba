// Test-only gates for the gated layer: a gate with a fixed, exact-density pattern of open gates and
// chosen estimator traits, and a smooth gate that is exactly zero on half the line (for finite differences).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "stoch/core/distributions.hpp"
#include "stoch/layers/elementwise.hpp"

namespace stoch::test {

/// `units x batch` mask with exactly round(density * units * batch) non-zero entries at random positions
/// (fixed seed); non-zero values are +-U[0.5, 1.5] so that the gate values are not all 1.
template <class T>
Matrix<T> exact_mask(Index units, Index batch, double density, std::uint64_t seed) {
  Generator rng(seed, 77);
  const Index total = units * batch;
  const auto open = static_cast<Index>(std::llround(density * static_cast<double>(total)));
  std::vector<Index> positions(static_cast<std::size_t>(total));
  std::iota(positions.begin(), positions.end(), Index(0));
  for (Index k = 0; k < open; ++k) {  // partial Fisher-Yates: the first `open` positions are a random subset
    const Index pick = k + static_cast<Index>(rng.next() % static_cast<std::uint32_t>(total - k));
    std::swap(positions[static_cast<std::size_t>(k)], positions[static_cast<std::size_t>(pick)]);
  }
  Matrix<T> mask = Matrix<T>::Zero(units, batch);
  for (Index k = 0; k < open; ++k) {
    const T magnitude = T(0.5) + static_cast<T>(rng.next() % 1000) / T(1000);
    mask.data()[positions[static_cast<std::size_t>(k)]] = (rng.next() & 1u) ? magnitude : -magnitude;
  }
  return mask;
}

/// h = M ⊙ a with a fixed mask M (`units x batch`): open exactly where M != 0. Records the dL/dh it gets.
template <class T, bool NeedsOutputGradient, bool ClosedGateNeedsGradient>
class MaskGate : public internal::Elementwise<MaskGate<T, NeedsOutputGradient, ClosedGateNeedsGradient>, T> {
 public:
  static constexpr bool needs_output_gradient = NeedsOutputGradient;
  static constexpr bool closed_gate_needs_gradient = ClosedGateNeedsGradient;

  MaskGate(Index units, Matrix<T> mask)
      : internal::Elementwise<MaskGate, T>(units, "MaskGate"), mask_(std::move(mask)) {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) { h = mask_.cwiseProduct(a); }
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    received_ = dh;
    da = mask_.cwiseProduct(dh);
  }
  const Matrix<T>& received() const { return received_; }

 private:
  Matrix<T> mask_, received_;
};

/// h = max(a, 0)^2: continuously differentiable, exactly zero (closed) for a <= 0 with zero derivative.
template <class T>
class SquaredRectifier : public internal::Elementwise<SquaredRectifier<T>, T> {
 public:
  static constexpr bool needs_output_gradient = true;
  static constexpr bool closed_gate_needs_gradient = false;

  explicit SquaredRectifier(Index units) : internal::Elementwise<SquaredRectifier, T>(units, "SquaredRectifier") {}

  void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>&) {
    input_ = a;
    h = a.array().max(T(0)).square().matrix();
  }
  void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>&) {
    da = (T(2) * input_.array().max(T(0)) * dh.array()).matrix();
  }

 private:
  Matrix<T> input_;
};

/// max|a - b| / max|b|: the error relative to the reference's scale (0 when both are exactly zero).
template <class T>
double relative_error(const Matrix<T>& a, const Matrix<T>& b) {
  const double scale = b.size() == 0 ? 0.0 : static_cast<double>(b.cwiseAbs().maxCoeff());
  const double error = a.size() == 0 ? 0.0 : static_cast<double>((a - b).cwiseAbs().maxCoeff());
  if (scale == 0.0) return error == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return error / scale;
}

}  // namespace stoch::test
