// stoch — scalar and array math shared by the layers (sigmoid, softplus, logit).
#pragma once

#include <cmath>
#include <concepts>

#include "stoch/core/matrix.hpp"

namespace stoch {

/// Numerically stable logistic sigmoid of an Eigen array expression: sigm(a) = 1 / (1 + exp(-a)).
/// Eigen's vectorised `logistic()` clamps internally and never overflows.
template <class Derived>
auto sigmoid(const Eigen::ArrayBase<Derived>& a) {
  return a.logistic();
}

template <std::floating_point T>
T sigmoid(T a) {
  return a >= T(0) ? T(1) / (T(1) + std::exp(-a)) : std::exp(a) / (T(1) + std::exp(a));
}

/// softplus(a) = log(1 + exp(a)), Proposition 1's E[h] of the logistic noisy rectifier.
template <std::floating_point T>
T softplus(T a) {
  return a > T(0) ? a + std::log1p(std::exp(-a)) : std::log1p(std::exp(a));
}

/// logit(p) = log(p / (1 - p)), the inverse of the sigmoid.
template <std::floating_point T>
T logit(T p) {
  return std::log(p) - std::log1p(-p);
}

}  // namespace stoch
