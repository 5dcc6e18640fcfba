// A central-difference check of the gradient of a scalar function of a matrix (e.g. a loss layer's mean loss
// as a function of its logits).
#pragma once

#include <algorithm>
#include <cmath>

#include "stoch/core/matrix.hpp"

namespace stoch::test {

/// max over the entries k of x of |analytic_k - (f(x + eps e_k) - f(x - eps e_k)) / (2 eps)|: the absolute
/// error of `analytic` (shaped as x) as the gradient of the scalar function f at x.
template <class F>
double max_central_difference_error(const Matrix<double>& x, const Matrix<double>& analytic, F&& f,
                                    double eps = 1e-6) {
  Matrix<double> probe = x;
  double worst = 0;
  for (Index k = 0; k < probe.size(); ++k) {
    const double saved = probe.data()[k];
    probe.data()[k] = saved + eps;
    const double up = f(probe);
    probe.data()[k] = saved - eps;
    const double down = f(probe);
    probe.data()[k] = saved;
    worst = std::max(worst, std::abs(analytic.data()[k] - (up - down) / (2 * eps)));
  }
  return worst;
}

}  // namespace stoch::test
