// Test helper in the spirit of dlib's test_layer: a layer's backward against central finite differences,
// with the noise frozen (the generator is rewound before every forward) and the layer's gradient buffer
// poisoned with NaN first, so that an entry backward forgets to write shows up.
#pragma once

#include <cmath>
#include <limits>
#include <string>

#include "stoch/core/context.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/layers/layer.hpp"

namespace stoch::test {

struct GradientCheckResult {
  double max_input_error = 0;      ///< max |analytic - numeric| / max(1, |numeric|) over dL/dx
  double max_parameter_error = 0;  ///< same over every trainable parameter
  bool finite = true;              ///< no NaN left in dL/dx after poisoning
};

/// Checks `layer` at input `x` for the loss L = sum(R .* forward(x)) with R fixed (so dL/dy = R).
/// `eps` is the central-difference step. Double precision is expected.
template <Layer L>
GradientCheckResult check_gradients(L& layer, const Matrix<typename L::Scalar>& x, std::uint64_t seed = 7,
                                    typename L::Scalar eps = 1e-6) {
  using T = typename L::Scalar;
  GradientCheckResult result;
  Generator weights_rng(seed, 99);
  Matrix<T> projection(layer.output_size(), x.cols());
  fill_gaussian<T>(weights_rng, projection);

  const Generator noise(seed, 1);
  auto loss_at = [&](const Matrix<T>& input) {
    Generator rng = noise;  // frozen noise: same words every time
    Context<T> ctx(Mode::train, rng);
    return static_cast<double>((layer.forward(input, ctx).array() * projection.array()).sum());
  };

  // Poison: a backward with NaN upstream gradient fills the layer's buffer with NaN.
  {
    Generator rng = noise;
    Context<T> ctx(Mode::train, rng);
    layer.forward(x, ctx);
    const Matrix<T> nan = Matrix<T>::Constant(projection.rows(), projection.cols(),
                                              std::numeric_limits<T>::quiet_NaN());
    layer.backward(nan, ctx);
  }
  for (Parameter<T>* p : layer.parameters())
    if (p->trainable) p->grad.setZero();

  Generator rng = noise;
  Context<T> ctx(Mode::train, rng);
  layer.forward(x, ctx);
  const Matrix<T> analytic_dx = layer.backward(projection, ctx);
  result.finite = analytic_dx.allFinite();

  auto relative = [](double analytic, double numeric) {
    return std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
  };

  Matrix<T> probe = x;
  for (Index k = 0; k < probe.size(); ++k) {
    const T saved = probe.data()[k];
    probe.data()[k] = saved + eps;
    const double up = loss_at(probe);
    probe.data()[k] = saved - eps;
    const double down = loss_at(probe);
    probe.data()[k] = saved;
    const double numeric = (up - down) / (2 * static_cast<double>(eps));
    result.max_input_error = std::max(result.max_input_error, relative(analytic_dx.data()[k], numeric));
  }

  for (Parameter<T>* p : layer.parameters()) {
    if (!p->trainable) continue;
    const Matrix<T> analytic = p->grad;
    for (Index k = 0; k < p->value.size(); ++k) {
      const T saved = p->value.data()[k];
      p->value.data()[k] = saved + eps;
      const double up = loss_at(x);
      p->value.data()[k] = saved - eps;
      const double down = loss_at(x);
      p->value.data()[k] = saved;
      const double numeric = (up - down) / (2 * static_cast<double>(eps));
      result.max_parameter_error = std::max(result.max_parameter_error, relative(analytic.data()[k], numeric));
    }
  }
  return result;
}

/// A `rows x cols` matrix of N(0, scale^2) entries from a fixed seed.
template <class T>
Matrix<T> random_matrix(Index rows, Index cols, std::uint64_t seed, T scale = T(1)) {
  Generator rng(seed, 12345);
  Matrix<T> m(rows, cols);
  fill_gaussian<T>(rng, m, scale);
  return m;
}

}  // namespace stoch::test
