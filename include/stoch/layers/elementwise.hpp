// stoch — the shared skeleton of layers that act on each unit independently (activations and gates).
#pragma once

#include <string>

#include "stoch/core/error.hpp"
#include "stoch/layers/layer.hpp"

namespace stoch::internal {

/// CRTP base for `units -> units` layers. `Derived` provides
///   void compute(const MatrixCRef<T>& a, Matrix<T>& h, Context<T>& ctx);       // fills h from a
///   void differentiate(const MatrixCRef<T>& dh, Matrix<T>& da, Context<T>& ctx);  // fills da
/// and may keep whatever it needs between the two. The base checks shapes and owns the buffers.
template <class Derived, class T>
class Elementwise {
 public:
  using Scalar = T;

  explicit Elementwise(Index units, const char* name)
      : units_(units),
        forward_what_(std::string(name) + "::forward"),
        input_what_(std::string(name) + "::forward: input"),
        gradient_what_(std::string(name) + "::backward: output gradient") {
    if (units <= 0) fail(std::string(name) + ": unit count must be positive, got " + std::to_string(units));
  }

  Index input_size() const { return units_; }
  Index output_size() const { return units_; }

  const Matrix<T>& forward(const MatrixCRef<T>& a, Context<T>& ctx) {
    check_rows(input_what_.c_str(), a.rows(), a.cols(), units_);
    check_batch(forward_what_.c_str(), a.cols());
    output_.resize(a.rows(), a.cols());
    derived().compute(a, output_, ctx);
    return output_;
  }

  const Matrix<T>& backward(const MatrixCRef<T>& dh, Context<T>& ctx) {
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

  Index units_;
  // The messages' prefixes, built once so that a checked call allocates nothing.
  std::string forward_what_, input_what_, gradient_what_;
  Matrix<T> output_, input_gradient_;
};

}  // namespace stoch::internal
