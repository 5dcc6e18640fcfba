// stoch — the gated conditional layer of Sec. 5 (Figure 1): y_i = h_i H_i, where the gater network gives
// h (`units x batch`) and the expert is affine, H = W x + b. Where h_i = 0 the expert unit is not computed
// at all, in the forward and in the backward: that is the "conditional computation" of the paper. A gate may
// also govern a block of k consecutive units, y_i = h_{floor(i/k)} H_i (h then `units / k x batch`).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stoch/conditional/expert_path.hpp"
#include "stoch/core/error.hpp"
#include "stoch/detail/active_set.hpp"
#include "stoch/detail/block_kernels.hpp"
#include "stoch/detail/parallel_product.hpp"
#include "stoch/detail/sparse_kernels.hpp"
#include "stoch/detail/sparse_plan.hpp"
#include "stoch/layers/layer.hpp"
#include "stoch/layers/linear.hpp"

namespace stoch {

/// y = h ⊙ (W x + b) with h = gater(x), a `stoch::Layer` from `in` to `units` features.
///
/// Gater: any stoch::Gate from `in` to `units` (e.g. Sequential<Linear, Tanh, Linear, Gate>).
///
/// Backward (dH = h ⊙ dy is zero where the gate is closed):
///   dW, db and the expert's share W^T dH of dL/dx are computed over open gates only;
///   the gater receives dL/dh = dy ⊙ H and its backward gives the gater's share of dL/dx; the two add.
/// Where a gate is closed, dL/dh is sent only if the gate's estimator needs it there
/// (`Gater::closed_gate_needs_gradient`, straight-through, Sec. 4): then training computes the dense
/// expert, unless `set_skip_closed_gates_in_training(true)`, which sends 0 into closed gates instead and
/// so CHANGES THE ESTIMATOR (closed straight-through gates no longer learn to open from the expert).
/// A gate that ignores dL/dh (`needs_output_gradient == false`, SBN, Sec. 3) receives zeros and the layer
/// never computes dy ⊙ H. In Mode::eval every gate type skips. The values passed to the gater do not
/// depend on the path (dense or sparse), only on the gate's traits and the option above.
///
/// Storage: the expert weights are kept transposed, `in x units` (each unit's incoming weights
/// contiguous, for the sparse kernels), as Parameter "<name>.W" with fan_in = FanIn::columns; the bias is
/// "<name>.b", `units x 1`. parameters() lists the gater's parameters, then W, then b.
///
/// Block gates (block() = k > 1): the gater maps `in` to `units / k` features and gate j scales the expert
/// units jk .. jk + k - 1. Every estimator is unchanged: the gater receives dL/dh_j = sum over its block of
/// dy_i H_i (the chain rule through y_i = h_j H_i), the skipping rules are the gate's traits as above, and
/// the density is that of the open (block, example) pairs. The sparse path computes each block over the
/// examples that open it in register tiles of up to 8 examples (internal::block_expert_forward), reading the
/// block's weights once per tile; list_layout() and visit_order() do not apply to it. k = 1 is the unit layer.
/// The weights of a block layer are stored in the block layout, `(k in) x (units / k)` with column j block j's
/// `k x in` weights (FanIn::blocks; dense_expert_weight() gives `units x in`): a block is one contiguous run
/// of memory, and the k weights of a block from one input are contiguous: when at most internal::kSparseInputCrossover of the batch's inputs
/// are non-zero (the output of a gated layer below, Sec. 5), each open pair reads only the weights of its
/// example's non-zero inputs, one cache line per input for 16 floats, and a layer between two gated layers
/// costs about alpha_in * alpha_out of its dense multiply-adds.
///
/// Lifetime: backward uses the gater's output buffer from the last forward; call it on the same object.
template <Gate Gater>
class GatedLayer {
 public:
  using Scalar = typename Gater::Scalar;
  using T = Scalar;

  /// The expert's weights and bias are copied (W transposed) from `expert`, a Linear from `in` to `units`;
  /// one gate per unit (block() == 1).
  GatedLayer(Gater gater, const Linear<T>& expert, const std::string& name = "expert")
      : GatedLayer(std::move(gater), expert, 1, name) {}

