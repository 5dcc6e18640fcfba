// stoch — noise samplers that fill a whole matrix at once from a Generator.
//
// Reproducibility contract. Every sample is a function of (seed, stream, its word position) only:
//   - a sampler consumes a fixed number of words per element (uniform: 1 word for float, 2 for double;
//     Bernoulli, logistic and Gaussian: as uniform; Beta: 4 uniforms, 6 if a shape is below 1), column-
//     major, and moves the generator's position by exactly that many words per element. So a fill can
//     also be split across threads: give each part a copy of the generator positioned at
//     start + (first element) * (words per element);
//   - the value of an element does not depend on how a fill is split into calls: filling 2000 x 32 twice is
//     bit-identical to one 2000 x 64 fill, for every sampler including Beta (see fill_beta for how its
//     rejection sampling is kept position-bound);
//   - on one build (same compiler flags and instruction set) the bits are identical run to run. Uniform
//     and Bernoulli use exact arithmetic only and are identical across instruction sets too; the samplers
//     built on log/exp (Gaussian, logistic, Beta) may differ in the last bits between, e.g., an AVX2 and an
//     AVX-512 build, because Eigen's vectorised log/exp is used for every element (never a mix of the
//     vectorised and the scalar libm form, which would make bits depend on where a chunk boundary falls).
// Work is done in chunks on the stack (no allocation per call), and vectorises: Philox words come 8 or
// 16 blocks at a time (random.hpp), conversions and transcendental functions run on whole SIMD packets.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/random.hpp"
#include "stoch/detail/sampling.hpp"

