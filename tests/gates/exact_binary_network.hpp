// Test support for the multi-sample score-function gates (ReinforceLoo, Arm, DisArm): a small network
//     x -> Linear (encoder) -> binary gate h -> Linear (decoder) -> softmax cross-entropy
// whose expected loss J = (1/E) sum_e E_h[L_e(h)] and its gradient with respect to every parameter are
// computed exactly by enumerating the 2^n binary vectors h, and a training step that produces one
// estimate of that gradient through the library's multi-sample path (tile_samples, Context::samples).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "stoch/core/context.hpp"
#include "stoch/core/math.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "support/catch.hpp"

namespace stoch::test {

/// Calls visit(h, P(h)) for each of the 2^n binary vectors h of n = p.size() independent units with
/// P(h_i = 1) = p_i, so P(h) = prod_i p_i^h_i (1 - p_i)^(1 - h_i).
template <class Visit>
void for_each_binary_vector(const Vector<double>& p, Visit&& visit) {
  const Index n = p.size();
  for (int state = 0; state < (1 << n); ++state) {
    Vector<double> h(n);
    double probability = 1;
    for (Index i = 0; i < n; ++i) {
      h[i] = (state >> i) & 1;
      probability *= h[i] > 0 ? p[i] : 1 - p[i];
    }
    visit(h, probability);
  }
}

struct ExactBinaryNetwork {
  static constexpr Index kInputs = 3, kUnits = 4, kClasses = 3, kExamples = 3;

  Linear<double> encoder{kInputs, kUnits, "enc"};
  Linear<double> decoder{kUnits, kClasses, "dec"};
  Matrix<double> x;         // kInputs x kExamples
  std::vector<int> labels;  // kExamples

  ExactBinaryNetwork() {
    Generator rng(20260107);
    encoder.initialize(rng);
    decoder.initialize(rng);
    // Biases away from zero so that the units have different probabilities (some near 0 or 1).
    encoder.bias().value << 0.8, -1.5, 0.3, 2.0;
    decoder.weight().value *= 3.0;
    decoder.bias().value << 0.2, -0.4, 0.1;
    x.resize(kInputs, kExamples);
    x << 1.0, -0.5, 0.3,  //
        0.2, 1.5, -1.0,   //
        -0.7, 0.4, 0.9;
    labels = {0, 2, 1};
  }

  /// Every trainable parameter, in a fixed order: encoder W, b, decoder W, b.
  std::vector<Parameter<double>*> parameters() {
    return {&encoder.weight(), &encoder.bias(), &decoder.weight(), &decoder.bias()};
  }
  Index parameter_count() {
    Index n = 0;
    for (auto* p : parameters()) n += p->value.size();
    return n;
  }
  /// The gradients of every parameter as one vector (same order), then cleared.
  Vector<double> take_gradients() {
    Vector<double> g(parameter_count());
    Index k = 0;
    for (auto* p : parameters()) {
      g.segment(k, p->grad.size()) = p->grad.reshaped();
      k += p->grad.size();
      p->grad.setZero();
    }
    return g;
  }

  /// Cross-entropy of the decoder's logits at the binary vector h for `label`, and dL/dlogits.
  double loss_at(const Vector<double>& h, int label, Vector<double>* dlogits = nullptr) const {
    Vector<double> z = decoder.weight().value * h + decoder.bias().value.col(0);
    const double shift = z.maxCoeff();
    const Vector<double> s = (z.array() - shift).exp().matrix();
    const double total = s.sum();
    if (dlogits != nullptr) {
      *dlogits = s / total;
      (*dlogits)[label] -= 1.0;
    }
    return std::log(total) + shift - z[label];
  }

