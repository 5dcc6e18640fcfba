// stoch — a flat chain of layers, itself a Layer: Sequential<Linear<T>, Tanh<T>, Linear<T>, ...>.
#pragma once

#include <string>
#include <tuple>
#include <utility>

#include "stoch/core/error.hpp"
#include "stoch/layers/layer.hpp"

namespace stoch {

namespace internal {

template <class Last, bool = Gate<Last>>
struct GateTraitsOf {};

/// A chain whose last layer is a gate is a gate with the same traits (the gater sub-network of Sec. 5).
template <class Last>
struct GateTraitsOf<Last, true> {
  static constexpr bool needs_output_gradient = Last::needs_output_gradient;
  static constexpr bool closed_gate_needs_gradient = Last::closed_gate_needs_gradient;
};

template <class... Ls>
using LastOf = std::tuple_element_t<sizeof...(Ls) - 1, std::tuple<Ls...>>;

}  // namespace internal

/// Layers applied in order; forward feeds each output to the next, backward runs in reverse.
/// Adjacent sizes are checked once, at construction.
template <Layer First, Layer... Rest>
class Sequential : public internal::GateTraitsOf<internal::LastOf<First, Rest...>> {
 public:
  using Scalar = typename First::Scalar;
  static_assert((std::same_as<Scalar, typename Rest::Scalar> && ...),
                "Sequential: all layers must share one scalar type");
  static constexpr std::size_t size = 1 + sizeof...(Rest);

  explicit Sequential(First first, Rest... rest) : layers_(std::move(first), std::move(rest)...) {
    check_sizes(std::make_index_sequence<size - 1>{});
  }

  Index input_size() const { return std::get<0>(layers_).input_size(); }
  Index output_size() const { return std::get<size - 1>(layers_).output_size(); }

  const Matrix<Scalar>& forward(const MatrixCRef<Scalar>& x, Context<Scalar>& ctx) {
    trained_.forget();  // a throwing forward leaves nothing for backward
    const Matrix<Scalar>& y = forward_from<0>(x, ctx);
    trained_.remember(ctx.training());
    return y;
  }

  /// Requires a training forward (checked here too: with set_input_gradient(false), the leading layers'
  /// own backward may not run).
  const Matrix<Scalar>& backward(const MatrixCRef<Scalar>& dy, Context<Scalar>& ctx) {
    trained_.require("Sequential::backward");
    return backward_from<size - 1>(dy, ctx);
  }

  /// false: the chain's dL/dx is not needed (its input is data). Then backward skips the leading layers
  /// that only propagate (kPropagatingPrefix: e.g. an input dropout), passes `false` to the first other
  /// layer if it takes it, and returns an empty matrix (or, when that layer comes first and cannot skip
  /// its dL/dx, what it returns); every parameter gradient and state update is as before (see layer.hpp).
  void set_input_gradient(bool needed) {
    input_gradient_needed_ = needed;
    if constexpr (kPropagatingPrefix < size) {
      using Bottom = std::tuple_element_t<kPropagatingPrefix, std::tuple<First, Rest...>>;
      if constexpr (OptionalInputGradient<Bottom>) std::get<kPropagatingPrefix>(layers_).set_input_gradient(needed);
    }
  }
  bool input_gradient() const noexcept { return input_gradient_needed_; }

  /// True when every layer only propagates (then so does the chain).
  static constexpr bool backward_only_propagates = (stoch::backward_only_propagates<First> && ... &&
                                                    stoch::backward_only_propagates<Rest>);

  ParameterList<Scalar> parameters() {
    ParameterList<Scalar> list;
    std::apply([&](auto&... layer) { (append(list, layer.parameters()), ...); }, layers_);
    return list;
  }

  template <std::size_t I>
  auto& get() { return std::get<I>(layers_); }
  template <std::size_t I>
  const auto& get() const { return std::get<I>(layers_); }
  auto& last() { return std::get<size - 1>(layers_); }
  const auto& last() const { return std::get<size - 1>(layers_); }

 private:
  template <std::size_t... I>
  void check_sizes(std::index_sequence<I...>) const {
    (check_pair<I>(), ...);
  }
  template <std::size_t I>
  void check_pair() const {
    const Index out = std::get<I>(layers_).output_size();
    const Index in = std::get<I + 1>(layers_).input_size();
    if (out != in)
      internal::fail("Sequential: layer " + std::to_string(I) + " outputs " + std::to_string(out) +
                     " features but layer " + std::to_string(I + 1) + " takes " + std::to_string(in));
  }

  template <std::size_t I>
  const Matrix<Scalar>& forward_from(const MatrixCRef<Scalar>& x, Context<Scalar>& ctx) {
    const Matrix<Scalar>& y = std::get<I>(layers_).forward(x, ctx);
    if constexpr (I + 1 < size) return forward_from<I + 1>(y, ctx);
    else return y;
  }

  /// The number of leading layers whose backward only propagates (see layer.hpp).
  static constexpr std::size_t kPropagatingPrefix = [] {
    constexpr bool propagates[] = {stoch::backward_only_propagates<First>, stoch::backward_only_propagates<Rest>...};
    std::size_t n = 0;
    while (n < size && propagates[n]) ++n;
    return n;
  }();

  template <std::size_t I>
  const Matrix<Scalar>& backward_from(const MatrixCRef<Scalar>& dy, Context<Scalar>& ctx) {
    if constexpr (I < kPropagatingPrefix)
      if (!input_gradient_needed_) return no_gradient_;  // nothing below needs dL/dx: nothing to do
    const Matrix<Scalar>& dx = std::get<I>(layers_).backward(dy, ctx);
    if constexpr (I > 0) return backward_from<I - 1>(dx, ctx);
    else return dx;
  }

  std::tuple<First, Rest...> layers_;
  internal::TrainingForward trained_;
  bool input_gradient_needed_ = true;
  Matrix<Scalar> no_gradient_;  // empty: what backward returns when dL/dx is not needed
};

}  // namespace stoch
