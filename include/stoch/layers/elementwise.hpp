// stoch — the shared skeleton of layers that act on each unit independently (activations and gates).
#pragma once

#include <string>
#include <string_view>

#include "stoch/core/error.hpp"
#include "stoch/layers/layer.hpp"

namespace stoch::internal {

/// CRTP base for `units -> units` layers. `Derived` provides
///   void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx);       // fills h from a
///   void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>& ctx);  // fills da
/// and may keep whatever it needs between the two. The base checks shapes, refuses a non-finite input
/// (for a gate, a pre-activation that a diverged weight upstream made NaN or Inf: a gate would otherwise
/// turn it into a closed gate and its estimator into NaN gradients), refuses a backward that does not
/// follow a training forward, and owns the buffers.
template <class Derived, class T>
class Elementwise {
 public:
  using Scalar = T;

  /// `name` is the class name, `instance` the layer's instance name if it has one (the messages start
  /// with internal::where(name, method, instance)).
  explicit Elementwise(Index units, const char* name, std::string_view instance = {})
      : units_(units),
        class_name_(name),
        forward_what_(where(name, "forward", instance)),
        input_what_(forward_what_ + ": input"),
        backward_what_(where(name, "backward", instance)),
        gradient_what_(backward_what_ + ": output gradient") {
    if (units <= 0)
      fail(where(name, "", instance) + ": unit count must be positive, got " + std::to_string(units));
  }

  Index input_size() const { return units_; }
  Index output_size() const { return units_; }

  const Matrix<T>& forward(const MatrixCRef<T>& a, Context<T>& ctx) {
    trained_.forget();  // a throwing forward leaves nothing for backward
    check_rows(input_what_.c_str(), a.rows(), a.cols(), units_);
    check_batch(forward_what_.c_str(), a.cols());
    constexpr bool gate = requires { Derived::needs_output_gradient; };
    check_finite(forward_what_.c_str(), a, gate ? "pre-activation" : "input", "a diverged weight upstream?");
    output_.resize(a.rows(), a.cols());
    derived().compute(a, output_, ctx);
    trained_.remember(ctx.training());
    return output_;
  }

  const Matrix<T>& backward(const MatrixCRef<T>& dh, Context<T>& ctx) {
    require_training_forward();
    check_shape(gradient_what_.c_str(), dh.rows(), dh.cols(), units_,
                output_.cols());
    input_gradient_.resize(dh.rows(), dh.cols());
    derived().differentiate(dh, input_gradient_, ctx);
    return input_gradient_;
  }

  ParameterList<T> parameters() { return {}; }

  /// The last forward's output.
  const Matrix<T>& output() const { return output_; }

 protected:
  Derived& derived() { return static_cast<Derived&>(*this); }

  void require_training_forward() const { trained_.require(backward_what_); }

  Index units_;
  const char* class_name_;
  // The messages' prefixes, built once so that a checked call allocates nothing.
  std::string forward_what_, input_what_, backward_what_, gradient_what_;
  TrainingForward trained_;
  Matrix<T> output_, input_gradient_;
};

}  // namespace stoch::internal