  /// J and dJ/d(every parameter) (same order as take_gradients), exactly, by enumeration:
  ///   dJ/da_e = (1/E) sum_h P(h) L_e(h) (h - p_e)     (the score-function identity, Eq. 5, exact)
  ///   dJ/d(decoder) = (1/E) sum_h P(h) dL_e(h)/d(decoder)
  /// with dJ/d(encoder) = dJ/da X^T and its row sums.
  double exact(Vector<double>& gradient) {
    Matrix<double> da = Matrix<double>::Zero(kUnits, kExamples);
    Matrix<double> dw2 = Matrix<double>::Zero(kClasses, kUnits);
    Vector<double> db2 = Vector<double>::Zero(kClasses);
    double j = 0;
    const double inv_e = 1.0 / static_cast<double>(kExamples);
    for (Index e = 0; e < kExamples; ++e) {
      const Vector<double> a = encoder.weight().value * x.col(e) + encoder.bias().value.col(0);
      const Vector<double> p = a.unaryExpr([](double v) { return sigmoid(v); });
      for_each_binary_vector(p, [&](const Vector<double>& h, double probability) {
        Vector<double> dz;
        const double loss = loss_at(h, labels[static_cast<std::size_t>(e)], &dz);
        j += inv_e * probability * loss;
        da.col(e) += inv_e * probability * loss * (h - p);
        dw2 += (inv_e * probability) * dz.lazyProduct(h.transpose());
        db2 += inv_e * probability * dz;
      });
    }
    const Matrix<double> dw1 = da.lazyProduct(x.transpose());
    const Vector<double> db1 = da.rowwise().sum();
    gradient.resize(parameter_count());
    gradient << dw1.reshaped(), db1, dw2.reshaped(), db2;
    return j;
  }

  /// One training step through the library with K samples per example (antithetic pairs if asked): tiled
  /// input and labels, forward, loss (writes ctx.example_loss for the K E columns), backward. Returns the
  /// step's gradient of every parameter (one estimate of `exact`'s gradient) and clears the gradients.
  template <class GateT>
  Vector<double> step(GateT& gate, Generator& rng, Index samples, bool antithetic) {
    Context<double> ctx(Mode::train, rng);
    ctx.set_samples(samples, antithetic);
    tile_samples(x, samples, tiled_);
    const std::vector<int> tiled_labels = tile_labels(labels, samples);
    const Matrix<double>& a = encoder.forward(tiled_, ctx);
    const Matrix<double>& h = gate.forward(a, ctx);
    const Matrix<double>& logits = decoder.forward(h, ctx);
    loss_.forward(logits, tiled_labels, ctx);
    const Matrix<double>& dh = decoder.backward(loss_.backward(), ctx);
    encoder.backward(gate.backward(dh, ctx), ctx);
    return take_gradients();
  }

  SoftmaxCrossEntropy<double> loss_{kClasses};
  Matrix<double> tiled_;
};

/// Running mean and standard error per coordinate of many independent estimates.
struct EstimateMoments {
  Vector<double> sum, sum_square;
  double n = 0;
  void add(const Vector<double>& g) {
    if (n == 0) {
      sum = Vector<double>::Zero(g.size());
      sum_square = Vector<double>::Zero(g.size());
    }
    sum += g;
    sum_square += g.cwiseAbs2();
    n += 1;
  }
  Vector<double> mean() const { return sum / n; }
  Vector<double> variance() const {
    return ((sum_square / n - mean().cwiseAbs2()) * (n / (n - 1))).cwiseMax(0.0);
  }
  Vector<double> standard_error() const { return (variance() / n).cwiseSqrt(); }
};

/// The gate's estimate of every parameter's gradient, averaged over `estimates` training steps of
/// ExactBinaryNetwork with K = `samples` (antithetic pairs if asked), lies within 5 standard errors of the
/// exact gradient; and each standard error is below a tenth of its coordinate's exact value, so that a
/// wrong sign or a missing factor would be far outside 5 standard errors (the check can fail).
template <class GateT>
void check_unbiased(GateT gate, std::uint64_t seed, Index samples, bool antithetic, const char* name,
                    int estimates = 40000) {
  ExactBinaryNetwork net;
  Vector<double> exact;
  net.exact(exact);
  Generator rng(seed);
  EstimateMoments m;
  for (int estimate = 0; estimate < estimates; ++estimate) m.add(net.step(gate, rng, samples, antithetic));
  const Vector<double> z = (m.mean() - exact).cwiseQuotient(m.standard_error());
  std::printf("%s K = %ld: largest |bias| / se over %ld parameters %.2f; se / |exact| at most %.4f\n", name,
              static_cast<long>(samples), static_cast<long>(exact.size()), z.cwiseAbs().maxCoeff(),
              m.standard_error().cwiseQuotient(exact.cwiseAbs()).maxCoeff());
  for (Index k = 0; k < exact.size(); ++k) {
    INFO(name << " K = " << samples << ", parameter " << k << ": mean " << m.mean()[k] << ", exact " << exact[k]
              << ", se " << m.standard_error()[k]);
    CHECK(std::abs(z[k]) < 5.0);
  }
  CHECK((m.standard_error().array() < 0.1 * exact.cwiseAbs().array()).all());
}

}  // namespace stoch::test