namespace stoch {

/// U(0, 1), open at both ends (never exactly 0 or 1, so log(u) and log(1 - u) are finite). `out` is any
/// contiguous matrix; float uses 1 word per element (23 bits), double 2 words (52 bits).
template <class T>
void fill_uniform(Generator& rng, MatrixRef<T> out) {
  internal::require_contiguous("fill_uniform", out);
  internal::fill_uniform_raw(rng, out.data(), out.size());
}

/// N(0, stddev^2) per element, by Box–Muller. Slots are paired inside aligned blocks of 32 (the first 16
/// uniforms give the radii sqrt(-2 log u), the last 16 the angles 2 pi u; the block's outputs are
/// r cos, then r sin), so each sample costs one uniform's words and the pairing does not depend on the
/// fill's split. Tails are cut where the uniform is: |z| <= 5.8 stddev in float, 8.6 in double.
template <class T>
void fill_gaussian(Generator& rng, MatrixRef<T> out, T stddev = T(1)) {
  internal::require_contiguous("fill_gaussian", out);
  if (!(stddev >= T(0)) || !std::isfinite(stddev))
    internal::fail("fill_gaussian: stddev must be finite and >= 0, got " + std::to_string(stddev));
  constexpr Index kBlock = 32, kHalf = kBlock / 2, kChunk = 512;
  constexpr int W = internal::UniformBits<T>::words;
  internal::sample_blocks<T, kBlock, W, kChunk>(
      rng, out.data(), out.size(), [stddev](const std::uint32_t* words, T* values, Index slots, std::uint64_t) {
        alignas(64) T u[kChunk];
        alignas(64) T radius[kChunk / 2];
        internal::convert_uniform(words, u, slots);
        const Index blocks = slots / kBlock;
        for (Index b = 0; b < blocks; ++b) std::memcpy(radius + b * kHalf, u + b * kBlock, kHalf * sizeof(T));
        internal::AlignedArrayMap<T> r(radius, blocks * kHalf);
        r = (T(-2) * r.log()).sqrt() * stddev;
        for (Index b = 0; b < blocks; ++b) {
          const T* angle = u + b * kBlock + kHalf;
          const T* rb = radius + b * kHalf;
          T* vb = values + b * kBlock;
          for (Index i = 0; i < kHalf; ++i) {
            T s, c;
            internal::sincos_2pi(angle[i], s, c);
            vb[i] = rb[i] * c;
            vb[kHalf + i] = rb[i] * s;
          }
        }
      });
}

/// Logistic noise, density sigm(z)(1 - sigm(z)) for scale 1 (the noise of Sec. 2.1 / Proposition 1):
/// z = scale * log(u / (1 - u)); variance scale^2 pi^2 / 3. One uniform per element.
template <class T>
void fill_logistic(Generator& rng, MatrixRef<T> out, T scale = T(1)) {
  internal::require_contiguous("fill_logistic", out);
  internal::check_positive("fill_logistic: scale", scale);
  constexpr int W = internal::UniformBits<T>::words;
  internal::sample_blocks<T, 1, W, 1024>(
      rng, out.data(), out.size(), [scale](const std::uint32_t* words, T* values, Index slots, std::uint64_t) {
        internal::convert_uniform(words, values, slots);
        internal::AlignedArrayMap<T> u(values, slots);
        u = (u / (T(1) - u)).log() * scale;
      });
}

/// Bernoulli(p) per element: out = 1[u < p], with p a matrix of the same shape (any strides; p may be
/// `out` itself, each element is read before it is written).
template <class T>
void fill_bernoulli(Generator& rng, const MatrixCRef<T>& p, MatrixRef<T> out) {
  internal::check_shape("fill_bernoulli", out.rows(), out.cols(), p.rows(), p.cols());
  internal::require_contiguous("fill_bernoulli", out);
  if (p.outerStride() == p.rows() || p.cols() == 1) {
    internal::bernoulli_raw<T, 1>(rng, p.data(), out.data(), out.size());
  } else {
    for (Index j = 0; j < out.cols(); ++j)
      internal::bernoulli_raw<T, 1>(rng, p.col(j).data(), out.col(j).data(), out.rows());
  }
}

/// Bernoulli(p) with one probability for every element.
template <class T>
void fill_bernoulli(Generator& rng, T p, MatrixRef<T> out) {
  if (!(p >= T(0) && p <= T(1))) internal::fail("fill_bernoulli: p must be in [0, 1], got " + std::to_string(p));
  internal::require_contiguous("fill_bernoulli", out);
  internal::bernoulli_raw<T, 0>(rng, &p, out.data(), out.size());
}

/// Beta(alpha, beta) per element, as X / (X + Y) = 1 / (1 + exp(log Y - log X)) with X ~ Gamma(alpha),
/// Y ~ Gamma(beta) by Marsaglia–Tsang rejection (log space, so tiny shapes do not underflow to 0/0).
/// Each element owns 4 uniforms (6 if a shape is below 1; a uniform is 1 word in float, 2 in double),
/// laid out component-major inside aligned blocks of 16 elements, and every element's first attempt is
/// computed vectorised. The few rejected gammas (about 1.5% of elements for alpha = 5.3, beta = 40.1)
/// are drawn again from words bound to the element's position under another Philox key
/// (internal::beta_retry). Hence Beta has the same guarantees as the other samplers: fixed words per
/// element, and the result does not depend on how a fill is split.
template <class T>
void fill_beta(Generator& rng, MatrixRef<T> out, T alpha, T beta) {
  internal::require_contiguous("fill_beta", out);
  internal::check_positive("fill_beta: alpha", alpha);
  internal::check_positive("fill_beta: beta", beta);
  if (!std::isfinite(alpha) || !std::isfinite(beta)) internal::fail("fill_beta: alpha and beta must be finite");
  const internal::GammaParams ga(static_cast<double>(alpha)), gb(static_cast<double>(beta));
  if (alpha >= T(1) && beta >= T(1))
    internal::fill_beta_impl<T, 4>(rng, out.data(), out.size(), ga, gb);
  else
    internal::fill_beta_impl<T, internal::kBetaUniforms>(rng, out.data(), out.size(), ga, gb);
}

}  // namespace stoch
