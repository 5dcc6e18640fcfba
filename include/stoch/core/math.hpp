// stoch — scalar and array math shared by the layers (sigmoid, softplus, logit).
#pragma once

#include <cmath>
#include <concepts>
#include <numbers>

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

/// E[max(0, mu + z)] for z ~ N(0, sigma^2): mu Phi(mu/sigma) + sigma phi(mu/sigma); max(0, mu) when sigma = 0.
/// The deterministic (mean-field) counterpart of the Gaussian noisy rectifier (Sec. 2.1).
template <std::floating_point T>
T expected_rectified_gaussian(T mu, T sigma) {
  if (!(sigma > T(0))) return mu > T(0) ? mu : T(0);
  const T u = mu / sigma;
  const T phi = std::exp(T(-0.5) * u * u) / std::sqrt(T(2) * std::numbers::pi_v<T>);
  return mu * T(0.5) * std::erfc(-u / std::numbers::sqrt2_v<T>) + sigma * phi;
}

/// E[max(0, mu + z)] for logistic z of scale s: s softplus(mu / s) (Proposition 1(b) with s = 1).
template <std::floating_point T>
T expected_rectified_logistic(T mu, T scale) {
  if (!(scale > T(0))) return mu > T(0) ? mu : T(0);
  return scale * softplus(mu / scale);
}

/// logit(p) = log(p / (1 - p)), the inverse of the sigmoid.
template <std::floating_point T>
T logit(T p) {
  return std::log(p) - std::log1p(-p);
}

}  // namespace stoch
