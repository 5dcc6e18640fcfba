// stoch — what a layer is. Written down once; checked by the `Layer` concept below.
//
// SHAPES. Activations are `features x batch` column-major matrices (stoch::Matrix<T>): one example per
// contiguous column. A layer maps `input_size() x B` to `output_size() x B` for any batch size B >= 1.
//
// A LAYER `L` with scalar type `T = typename L::Scalar` (float or double) provides:
//
//   Index input_size() const;   Index output_size() const;
//
//   const Matrix<T>& forward(const MatrixCRef<T>& x, Context<T>& ctx);
//     Requires: x.rows() == input_size(), x.cols() >= 1; otherwise throws stoch::Error naming the layer
//     and both shapes (every message of a layer starts "Class::method", then " ('instance')" when the
//     layer has an instance name, the prefix of its parameters' names: internal::where). In ctx.mode ==
//     Mode::train a stochastic layer draws its noise from ctx.generator() and keeps what backward needs; in
//     Mode::eval it computes its deterministic counterpart and draws nothing. Returns a reference to a
//     layer-owned buffer (output_size() x B), valid until the next forward; no allocation once the batch
//     size is steady.
//
//   const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>& ctx);
//     Requires: the last call was forward(x, ctx) in Mode::train with the same batch size B (otherwise
//     throws "<Class>::backward: needs a forward in Mode::train first ..."; internal::TrainingForward keeps
//     the flag), and dy == dL/d(output) is output_size() x B. ASSIGNS dL/dx (input_size() x B) into a
//     layer-owned buffer and returns it; ACCUMULATES (+=) the gradient of every trainable parameter into
//     Parameter::grad (an optimiser step clears it). A score-function layer (StochasticBinary, Sec. 3)
//     ignores dy and reads the per-example loss ctx.example_loss instead.
//
//   ParameterList<T> parameters();
//     Pointers to the parameters and saved state the layer owns (possibly none), in a fixed order.
//
// OPTIONAL, for the bottom of a network, where dL/dx is never read (the input is data):
//
//   void set_input_gradient(bool needed);                    (concept OptionalInputGradient)
//     needed == false: backward still accumulates every parameter gradient and updates any state, but
//     does not compute dL/dx and returns an empty (0 x 0) matrix. Default: needed. A layer without it
//     always computes dL/dx.
//   static constexpr bool backward_only_propagates = true;   (trait backward_only_propagates<L>)
//     The layer's backward does nothing but compute dL/dx (no parameters, no state: Dropout, Tanh,
//     Sigmoid, Rectifier). When its dL/dx is not needed, its backward need not be called at all.
// Sequential::set_input_gradient(false) skips the backward of its leading such layers (an input dropout)
// and passes `false` to the first other one; GatedLayer passes it to its gater and skips the expert's share.
//
// A GATE is a layer whose output multiplies an expert elementwise (Sec. 5, Figure 1). It also states,
// as compile-time constants, what its backward needs from the expert, so that the gated layer can skip
// expert rows by rule, not by guess:
//   static constexpr bool needs_output_gradient;  // false: backward ignores dL/dh (SBN)
//   static constexpr bool closed_gate_needs_gradient;  // true: a zero gate learns from dL/dh = dy * H
//                                                      //       (straight-through), so H is needed there
#pragma once

#include <concepts>

#include "stoch/core/context.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch {

template <class L>
concept Layer = requires(L& layer, const L& const_layer,
                         const MatrixCRef<typename L::Scalar>& activations,
                         Context<typename L::Scalar>& ctx) {
  typename L::Scalar;
  { const_layer.input_size() } -> std::same_as<Index>;
  { const_layer.output_size() } -> std::same_as<Index>;
  { layer.forward(activations, ctx) } -> std::same_as<const Matrix<typename L::Scalar>&>;
  { layer.backward(activations, ctx) } -> std::same_as<const Matrix<typename L::Scalar>&>;
  { layer.parameters() } -> std::same_as<ParameterList<typename L::Scalar>>;
};

template <class G>
concept Gate = Layer<G> && requires {
  { G::needs_output_gradient } -> std::convertible_to<bool>;
  { G::closed_gate_needs_gradient } -> std::convertible_to<bool>;
};

/// A layer that can skip computing dL/dx (see the contract above).
template <class L>
concept OptionalInputGradient = Layer<L> && requires(L& layer) { layer.set_input_gradient(false); };

/// Whether L's backward only computes dL/dx (see the contract above); false unless L says so.
template <class L>
inline constexpr bool backward_only_propagates = [] {
  if constexpr (requires { L::backward_only_propagates; }) return static_cast<bool>(L::backward_only_propagates);
  else return false;
}();

/// Whether the expert value H_i may be skipped where the gate h_i is zero during training: true unless
/// the gate's estimator sends a gradient into closed gates (Sec. 5; see README "Which gates skip").
/// In evaluation every gate skips.
template <Gate G>
inline constexpr bool skips_in_training = !G::needs_output_gradient || !G::closed_gate_needs_gradient;

}  // namespace stoch
