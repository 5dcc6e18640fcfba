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

  explicit Elementwise(Index units, const char* name) : units_(units), name_(name) {
    if (units <= 0) fail(std::string(name) + ": unit count must be positive, got " + std::to_string(units));
  }

  Index input_size() const { return units_; }
  Index output_size() const { return units_; }

  const Matrix<T>& forward(const MatrixCRef<T>& a, Context<T>& ctx) {
    check_rows((name_ + "::forward: input").c_str(), a.rows(), a.cols(), units_);
    check_batch((name_ + "::forward").c_str(), a.cols());
    output_.resize(a.rows(), a.cols());
    derived().compute(a, output_, ctx);
    return output_;
  }

  const Matrix<T>& backward(const MatrixCRef<T>& dh, Context<T>& ctx) {
    check_shape((name_ + "::backward: output gradient").c_str(), dh.rows(), dh.cols(), units_,
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
  std::string name_;
  Matrix<T> output_, input_gradient_;
};

}  // namespace stoch::internal
