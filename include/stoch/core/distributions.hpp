// stoch — noise samplers that fill a whole matrix at once from a Generator.
//
// Every sampler consumes a fixed number of words per element (Beta excepted: it uses rejection), in
// column-major order, in chunks on the stack: no allocation, and the result for element k depends only on
// the generator's position, never on how a batch was split.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <type_traits>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/random.hpp"

namespace stoch {

namespace internal {

inline constexpr Index kNoiseChunk = 256;  // elements per stack chunk

/// Open-interval uniform (0, 1) from one word (float, 24 bits) or two words (double, 53 bits).
template <class T>
struct UniformBits;

template <>
struct UniformBits<float> {
  static constexpr int words = 1;
  static float convert(const std::uint32_t* w) {
    return (static_cast<float>(w[0] >> 8) + 0.5f) * (1.0f / 16777216.0f);
  }
};

template <>
struct UniformBits<double> {
  static constexpr int words = 2;
  static double convert(const std::uint32_t* w) {
    const std::uint64_t bits = (static_cast<std::uint64_t>(w[0]) << 32 | w[1]) >> 11;
    return (static_cast<double>(bits) + 0.5) * (1.0 / 9007199254740992.0);
  }
};

/// Fills `out` (contiguous, `n` elements) with U(0, 1) samples.
template <class T>
void fill_uniform_raw(Generator& rng, T* out, Index n) {
  constexpr int kWords = UniformBits<T>::words;
  std::uint32_t words[kNoiseChunk * kWords];
  for (Index start = 0; start < n; start += kNoiseChunk) {
    const Index count = std::min<Index>(kNoiseChunk, n - start);
    rng.fill(words, static_cast<std::size_t>(count * kWords));
    for (Index i = 0; i < count; ++i) out[start + i] = UniformBits<T>::convert(words + kWords * i);
  }
}

template <class T>
void require_contiguous(const char* what, const MatrixRef<T>& out) {
  if (out.size() > 0 && out.outerStride() != out.rows())
    fail(std::string(what) + ": output must be contiguous (whole columns)");
}

}  // namespace internal

/// U(0, 1), open at both ends (never exactly 0 or 1, so log(u) and log(1 - u) are finite).
template <class T>
void fill_uniform(Generator& rng, MatrixRef<T> out) {
  internal::require_contiguous("fill_uniform", out);
  internal::fill_uniform_raw(rng, out.data(), out.size());
}

/// Standard normal N(0, 1) by Box–Muller on pairs (vectorised log/sin/cos from Eigen).
template <class T>
void fill_gaussian(Generator& rng, MatrixRef<T> out, T stddev = T(1)) {
  internal::require_contiguous("fill_gaussian", out);
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  alignas(64) T u[internal::kNoiseChunk];
  const Index n = out.size();
  T* data = out.data();
  for (Index start = 0; start < n; start += internal::kNoiseChunk) {
    const Index count = std::min<Index>(internal::kNoiseChunk, n - start);
    const Index pairs = (count + 1) / 2;
    internal::fill_uniform_raw(rng, u, 2 * pairs);
    Eigen::Map<const Array> u1(u, pairs), u2(u + pairs, pairs);
    const Array radius = (T(-2) * u1.log()).sqrt() * stddev;
    const Array angle = T(2 * std::numbers::pi) * u2;
    alignas(64) T z[internal::kNoiseChunk];
    Eigen::Map<Array>(z, pairs) = radius * angle.cos();
    Eigen::Map<Array>(z + pairs, pairs) = radius * angle.sin();
    for (Index i = 0; i < count; ++i) data[start + i] = z[i];
  }
}

/// Standard logistic, density sigm(z)(1 - sigm(z)) (Sec. 2.1): z = log(u / (1 - u)), scaled by `scale`.
template <class T>
void fill_logistic(Generator& rng, MatrixRef<T> out, T scale = T(1)) {
  fill_uniform<T>(rng, out);
  auto a = out.array();
  a = scale * (a.log() - (T(1) - a).log());
}

/// Bernoulli(p) per element: out = 1[u < p], with p a matrix of the same shape.
template <class T>
void fill_bernoulli(Generator& rng, const MatrixCRef<T>& p, MatrixRef<T> out) {
  internal::check_shape("fill_bernoulli", out.rows(), out.cols(), p.rows(), p.cols());
  fill_uniform<T>(rng, out);
  out.array() = (out.array() < p.array()).template cast<T>();
}

namespace internal {

/// One Gamma(shape, 1) sample, Marsaglia & Tsang (2000); shape < 1 through Gamma(shape + 1) U^(1/shape).
template <class T>
T sample_gamma(Generator& rng, T shape) {
  constexpr int kWords = UniformBits<T>::words;
  std::uint32_t w[kWords];
  auto uniform = [&] {
    rng.fill(w, kWords);
    return UniformBits<T>::convert(w);
  };
  auto normal = [&] {  // one Box–Muller value per call, two uniforms
    const T u1 = uniform(), u2 = uniform();
    return std::sqrt(T(-2) * std::log(u1)) * std::cos(T(2 * std::numbers::pi) * u2);
  };
  T boost = T(1);
  if (shape < T(1)) {
    boost = std::pow(uniform(), T(1) / shape);
    shape += T(1);
  }
  const T d = shape - T(1) / T(3);
  const T c = T(1) / std::sqrt(T(9) * d);
  for (;;) {
    T x, v;
    do {
      x = normal();
      v = T(1) + c * x;
    } while (v <= T(0));
    v = v * v * v;
    const T u = uniform();
    if (u < T(1) - T(0.0331) * x * x * x * x) return d * v * boost;
    if (std::log(u) < T(0.5) * x * x + d * (T(1) - v + std::log(v))) return d * v * boost;
  }
}

}  // namespace internal

/// Beta(alpha, beta) per element, as X / (X + Y) with X ~ Gamma(alpha), Y ~ Gamma(beta).
template <class T>
void fill_beta(Generator& rng, MatrixRef<T> out, T alpha, T beta) {
  internal::check_positive("fill_beta: alpha", alpha);
  internal::check_positive("fill_beta: beta", beta);
  for (Index j = 0; j < out.cols(); ++j)
    for (Index i = 0; i < out.rows(); ++i) {
      const T x = internal::sample_gamma(rng, alpha);
      const T y = internal::sample_gamma(rng, beta);
      out(i, j) = x / (x + y);
    }
}

}  // namespace stoch