  /// Block gates: each of the gater's `units / block` outputs governs `block` consecutive expert units (W copied
  /// into the block layout when block > 1; transposed when block == 1, the constructor above). Throws
  /// stoch::Error naming the layer when `block` < 1, does not divide the expert's `units`, or the gater does
  /// not map `in` to `units / block` features.
  GatedLayer(Gater gater, const Linear<T>& expert, Index block, const std::string& name = "expert")
      : gater_(std::move(gater)),
        weight_(name + ".W", expert.input_size() * std::max<Index>(block, 1),
                expert.output_size() / std::max<Index>(block, 1)),
        bias_(name + ".b", expert.output_size(), 1),
        name_(name),
        forward_what_(internal::where("GatedLayer", "forward", name)),
        input_what_(forward_what_ + ": input"),
        gater_output_what_(forward_what_ + ": gater output"),
        backward_what_(internal::where("GatedLayer", "backward", name)),
        gradient_what_(backward_what_ + ": output gradient"),
        fused_step_what_(backward_what_ + ": the Sgd step fused into backward"),
        block_(block) {
    if (block < 1)
      internal::fail(internal::where("GatedLayer", "", name) + ": the block size must be at least 1, got " +
                     std::to_string(block));
    if (expert.output_size() % block != 0)
      internal::fail(internal::where("GatedLayer", "", name) + ": the expert's " +
                     std::to_string(expert.output_size()) + " units are not a multiple of the block size " +
                     std::to_string(block));
    if (block > 1 && (gater_.input_size() != expert.input_size() ||
                      gater_.output_size() != expert.output_size() / block))
      internal::fail(internal::where("GatedLayer", "", name) + ": the gater maps " +
                     std::to_string(gater_.input_size()) + " -> " + std::to_string(gater_.output_size()) +
                     " features but blocks of " + std::to_string(block) + " of the expert's " +
                     std::to_string(expert.input_size()) + " -> " + std::to_string(expert.output_size()) +
                     " units need a gater mapping " + std::to_string(expert.input_size()) + " -> " +
                     std::to_string(expert.output_size() / block));
    if (block == 1 && (gater_.input_size() != expert.input_size() || gater_.output_size() != expert.output_size()))
      internal::fail(internal::where("GatedLayer", "", name) + ": the gater maps " +
                     std::to_string(gater_.input_size()) + " -> " +
                     std::to_string(gater_.output_size()) + " features but the expert maps " +
                     std::to_string(expert.input_size()) + " -> " + std::to_string(expert.output_size()) +
                     "; both must map in -> units");
    if (block == 1) {
      weight_.value = expert.weight().value.transpose();
      weight_.fan_in = FanIn::columns;
    } else {
      internal::to_block_layout<T>(expert.weight().value, block, weight_.value);
      weight_.fan_in = FanIn::blocks;
      weight_.block = block;
      crossover_ = internal::kDefaultBlockCrossover;
    }
    bias_.value = expert.bias().value;
    internal::track_written_columns(weight_);  // a unit (block) closed in a whole batch leaves its column
  }

  Index input_size() const { return weight_.value.rows() / block_; }
  Index output_size() const { return weight_.value.cols() * block_; }
  /// Number of consecutive expert units each gate governs (1: one gate per unit).
  Index block() const noexcept { return block_; }

