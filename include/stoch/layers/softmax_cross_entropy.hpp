// stoch — softmax output with the cross-entropy loss (App. A: "softmax over the 10 MNIST classes").
#pragma once

#include <cmath>
#include <span>
#include <string>

#include "stoch/core/context.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

/// Loss layer: not a `Layer` (it ends the graph). `forward` takes logits (`classes x batch`) and integer
/// labels, returns the mean loss, and writes the per-example loss into `ctx.example_loss` (the L that
/// score-function units receive, Theorem 1). `backward` returns dL/dlogits of the *mean* loss.
template <class T>
class SoftmaxCrossEntropy {
 public:
  using Scalar = T;

  explicit SoftmaxCrossEntropy(Index classes) : classes_(classes) {
    if (classes < 2) internal::fail("SoftmaxCrossEntropy: needs at least 2 classes, got " + std::to_string(classes));
  }

  Index classes() const { return classes_; }

  T forward(const MatrixCRef<T>& logits, std::span<const int> labels, Context<T>& ctx) {
    trained_.forget();  // a throwing forward leaves nothing for backward
    internal::check_rows("SoftmaxCrossEntropy::forward: logits", logits.rows(), logits.cols(), classes_);
    internal::check_batch("SoftmaxCrossEntropy::forward", logits.cols());
    const Index batch = logits.cols();
    if (static_cast<Index>(labels.size()) != batch)
      internal::fail("SoftmaxCrossEntropy::forward: " + std::to_string(labels.size()) +
                     " labels for a batch of " + std::to_string(batch));
    labels_.resize(batch);
    for (Index j = 0; j < batch; ++j) {
      const int label = labels[static_cast<std::size_t>(j)];
      if (label < 0 || label >= classes_)
        internal::fail("SoftmaxCrossEntropy::forward: label " + std::to_string(label) + " of example " +
                       std::to_string(j) + " is out of range [0, " + std::to_string(classes_) + ")");
      labels_[j] = label;
    }
    // Shift by the column max so exp never overflows; the loss is log-sum-exp minus the label's shifted
    // logit, read before exp: log(exp(s)) would be -Inf once exp(s) underflows (s < -103 in float, a
    // confident wrong prediction), and a finite loss would be refused as non-finite.
    probabilities_ = logits;
    probabilities_.rowwise() -= probabilities_.colwise().maxCoeff();
    ctx.example_loss.resize(batch);
    for (Index j = 0; j < batch; ++j) ctx.example_loss[j] = -probabilities_(labels_[j], j);
    probabilities_.array() = probabilities_.array().exp();
    const RowVector<T> sums = probabilities_.colwise().sum();
    for (Index j = 0; j < batch; ++j) ctx.example_loss[j] += std::log(sums[j]);
    // NaN or Inf in the logits (from the input, or from diverging weights) gives a non-finite loss;
    // training must stop there with a message rather than carry NaN into every parameter.
    for (Index j = 0; j < batch; ++j)
      if (!std::isfinite(ctx.example_loss[j]))
        internal::fail("SoftmaxCrossEntropy::forward: the loss of example " + std::to_string(j) +
                       " is not finite (NaN or Inf in the logits; check the input and the learning rate)");
    probabilities_.array().rowwise() /= sums.array();
    trained_.remember(ctx.training());
    return ctx.example_loss.mean();
  }

  /// dL/dlogits for the mean loss: (softmax - onehot) / batch. Requires a training forward, as every layer's
  /// backward does (after an evaluation forward the network below kept nothing to back-propagate into).
  const Matrix<T>& backward() {
    trained_.require("SoftmaxCrossEntropy::backward");
    gradient_ = probabilities_;
    for (Index j = 0; j < gradient_.cols(); ++j) gradient_(labels_[j], j) -= T(1);
    gradient_ /= static_cast<T>(gradient_.cols());
    return gradient_;
  }

  /// Softmax probabilities of the last forward (`classes x batch`).
  const Matrix<T>& probabilities() const { return probabilities_; }

 private:
  Index classes_;
  Eigen::Matrix<int, Eigen::Dynamic, 1> labels_;
  Matrix<T> probabilities_, gradient_;
  internal::TrainingForward trained_;
};

/// Number of columns whose arg-max differs from the label (classification errors).
template <class T>
Index count_errors(const MatrixCRef<T>& scores, std::span<const int> labels) {
  internal::check_shape("count_errors: labels", static_cast<Index>(labels.size()), 1, scores.cols(), 1);
  Index errors = 0;
  for (Index j = 0; j < scores.cols(); ++j) {
    Index best = 0;
    scores.col(j).maxCoeff(&best);
    errors += (best != labels[static_cast<std::size_t>(j)]) ? 1 : 0;
  }
  return errors;
}

}  // namespace stoch
