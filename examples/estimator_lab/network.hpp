// estimator_lab — a small network of binary units whose expected loss and its exact gradient are computed by
// enumerating every binary vector, and one gradient estimate of any gate of the library through the same
// network (the multi-sample path of core/samples.hpp for the K-sample and antithetic gates).
//
//     x -> Linear (encoder) -> gate h (n binary units, h ~ Bernoulli(sigm(a))) -> Linear (decoder) -> softmax CE
//
// J = (1/E) sum_e E_h[L_e(h)], the mean over E examples of the expected cross-entropy under independent
// Bernoulli(sigm(a_e)) units (Eq. 3 of the paper without noise). Its gradient is what every estimator is
// compared with, the relaxed ones (Gumbel-sigmoid) included: their bias is the distance from that.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "stoch/core/context.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/math.hpp"
#include "stoch/core/samples.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"

namespace lab {

using stoch::Generator;
using stoch::Index;
template <class T>
using Matrix = stoch::Matrix<T>;
template <class T>
using Vector = stoch::Vector<T>;

/// The shape of one enumerable network; its weights, inputs and labels follow from `seed` alone.
struct NetworkSpec {
  Index units = 4;     ///< n binary units, 1 .. 16 (2^n states are enumerated per example)
  Index inputs = 5;    ///< input features
  Index classes = 4;   ///< softmax classes
  Index examples = 4;  ///< E examples in the batch of one estimate
  std::uint64_t seed = 0;

  std::string name() const { return std::to_string(units) + " units"; }
};

class BinaryNetwork {
 public:
  static constexpr Index kMaxUnits = 16;

  explicit BinaryNetwork(const NetworkSpec& spec)
      : spec_(spec),
        encoder_(spec.inputs, spec.units, "encoder"),
        decoder_(spec.units, spec.classes, "decoder"),
        loss_(spec.classes) {
    if (spec.units < 1 || spec.units > kMaxUnits)
      throw stoch::Error("estimator_lab: a network needs 1 to " + std::to_string(kMaxUnits) +
                         " binary units (2^n states are enumerated), got " + std::to_string(spec.units));
    if (spec.inputs < 1 || spec.classes < 2 || spec.examples < 1)
      throw stoch::Error("estimator_lab: a network needs inputs >= 1, classes >= 2 and examples >= 1");
    Generator rng(spec.seed);
    encoder_.initialize(rng);
    decoder_.initialize(rng);
    // Encoder biases spread over [-2.5, 2.5], so that the units have different probabilities, some near 0 or
    // 1 (where the score-function estimators' variance and the straight-through bias differ most); decoder
    // weights scaled up so that the loss is far from linear in h (a linear loss would make straight-through
    // unbiased for the encoder and hide its bias).
    Matrix<double> u(spec.units, 1);
    stoch::fill_uniform<double>(rng, u);
    encoder_.bias().value = (5.0 * u.array() - 2.5).matrix();
    decoder_.weight().value *= 3.0;
    Matrix<double> decoder_bias(spec.classes, 1);
    stoch::fill_gaussian<double>(rng, decoder_bias, 0.5);
    decoder_.bias().value = decoder_bias;
    x_.resize(spec.inputs, spec.examples);
    stoch::fill_gaussian<double>(rng, x_);
    Matrix<double> label_draw(1, spec.examples);
    stoch::fill_uniform<double>(rng, label_draw);
    labels_.resize(static_cast<std::size_t>(spec.examples));
    for (Index e = 0; e < spec.examples; ++e)
      labels_[static_cast<std::size_t>(e)] =
          static_cast<int>(std::min<double>(static_cast<double>(spec.classes) - 1,
                                            std::floor(label_draw(0, e) * static_cast<double>(spec.classes))));
  }

  const NetworkSpec& spec() const { return spec_; }

  /// Every trainable parameter: encoder W, b, decoder W, b (the order of `gradient`'s entries).
  Index parameter_count() const {
    return encoder_.weight().value.size() + encoder_.bias().value.size() + decoder_.weight().value.size() +
           decoder_.bias().value.size();
  }

  /// The units' probabilities p = sigm(a) for every example (`units x examples`).
  Matrix<double> probabilities() const {
    Matrix<double> a = encoder_.weight().value * x_;
    a.colwise() += encoder_.bias().value.col(0);
    return a.unaryExpr([](double v) { return stoch::sigmoid(v); });
  }