  /// x: `in x batch` -> y: `units x batch`.
  const Matrix<T>& forward(const MatrixCRef<T>& x, Context<T>& ctx) {
    backward_ready_.forget();  // a throwing forward leaves nothing for backward
    internal::check_rows(input_what_.c_str(), x.rows(), x.cols(), input_size());
    internal::check_batch(forward_what_.c_str(), x.cols());
    const Matrix<T>& h = gater_.forward(x, ctx);
    internal::check_shape(gater_output_what_.c_str(), h.rows(), h.cols(), output_size() / block_, x.cols());
    gate_ = &h;
    trained_ = ctx.training();
    batch_ = x.cols();

    active_.count<T>(h);
    if (block_ > 1) {
      forward_blocks(x, h);
      backward_ready_.remember(trained_);
      return output_;
    }
    const internal::ExpertPlan plan =
        internal::plan_expert<T>(active_, input_size(), path_, crossover_, layout_, order_);
    sparse_ = plan.sparse;
    const Index stride = plan.stride;
    if (sparse_) active_.build_lists<T>(h, plan.layout, plan.order);
    dense_expert_ = !sparse_ || (trained_ && closed_gates_get_gradient());

    // Training keeps x for dW = dH x^T; the kernels read it through a copy with a padded stride when
    // x's own stride would alias in the cache (see internal::padded_stride).
    const bool copy = trained_ || (!dense_expert_ && (x.outerStride() != stride));
    if (copy) {
      input_.resize(stride, x.cols());
      input_.topRows(x.rows()) = x;
    }
    const MatrixCRef<T> input = copy ? MatrixCRef<T>(input_view()) : x;
    if (dense_expert_) {
      internal::product(expert_, weight_.value.transpose(), input);
      expert_.colwise() += bias_.value.col(0);
      output_.noalias() = h.cwiseProduct(expert_);
    } else {
      // H at the open pairs is kept in the flat order of the lists (not in a `units x batch` matrix):
      // the backward then reads it sequentially instead of one cold line per pair.
      output_.setZero(output_size(), x.cols());
      const auto nonzeros = static_cast<std::size_t>(active_.nonzeros());
      open_expert_.resize(nonzeros);
      internal::sparse_expert_forward<T>(active_, weight_.value, input, open_expert_.data());
      active_.for_each_open_matrix_order([&](Index i, Index b, Index k) {
        const auto flat = static_cast<std::size_t>(k);
        const T value = open_expert_[flat] + bias_.value(i, 0);
        open_expert_[flat] = value;
        output_(i, b) = h(i, b) * value;
      });
    }
    backward_ready_.remember(trained_);
    return output_;
  }

  /// dy: `units x batch` -> dL/dx: `in x batch` (expert share + gater share).
  const Matrix<T>& backward(const MatrixCRef<T>& dy, Context<T>& ctx) {
    backward_ready_.require(backward_what_);
    internal::check_shape(gradient_what_.c_str(), dy.rows(), dy.cols(), output_size(),
                          batch_);
    const Matrix<T>& h = *gate_;
    const bool fuse = block_ > 1 && fusable();  // before this backward's flags
    mark_written_columns(h);
    if (block_ > 1) {
      backward_blocks(h, dy, fuse);
    } else if (sparse_) {
      coefficients_.resize(static_cast<std::size_t>(active_.nonzeros()));
      // One pass over the open pairs gives dL/dH = h ⊙ dy and, when the expert ran sparse and the gate
      // takes it, dL/dh = dy ⊙ H (with a dense expert, gate_gradient() computes it).
      constexpr bool gate_gradient_wanted = Gater::needs_output_gradient;
      const bool gate_gradient_here = gate_gradient_wanted && !dense_expert_;
      if (gate_gradient_here) gate_gradient_.setZero(dy.rows(), dy.cols());
      // By example: dy and dL/dh are `units x batch`; each unit's bias sum still runs over b increasing.
      active_.for_each_open_matrix_order([&](Index i, Index b, Index k) {
        const auto flat = static_cast<std::size_t>(k);
        const T d = dy(i, b), c = h(i, b) * d;
        coefficients_[flat] = c;
        bias_.grad(i, 0) += c;
        if constexpr (gate_gradient_wanted)
          if (gate_gradient_here) gate_gradient_(i, b) = d * open_expert_[flat];
      });
      const Index stride = input_.rows();
      if (!input_gradient_needed_) {  // dW only: dL/dx is neither computed nor addressed
        input_gradient_.resize(0, 0);
        internal::sparse_expert_backward<T>(active_, coefficients_.data(), weight_.value, input_view(),
                                            weight_.grad, input_gradient_, false);
      } else if (stride == input_size()) {
        input_gradient_.setZero(input_size(), dy.cols());
        internal::sparse_expert_backward<T>(active_, coefficients_.data(), weight_.value, input_view(),
                                            weight_.grad, input_gradient_);
      } else {  // accumulate with the padded stride too, then copy out
        padded_gradient_.setZero(stride, dy.cols());
        internal::sparse_expert_backward<T>(active_, coefficients_.data(), weight_.value, input_view(),
                                            weight_.grad, padded_gradient_);
        input_gradient_ = padded_gradient_.topRows(input_size());
      }
    } else {
      expert_gradient_.noalias() = h.cwiseProduct(dy);
      internal::add_product(weight_.grad, input_view(), expert_gradient_.transpose());
      bias_.grad.col(0) += expert_gradient_.rowwise().sum();
      if (input_gradient_needed_) internal::product(input_gradient_, weight_.value, expert_gradient_);
      else input_gradient_.resize(0, 0);
    }
    // The gater learns (and updates its state) either way; its share of dL/dx is added only when needed.
    const Matrix<T>& gater_input_gradient = gater_.backward(gate_gradient(h, dy), ctx);
    if (input_gradient_needed_) input_gradient_ += gater_input_gradient;
    return input_gradient_;
  }

