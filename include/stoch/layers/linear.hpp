// stoch — the affine layer y = W x + b (Sec. 2: a_i = b_i + sum_j W_ij x_j).
#pragma once

#include <string>

#include "stoch/core/error.hpp"
#include "stoch/core/initialization.hpp"
#include "stoch/detail/parallel_product.hpp"
#include "stoch/detail/zero_skipping_product.hpp"
#include "stoch/layers/layer.hpp"

namespace stoch {

/// When Linear::forward skips the zero entries of its input (Linear::set_zero_skipping).
enum class ZeroSkipping {
  off,         ///< always the dense product (the default)
  evaluation,  ///< in Mode::eval only: training keeps the dense product, and so its rounding
  always,      ///< in both modes
};

/// Affine map from `in` to `out` features. W is `out x in`, b is `out x 1`.
///
/// `name` prefixes the parameters' names ("<name>.W", "<name>.b") and follows the class name in error
/// messages ("Linear::forward ('<name>'): ..."). The default, "linear", is the same for every Linear:
/// give each layer of a model that is saved its own name (save_model refuses duplicate names).
template <class T>
class Linear {
 public:
  using Scalar = T;

  /// Zero weights and biases; call `initialize` (or use the other constructor) before training.
  Linear(Index in, Index out, std::string name = "linear")
      : weight_(name + ".W", out, in), bias_(name + ".b", out, 1),
        forward_what_(internal::where("Linear", "forward", name)),
        input_what_(forward_what_ + ": input"),
        backward_what_(internal::where("Linear", "backward", name)),
        gradient_what_(backward_what_ + ": output gradient"),
        name_(std::move(name)) {
    if (in <= 0 || out <= 0)
      internal::fail(internal::where("Linear", "", name_) + ": sizes must be positive, got in = " +
                     std::to_string(in) + ", out = " + std::to_string(out));
  }

  /// Glorot-uniform weights drawn from `rng`, zero biases.
  Linear(Index in, Index out, Generator& rng, std::string name = "linear") : Linear(in, out, std::move(name)) {
    initialize(rng);
  }

  void initialize(Generator& rng) {
    glorot_uniform<T>(rng, weight_.value, input_size(), output_size());
    bias_.value.setZero();
  }

  Index input_size() const { return weight_.value.cols(); }
  Index output_size() const { return weight_.value.rows(); }

  const Matrix<T>& forward(const MatrixCRef<T>& x, Context<T>& ctx) {
    trained_.forget();  // a throwing forward leaves nothing for backward
    internal::check_rows(input_what_.c_str(), x.rows(), x.cols(), input_size());
    internal::check_batch(forward_what_.c_str(), x.cols());
    internal::check_finite(input_what_.c_str(), x);
    trained_.remember(ctx.training());
    if (ctx.training()) input_ = x;  // kept for dW = dy x^T
    const bool skip = zero_skipping_ == ZeroSkipping::always ||
                      (zero_skipping_ == ZeroSkipping::evaluation && !ctx.training());
    const auto limit = static_cast<Index>(kZeroSkippingCrossover * static_cast<double>(x.size()));
    if (skip && nonzero_.build<T>(x, limit) <= limit) {
      internal::zero_skipping_product<T>(weight_.value, bias_.value.data(), x, nonzero_, output_);
      return output_;
    }
    internal::product(output_, weight_.value, x);
    output_.colwise() += bias_.value.col(0);
    return output_;
  }

  /// Requires a training forward (an evaluation forward does not keep the input dW needs).
  const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>&) {
    trained_.require(backward_what_);
    internal::check_shape(gradient_what_.c_str(), dy.rows(), dy.cols(), output_size(), input_.cols());
    internal::add_product(weight_.grad, dy, input_.transpose());
    bias_.grad.col(0) += dy.rowwise().sum();
    if (input_gradient_needed_) internal::product(input_gradient_, weight_.value.transpose(), dy);
    else input_gradient_.resize(0, 0);
    return input_gradient_;
  }

  /// false: backward skips dL/dx = W^T dy (`in x out x batch` multiply-adds) and returns an empty matrix;
  /// for a first layer, whose input is data (see layer.hpp).
  void set_input_gradient(bool needed) noexcept { input_gradient_needed_ = needed; }
  bool input_gradient() const noexcept { return input_gradient_needed_; }

  /// When forward skips the zero entries of its input, reading for each example only the columns of W at
  /// its non-zero inputs (internal::zero_skipping_product), if at most kZeroSkippingCrossover of the batch's
  /// inputs are non-zero (the dense product otherwise: the listing stops at the first column that passes
  /// the crossover). For a layer fed by a gated layer,
  /// whose closed units output 0 (Sec. 5): their outgoing weights are then skipped too. The outputs equal the
  /// dense product's up to rounding (the sums run in another order); backward is unchanged.
  void set_zero_skipping(ZeroSkipping when) noexcept { zero_skipping_ = when; }
  ZeroSkipping zero_skipping() const noexcept { return zero_skipping_; }
  /// Fraction of non-zero inputs up to which forward skips the zeros (when asked to): below the density
  /// where the skipping product stops beating the dense one for the MNIST network's layers.
  /// Why this value: docs/performance-notes.md#zero-skipping-crossover.
  static constexpr double kZeroSkippingCrossover = 0.15;

  ParameterList<T> parameters() { return {&weight_, &bias_}; }

  Parameter<T>& weight() { return weight_; }
  Parameter<T>& bias() { return bias_; }
  const Parameter<T>& weight() const { return weight_; }
  const Parameter<T>& bias() const { return bias_; }
  /// The instance name (the prefix of the parameters' names).
  const std::string& name() const { return name_; }

 private:
  Parameter<T> weight_, bias_;
  // The messages' prefixes, built once so that a checked call allocates nothing.
  std::string forward_what_, input_what_, backward_what_, gradient_what_, name_;
  internal::TrainingForward trained_;
  Matrix<T> input_, output_, input_gradient_;
  bool input_gradient_needed_ = true;
  ZeroSkipping zero_skipping_ = ZeroSkipping::off;
  internal::NonzeroRows nonzero_;  // of the last zero-skipping forward's input
};

}  // namespace stoch