  /// J and dJ/d(every parameter), exactly, by enumerating the 2^n binary vectors of each example:
  ///   dJ/da_e = (1/E) sum_h P(h) L_e(h) (h - p_e)       (Theorem 1's score-function identity, exact)
  ///   dJ/d(decoder) = (1/E) sum_h P(h) dL_e(h)/d(decoder),   dJ/dW_enc = dJ/da X^T,  dJ/db_enc = row sums.
  double exact(Vector<double>& gradient) const {
    const Index n = spec_.units, examples = spec_.examples, classes = spec_.classes;
    const Matrix<double> p = probabilities();
    Matrix<double> da = Matrix<double>::Zero(n, examples);
    Matrix<double> dw2 = Matrix<double>::Zero(classes, n);
    Vector<double> db2 = Vector<double>::Zero(classes);
    const Matrix<double>& w2 = decoder_.weight().value;
    const Vector<double> b2 = decoder_.bias().value.col(0);
    double j = 0;
    const double inv_e = 1.0 / static_cast<double>(examples);
    Vector<double> h(n), z(classes);
    for (Index e = 0; e < examples; ++e) {
      const int label = labels_[static_cast<std::size_t>(e)];
      const std::uint32_t states = std::uint32_t{1} << n;
      for (std::uint32_t state = 0; state < states; ++state) {
        double probability = 1;
        for (Index i = 0; i < n; ++i) {
          h[i] = (state >> i) & 1U;
          probability *= h[i] > 0 ? p(i, e) : 1 - p(i, e);
        }
        z.noalias() = w2 * h + b2;
        const double shift = z.maxCoeff(), z_label = z[label];
        z = (z.array() - shift).exp().matrix();
        const double total = z.sum();
        const double loss = std::log(total) + shift - z_label;
        z /= total;  // softmax; dL/dz = softmax - onehot
        z[label] -= 1.0;
        const double weight = inv_e * probability;
        j += weight * loss;
        da.col(e) += weight * loss * (h - p.col(e));
        dw2.noalias() += weight * z * h.transpose();
        db2 += weight * z;
      }
    }
    const Matrix<double> dw1 = da * x_.transpose();
    const Vector<double> db1 = da.rowwise().sum();
    gradient.resize(parameter_count());
    gradient << dw1.reshaped(), db1, dw2.reshaped(), db2;
    return j;
  }

  /// The largest |central difference of J - exact dJ| over the parameters, each difference of J at
  /// theta_k +- step (J by enumeration, as in `exact`): checks the enumeration's gradient formulas. The
  /// parameters are restored bit for bit.
  double finite_difference_error(double step = 1e-5) {
    Vector<double> exact_gradient, unused;
    exact(exact_gradient);
    double largest = 0;
    Index k = 0;
    for (stoch::Parameter<double>* parameter : parameters())
      for (Index i = 0; i < parameter->value.size(); ++i, ++k) {
        double& value = parameter->value.data()[i];
        const double kept = value;
        value = kept + step;
        const double up = exact(unused);
        value = kept - step;
        const double down = exact(unused);
        value = kept;
        largest = std::max(largest, std::abs((up - down) / (2 * step) - exact_gradient[k]));
      }
    return largest;
  }

  /// One estimate of `exact`'s gradient by the gate: K samples per example (antithetic pairs if asked) as
  /// tiled copies of the E examples, forward, loss (which writes ctx.example_loss), backward. The gradient of
  /// every parameter goes into `gradient` (same order as `exact`); the layers' gradients are cleared.
  template <class Gate>
  void estimate(Gate& gate, Generator& rng, Index samples, bool antithetic, Vector<double>& gradient) {
    stoch::Context<double> ctx(stoch::Mode::train, rng);
    ctx.set_samples(samples, antithetic);
    if (tiled_labels_.size() != labels_.size() * static_cast<std::size_t>(samples)) {
      stoch::tile_samples(x_, samples, tiled_x_);
      tiled_labels_ = stoch::tile_labels(labels_, samples);
    }
    const Matrix<double>& a = encoder_.forward(tiled_x_, ctx);
    const Matrix<double>& h = gate.forward(a, ctx);
    const Matrix<double>& logits = decoder_.forward(h, ctx);
    loss_.forward(logits, tiled_labels_, ctx);
    const Matrix<double>& dh = decoder_.backward(loss_.backward(), ctx);
    encoder_.backward(gate.backward(dh, ctx), ctx);
    gradient.resize(parameter_count());
    Index k = 0;
    for (stoch::Parameter<double>* parameter : parameters()) {
      const Index size = parameter->grad.size();
      gradient.segment(k, size) = parameter->grad.reshaped();
      parameter->grad.setZero();
      k += size;
    }
  }

 private:
  /// Every trainable parameter, in the order of the gradient vectors.
  std::array<stoch::Parameter<double>*, 4> parameters() {
    return {&encoder_.weight(), &encoder_.bias(), &decoder_.weight(), &decoder_.bias()};
  }

  NetworkSpec spec_;
  stoch::Linear<double> encoder_, decoder_;
  stoch::SoftmaxCrossEntropy<double> loss_;
  Matrix<double> x_, tiled_x_;
  std::vector<int> labels_, tiled_labels_;
};

}  // namespace lab