  /// false: backward computes neither the expert's share of dL/dx (W^T dH over the open pairs, or the
  /// dense product) nor, if the gater takes the option, the gater's; it returns an empty matrix. For a
  /// first layer, whose input is data (see layer.hpp). The parameter gradients are the same either way.
  void set_input_gradient(bool needed) {
    input_gradient_needed_ = needed;
    if constexpr (OptionalInputGradient<Gater>) gater_.set_input_gradient(needed);
  }
  bool input_gradient() const noexcept { return input_gradient_needed_; }

  ParameterList<T> parameters() {
    ParameterList<T> list = gater_.parameters();
    list.push_back(&weight_);
    list.push_back(&bias_);
    return list;
  }

  // ---- options ----
  ExpertPath path() const noexcept { return path_; }
  void set_path(ExpertPath path) noexcept { path_ = path; }
  /// Density (fraction of open gates) up to which ExpertPath::automatic takes the sparse path; 0.35 by
  /// default with unit gates (internal::kDefaultSparseCrossover, why: docs/performance-notes.md#sparse-crossover),
  /// 1 with block gates (internal::kDefaultBlockCrossover: docs/performance-notes.md#block-crossover).
  double crossover() const noexcept { return crossover_; }
  void set_crossover(double density) {
    if (!(density >= 0.0 && density <= 1.0))
      internal::fail(internal::where("GatedLayer", "set_crossover", name_) + ": density must be in [0, 1], got " +
                     std::to_string(density));
    crossover_ = density;
  }
  /// Opt-in for gates whose estimator sends a gradient into closed gates (straight-through): skip the
  /// closed experts in training anyway and send dL/dh = 0 there. This changes the estimator.
  bool skip_closed_gates_in_training() const noexcept { return skip_closed_; }
  void set_skip_closed_gates_in_training(bool skip) noexcept { skip_closed_ = skip; }

  /// How the sparse kernels list the open pairs: by default (nullopt) chosen for each batch
  /// (internal::plan_expert); fixing it is for tests and measurements.
  std::optional<ListLayout> list_layout() const noexcept { return layout_; }
  void set_list_layout(std::optional<ListLayout> layout) noexcept { layout_ = layout; }
  /// The order in which the sparse forward walks the lists: by default (nullopt) by leading examples
  /// where internal::plan_expert says so; fixing it is for tests and measurements. The forward's
  /// values do not depend on it.
  std::optional<VisitOrder> visit_order() const noexcept { return order_; }
  void set_visit_order(std::optional<VisitOrder> order) noexcept { order_ = order; }

  // ---- diagnostics of the last forward ----
  /// Fraction of open gates (h != 0) in the last batch.
  double density() const noexcept { return active_.density(); }
  /// Fraction of expert units open in at least one example of the last batch (the part of W it needed).
  double active_unit_fraction() const noexcept {
    return active_.units() == 0 ? 0.0
                                : static_cast<double>(active_.active_units()) / static_cast<double>(active_.units());
  }
  /// Whether the last batch took the sparse kernels (for the backward; see class comment for the forward).
  bool last_batch_sparse() const noexcept { return sparse_; }
  /// Whether the last forward's block kernels read only the non-zero inputs (block gates, sparse path).
  bool last_input_sparse() const noexcept { return sparse_input_; }
  /// Whether the last forward computed the expert for every gate (dense product).
  bool last_forward_dense() const noexcept { return dense_expert_; }

  Gater& gater() { return gater_; }
  const Gater& gater() const { return gater_; }
  /// Expert weights as stored: transposed, `in x units`, with unit gates (block() == 1); in the block layout,
  /// `(k in) x (units / k)`, with block gates (see the class comment).
  Parameter<T>& expert_weight() { return weight_; }
  const Parameter<T>& expert_weight() const { return weight_; }
  /// The expert's weights as a Linear's, `units x in`, whatever the storage (a copy).
  Matrix<T> dense_expert_weight() const { return stored_to_dense(weight_.value); }
  /// The expert's weight gradient as dense_expert_weight() lays the weights out (a copy).
  Matrix<T> dense_expert_weight_gradient() const { return stored_to_dense(weight_.grad); }
  /// Expert bias: `units x 1`.
  Parameter<T>& expert_bias() { return bias_; }
  const Parameter<T>& expert_bias() const { return bias_; }

 private:
  /// Flags the columns of W's gradient this backward writes (Parameter::written_columns): on the sparse path
  /// those of the units (blocks) open in at least one example, each a column of the stored W and a row of h.
  void mark_written_columns(const Matrix<T>& h) {
    if (weight_.written_columns.size() != static_cast<std::size_t>(h.rows())) return;  // not kept
    if (!sparse_) {
      weight_.all_columns_written = true;
      return;
    }
    for (Index i = 0; i < h.rows(); ++i)
      if (!weight_.written_columns[static_cast<std::size_t>(i)] && (h.row(i).array() != T(0)).any())
        weight_.written_columns[static_cast<std::size_t>(i)] = 1;
  }

  Matrix<T> stored_to_dense(const Matrix<T>& stored) const {
    if (block_ == 1) return stored.transpose();
    return internal::from_block_layout<T>(stored, block_);
  }

  /// The kept input, `in x batch` (stored with a possibly padded stride).
  Eigen::Map<const Matrix<T>, 0, Eigen::OuterStride<>> input_view() const {
    return {input_.data(), input_size(), input_.cols(), Eigen::OuterStride<>(input_.rows())};
  }

  /// The forward of block gates (block_ > 1): the block kernels at most `crossover_` open (block, example)
  /// pairs (internal::block_path_sparse), else the dense product and the block mask; with a gate that needs
  /// dL/dh at closed gates, training computes the dense expert, as for unit gates.
  void forward_blocks(const MatrixCRef<T>& x, const Matrix<T>& h) {
    sparse_ = internal::block_path_sparse(active_, path_, crossover_);
    if (sparse_) active_.build_lists<T>(h, ListLayout::by_unit, VisitOrder::natural);
    dense_expert_ = !sparse_ || (trained_ && closed_gates_get_gradient());
    if (trained_) input_ = x;  // kept for dW = dH x^T (unpadded: the block kernels gather its columns)
    sparse_input_ = false;
    if (!dense_expert_) {
      const auto limit = static_cast<Index>(internal::kSparseInputCrossover * static_cast<double>(x.size()));
      sparse_input_ = input_nonzeros_.build<T>(x, limit) <= limit;
    }
    if (dense_expert_) {
      internal::block_dense_forward<T>(block_, weight_.value, bias_.value.data(), x, expert_, block_scratch_);
      internal::block_mask_product<T>(h, block_, expert_, output_);
    } else {
      open_expert_.resize(static_cast<std::size_t>(active_.nonzeros() * block_));
      internal::block_expert_forward<T>(active_, block_, weight_.value, bias_.value.data(), x, h,
                                        open_expert_.data(), output_, block_scratch_,
                                        sparse_input_ ? &input_nonzeros_ : nullptr);
    }
  }

  /// The expert's backward for block gates: dH = h ⊙ dy over the open blocks (block kernels) or everywhere
  /// (dense path), then dW, db and the expert's share of dL/dx; dL/dh at the open pairs when the expert ran
  /// sparse and the gate takes it (gate_gradient() computes it from a dense expert).
  void backward_blocks(const Matrix<T>& h, const MatrixCRef<T>& dy, bool fuse) {
    const MatrixCRef<T> input(input_);
    if (fuse) internal::check_step_parameter(fused_step_what_.c_str(), weight_);
    const internal::FusedStep<T> step{&weight_, fuse ? *weight_.fused_rate * weight_.learning_rate_scale : T(0)};
    Index refused = -1;
    if (sparse_) {
      const bool gate_gradient_here = Gater::needs_output_gradient && !dense_expert_;
      if (gate_gradient_here) gate_gradient_.setZero(h.rows(), h.cols());
      if (input_gradient_needed_) input_gradient_.setZero(input_size(), dy.cols());
      else input_gradient_.resize(0, 0);
      refused = internal::block_expert_backward<T>(
          active_, block_, weight_.value, input, h, dy, gate_gradient_here ? open_expert_.data() : nullptr,
          weight_.grad, bias_.grad.data(), gate_gradient_here ? &gate_gradient_ : nullptr,
          input_gradient_needed_ ? &input_gradient_ : nullptr, block_scratch_,
          sparse_input_ ? &input_nonzeros_ : nullptr, fuse ? &step : nullptr);
    } else {
      internal::block_mask_product<T>(h, block_, dy, expert_gradient_);
      refused = internal::block_dense_backward<T>(block_, weight_.value, input, expert_gradient_, weight_.grad,
                                                  bias_.grad.data(), input_gradient_needed_ ? &input_gradient_ : nullptr,
                                                  block_scratch_, fuse ? &step : nullptr);
      if (!input_gradient_needed_) input_gradient_.resize(0, 0);
    }
    if (fuse) weight_.stepped = true;
    if (refused >= 0)
      internal::fail(fused_step_what_ + ": the update of block " + std::to_string(refused) +
                     " is not finite (NaN or Inf in its gradient, or a learning rate too large); that block is not "
                     "written, other blocks are stepped: reload a checkpoint before going on");
  }

  /// Whether this backward applies Sgd's step itself (Sgd::set_fused_steps; block gates only): where step()
  /// would apply the plain update with the gradient of this backward alone, i.e. no weight decay, and the
  /// gradient still zero since the last step (no column written, or written by a fused step only). Not after
  /// the layer's construction (all_columns_written: step() then moves every column, whatever was written).
  bool fusable() const {
    const Parameter<T>& w = weight_;
    return w.fused_rate && w.weight_decay == T(0) && internal::only_written_columns(w) &&
           (w.stepped || std::none_of(w.written_columns.begin(), w.written_columns.end(),
                                      [](std::uint8_t flag) { return flag != 0; }));
  }

  /// Whether closed gates receive dL/dh = dy ⊙ H (so H is needed at every gate in training).
  bool closed_gates_get_gradient() const noexcept {
    return Gater::needs_output_gradient && Gater::closed_gate_needs_gradient && !skip_closed_;
  }

  /// dL/dh for the gater: dy ⊙ H where the gate is open, and at closed gates too if the estimator
  /// needs it there; zeros (never computed) for a gate that ignores dL/dh.
  const Matrix<T>& gate_gradient(const Matrix<T>& h, const MatrixCRef<T>& dy) {
    if constexpr (!Gater::needs_output_gradient) {
      // Only ever holds zeros: written when the batch size changes.
      if (gate_gradient_.rows() != h.rows() || gate_gradient_.cols() != h.cols())
        gate_gradient_.setZero(h.rows(), h.cols());
    } else if (!dense_expert_) {
      // Already written by backward's pass over the open pairs (dy ⊙ H there, zeros elsewhere).
    } else if (block_ > 1) {  // sum over each block of dy ⊙ H
      internal::block_gate_gradient<T>(h, block_, dy, expert_, !closed_gates_get_gradient(), gate_gradient_);
    } else if (closed_gates_get_gradient()) {
      gate_gradient_.noalias() = dy.cwiseProduct(expert_);
    } else {
      gate_gradient_ = (h.array() != T(0)).select(dy.cwiseProduct(expert_), T(0));
    }
    return gate_gradient_;
  }

  Gater gater_;
  Parameter<T> weight_, bias_;
  // The messages' prefixes (internal::where), built once so that a checked call allocates nothing.
  std::string name_, forward_what_, input_what_, gater_output_what_, backward_what_, gradient_what_,
      fused_step_what_;
  internal::TrainingForward backward_ready_;
  Index block_ = 1;
  ExpertPath path_ = ExpertPath::automatic;
  double crossover_ = internal::kDefaultSparseCrossover;
  bool skip_closed_ = false;
  std::optional<ListLayout> layout_;
  std::optional<VisitOrder> order_;

  internal::ActiveSet active_;
  const Matrix<T>* gate_ = nullptr;
  Index batch_ = 0;
  bool trained_ = false, sparse_ = false, dense_expert_ = true;
  bool input_gradient_needed_ = true;
  std::vector<T> coefficients_, open_expert_;  // flat, in the order of active_'s lists
  Matrix<T> input_, expert_, output_, expert_gradient_, gate_gradient_, input_gradient_, padded_gradient_;
  internal::BlockScratch<T> block_scratch_;
  internal::NonzeroRows input_nonzeros_;  // of the last forward's input, when the block kernels skip its zeros
  bool sparse_input_ = false;
};

}  // namespace stoch
