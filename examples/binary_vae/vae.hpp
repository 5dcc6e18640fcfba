// The binary VAE of the DisARM paper's MNIST benchmark (Dong, Mnih & Tucker 2020, Sec. 6.2; the protocol of
// their public code, google-research disarm/binary): 200 Bernoulli latent units b with a factorised prior of
// learned logits c, an encoder q(b | x) = Bernoulli(sigm(a(x))) and a decoder p(x | b) = Bernoulli(sigm(l(b))),
// trained on the ELBO
//     ELBO(x) = E_q[ log p(x | b) + log p(b) - log q(b | x) ]
// with any of the library's binary gates as the estimator of the encoder's gradient. The per-example loss
// every gate learns from is f(b) = -(log p(x | b) + log p(b) - log q(b | x)), written into ctx.example_loss.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "stoch/stoch.hpp"

namespace binary_vae {

using T = float;
using stoch::Index;
using Matrix = stoch::Matrix<T>;
using MatrixCRef = stoch::MatrixCRef<T>;
using RowVector = stoch::RowVector<T>;
using Vector = stoch::Vector<T>;
using Context = stoch::Context<T>;
using ParameterList = stoch::ParameterList<T>;

enum class ModelKind { linear, nonlinear };

inline const char* model_name(ModelKind kind) { return kind == ModelKind::linear ? "linear" : "nonlinear"; }

/// Linear layers with a LeakyRectifier between consecutive ones (none after the last): the reference code's
/// BinaryNetwork (LeakyReLU(0.3) on hidden layers, a linear output).
class Mlp {
 public:
  Mlp(const std::vector<Index>& sizes, T slope, stoch::Generator& rng, const std::string& name) {
    const std::size_t layers = sizes.size() - 1;
    linears_.reserve(layers);
    activations_.reserve(layers);
    for (std::size_t k = 0; k < layers; ++k) {
      linears_.emplace_back(sizes[k], sizes[k + 1], rng, name + "." + std::to_string(k));
      if (k + 1 < layers) activations_.emplace_back(sizes[k + 1], stoch::LeakyRectifierOptions<T>{slope});
    }
  }

  /// false: the first Linear skips dL/dx (its input is data, or a score-function gate ignores it).
  void set_input_gradient(bool needed) { linears_.front().set_input_gradient(needed); }

  const Matrix& forward(const MatrixCRef& x, Context& ctx) {
    const Matrix* h = &linears_[0].forward(x, ctx);
    for (std::size_t k = 1; k < linears_.size(); ++k) {
      h = &activations_[k - 1].forward(*h, ctx);
      h = &linears_[k].forward(*h, ctx);
    }
    return *h;
  }

  const Matrix& backward(const MatrixCRef& dy, Context& ctx) {
    const Matrix* g = &linears_.back().backward(dy, ctx);
    for (std::size_t k = linears_.size() - 1; k-- > 0;) {
      g = &activations_[k].backward(*g, ctx);
      g = &linears_[k].backward(*g, ctx);
    }
    return *g;
  }

  ParameterList parameters() {
    ParameterList list;
    for (auto& linear : linears_)
      for (auto* p : linear.parameters()) list.push_back(p);
    return list;
  }

  stoch::Linear<T>& first() { return linears_.front(); }
  stoch::Linear<T>& last() { return linears_.back(); }

  /// Multiply-adds of the Linear products for `columns` columns: forward, and backward (dW, and dX of every
  /// layer but the first unless `input_gradient`).
  double forward_multiply_adds(Index columns) const { return static_cast<double>(columns) * weights(); }
  double backward_multiply_adds(Index columns, bool input_gradient) const {
    double first = static_cast<double>(linears_.front().input_size() * linears_.front().output_size());
    return static_cast<double>(columns) * (2 * weights() - (input_gradient ? 0.0 : first));
  }

 private:
  double weights() const {
    double sum = 0;
    for (const auto& linear : linears_) sum += static_cast<double>(linear.input_size() * linear.output_size());
    return sum;
  }

  std::vector<stoch::Linear<T>> linears_;
  std::vector<stoch::LeakyRectifier<T>> activations_;
};

/// What the run needs of the data: the training images (pixel probabilities in [0, 1], re-binarised every
/// time an image is drawn) and their mean.
struct Data {
  const Matrix* train = nullptr;
  const Matrix* valid = nullptr;
  const Matrix* test = nullptr;
  Vector mean;  ///< mean pixel probability of the training images (the expectation of a binarised pass)
};

/// x = 1[u < pixel] for the columns `order[first .. first + count)` of `images`.
inline void binarise(stoch::Generator& rng, const Matrix& images, const std::vector<Index>& order, Index first,
                     Index count, Matrix& probabilities, Matrix& x) {
  probabilities.resize(images.rows(), count);
  for (Index j = 0; j < count; ++j) probabilities.col(j) = images.col(order[static_cast<std::size_t>(first + j)]);
  x.resize(images.rows(), count);
  stoch::fill_bernoulli<T>(rng, probabilities, x);
}

struct Settings {
  ModelKind model = ModelKind::linear;
  Index latent = 200;
  Index hidden = 200;  ///< width of the non-linear model's two hidden layers
  Index batch = 50;
  T learning_rate = T(1e-4);        ///< Adam, encoder and decoder (the reference's genmo_lr, infnet_lr)
  T prior_learning_rate = T(1e-2);  ///< SGD on the prior logits (the reference's prior_lr)
  T leaky_slope = T(0.3);
  std::uint64_t seed = 1;
};

/// How an estimator uses the multi-sample layout and whether its gate reads dL/dh (pathwise) or only the
/// per-example loss (score function).
struct EstimatorShape {
  Index samples = 1;
  bool antithetic = false;
  bool pathwise = false;
};

/// The VAE trained with gate type `Gate` (one of the library's binary gates).
template <class Gate>
class Vae {
 public:
  Vae(const Settings& settings, const Data& data, Gate gate, EstimatorShape shape,
      std::function<void(Gate&, std::uint64_t)> schedule = {})
      : settings_(settings), data_(data), shape_(shape), init_rng_(settings.seed, 1),
        encoder_(encoder_sizes(settings, data.train->rows()), settings.leaky_slope, init_rng_, "encoder"),
        decoder_(decoder_sizes(settings, data.train->rows()), settings.leaky_slope, init_rng_, "decoder"),
        prior_(settings.latent, "prior"), gate_(std::move(gate)), loss_(data.train->rows()),
        schedule_(std::move(schedule)) {
    // Decoder output bias: the logit of the clipped training mean (the reference's initialize_with_bias).
    auto& bias = decoder_.last().bias().value;
    for (Index i = 0; i < bias.rows(); ++i)
      bias(i, 0) = stoch::logit(std::clamp(data.mean[i], T(0.001), T(0.999)));
    encoder_.set_input_gradient(false);
    // A score-function gate ignores dL/dh, so the decoder's dL/dz is never read.
    decoder_.set_input_gradient(shape.pathwise);
    ParameterList networks = encoder_.parameters();
    for (auto* p : decoder_.parameters()) networks.push_back(p);
    adam_.emplace(networks, stoch::AdamOptions<T>{settings.learning_rate});
    prior_sgd_.emplace(prior_.parameters(), stoch::SgdOptions<T>{settings.prior_learning_rate});
    const auto n = data.train->cols();
    order_.resize(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) order_[static_cast<std::size_t>(j)] = j;
  }

  /// One training step on the next batch: estimate, then update. Returns the batch's mean -ELBO estimate.
  double train_step(stoch::Generator& rng) {
    if (schedule_) schedule_(gate_, step_);
    next_batch(rng);
    Context ctx(stoch::Mode::train, rng);
    const double loss = estimate(ctx, batch_x_);
    adam_->step();
    prior_sgd_->step();
    ++step_;
    return loss;
  }

  /// Forward and backward at the current parameters on the binary batch `x` (784 x E): fills the parameters'
  /// gradients (accumulating), returns the mean over the K E columns of f = -ELBO.
  ///   a = encoder(x - mean)                          (E columns: the encoder runs once per batch)
  ///   h = gate(tile(a, K))                           (K E columns: K samples, antithetic pairs for K = 2)
  ///   logits = decoder(2 h - 1)                      (the reference's decoder input centring)
  ///   f = -log p(x | h) - log p(h) + log q(h | x)    (ctx.example_loss, one value per column)
  /// Backward: the decoder and the prior from the mean of f; the gate from f (score function) or from dL/dh
  /// (pathwise: through the decoder, the prior and log q's dependence on h); dL/da summed over the K samples.
  /// The term d log q / d a at fixed h, whose expectation is zero, is left out, as in the reference code.
  double estimate(Context& ctx, const Matrix& x) {
    const Index examples = x.cols(), k = shape_.samples, columns = examples * k;
    ctx.set_samples(k, shape_.antithetic);
    centred_ = x;
    centred_.colwise() -= data_.mean;
    const Matrix& a = encoder_.forward(centred_, ctx);
    stoch::tile_samples(a, k, a_tiled_);
    const Matrix& h = gate_.forward(a_tiled_, ctx);
    const RowVector& log_prior = decode(a_tiled_, h, x, k, ctx, z_, x_tiled_);
    ctx.example_loss.array() += log_q_.array() - log_prior.array();
    const double mean_loss = static_cast<double>(ctx.example_loss.template cast<double>().mean());

    const T share = T(1) / static_cast<T>(columns);
    const Matrix& dz = decoder_.backward(loss_.backward(), ctx);
    weight_.setConstant(columns, -share);
    const Matrix& dh_prior = prior_.backward(weight_);
    if (shape_.pathwise) {
      dh_.resize(h.rows(), h.cols());
      dh_.array() = T(2) * dz.array() + dh_prior.array() + share * a_tiled_.array();
    } else {
      dh_.resize(0, 0);
    }
    const Matrix& da_tiled = gate_.backward(dh_, ctx);
    da_ = da_tiled.leftCols(examples);
    for (Index s = 1; s < k; ++s) da_ += da_tiled.middleCols(s * examples, examples);
    encoder_.backward(da_, ctx);
    return mean_loss;
  }

  /// Decodes the codes `b` (`latent x K E`, drawn from the logits `a` of the same shape) against the images `x`
  /// (`pixels x E`, tiled K = `k` times into `x_tiled`; `z` holds the decoder input 2 b - 1): writes
  /// -log p(x | b) into ctx.example_loss and log q(b | x) into log_q_, and returns log p(b) per column. Shared by
  /// the training estimate and the bounds.
  const RowVector& decode(const Matrix& a, const Matrix& b, const Matrix& x, Index k, Context& ctx, Matrix& z,
                          Matrix& x_tiled) {
    z.resize(b.rows(), b.cols());
    z.array() = T(2) * b.array() - T(1);
    const Matrix& logits = decoder_.forward(z, ctx);
    stoch::tile_samples(x, k, x_tiled);
    loss_.forward(logits, x_tiled, ctx);
    const RowVector& log_prior = prior_.forward(b, ctx);
    stoch::bernoulli_log_probability<T>(a, b, log_q_, scratch_);
    return log_prior;
  }

  /// Single-sample ELBO, averaged over the columns of `images` (each binarised once, one b per image), in
  /// evaluation of the deterministic layers and sampling b ~ Bernoulli(sigm(a)) whatever the gate.
  double elbo(const Matrix& images, stoch::Generator& rng) { return bound(images, 1, rng); }

  /// The `samples`-sample importance-weighted bound log (1/S) sum_s p(x, b_s) / q(b_s | x), averaged over the
  /// images (S = 1: the ELBO).
  double bound(const Matrix& images, Index samples, stoch::Generator& rng) {
    Context ctx(stoch::Mode::eval, rng);
    const Index n = images.cols();
    const Index chunk = std::max<Index>(1, 2000 / samples);
    double total = 0;
    std::vector<Index> identity(static_cast<std::size_t>(n));
    for (Index j = 0; j < n; ++j) identity[static_cast<std::size_t>(j)] = j;
    for (Index first = 0; first < n; first += chunk) {
      const Index count = std::min(chunk, n - first);
      binarise(rng, images, identity, first, count, eval_probabilities_, eval_x_);
      eval_centred_ = eval_x_;
      eval_centred_.colwise() -= data_.mean;
      const Matrix& a = encoder_.forward(eval_centred_, ctx);
      stoch::tile_samples(a, samples, eval_a_);
      eval_p_.resize(eval_a_.rows(), eval_a_.cols());
      eval_p_.array() = stoch::sigmoid(eval_a_.array());
      eval_b_.resize(eval_a_.rows(), eval_a_.cols());
      stoch::fill_bernoulli<T>(rng, eval_p_, eval_b_);
      const RowVector& log_prior = decode(eval_a_, eval_b_, eval_x_, samples, ctx, eval_z_, eval_x_tiled_);
      for (Index e = 0; e < count; ++e) {
        // log-mean-exp over the samples of example e, in double.
        double best = -std::numeric_limits<double>::infinity();
        for (Index s = 0; s < samples; ++s) best = std::max(best, log_weight(ctx, log_prior, s * count + e));
        double sum = 0;
        for (Index s = 0; s < samples; ++s) sum += std::exp(log_weight(ctx, log_prior, s * count + e) - best);
        total += best + std::log(sum / static_cast<double>(samples));
      }
    }
    return total / static_cast<double>(n);
  }

  /// The variance of the encoder's gradient estimate: `repeats` estimates at the current parameters on the
  /// binary batch `x`, each the gradient of the encoder's logit layer (the last Linear: W and b), the
  /// per-coordinate variance over the repeats averaged over the coordinates. Leaves the parameters, their
  /// gradients and the gate's state (e.g. SBN's baselines) as it found them.
  double gradient_variance(const Matrix& x, Index repeats, stoch::Generator& rng) {
    std::vector<stoch::Parameter<T>*> state = gate_.parameters();
    std::vector<Matrix> saved;
    for (auto* p : state) saved.push_back(p->value);
    auto& w = encoder_.last().weight();
    auto& b = encoder_.last().bias();
    const Index size = w.value.size() + b.value.size();
    Eigen::VectorXd sum = Eigen::VectorXd::Zero(size), squares = Eigen::VectorXd::Zero(size);
    for (Index r = 0; r < repeats; ++r) {
      adam_->zero_grad();
      prior_sgd_->zero_grad();
      Context ctx(stoch::Mode::train, rng);
      estimate(ctx, x);
      Eigen::VectorXd g(size);
      g.head(w.grad.size()) = Eigen::Map<const Vector>(w.grad.data(), w.grad.size()).cast<double>();
      g.tail(b.grad.size()) = Eigen::Map<const Vector>(b.grad.data(), b.grad.size()).cast<double>();
      sum += g;
      squares += g.cwiseProduct(g);
    }
    adam_->zero_grad();
    prior_sgd_->zero_grad();
    for (std::size_t i = 0; i < state.size(); ++i) state[i]->value = saved[i];
    const double m = static_cast<double>(repeats);
    const Eigen::VectorXd variance = (squares - sum.cwiseProduct(sum) / m) / (m - 1);
    return variance.mean();
  }

  /// Multiply-adds of the Linear products in one training step (the bound the step's cost is measured
  /// against): the encoder on E columns, the decoder on K E.
  double multiply_adds_per_step() const {
    const Index e = settings_.batch, columns = e * shape_.samples;
    return encoder_.forward_multiply_adds(e) + encoder_.backward_multiply_adds(e, false) +
           decoder_.forward_multiply_adds(columns) + decoder_.backward_multiply_adds(columns, shape_.pathwise);
  }

  /// The encoder's logits a for the binary batch `x` (evaluation: deterministic layers only).
  const Matrix& logits(const Matrix& x) {
    Context ctx(stoch::Mode::eval);
    centred_ = x;
    centred_.colwise() -= data_.mean;
    return encoder_.forward(centred_, ctx);
  }

  /// f(b) = -log p(x | b) - log p(b) + log q(b | x) for each column of the binary batch `x` and latent
  /// vectors `b` (same number of columns): the loss every gate learns from, for exact enumeration in tests.
  RowVector losses(const Matrix& x, const Matrix& b) {
    Context ctx(stoch::Mode::eval);
    const Matrix a = logits(x);
    eval_z_.resize(b.rows(), b.cols());
    eval_z_.array() = T(2) * b.array() - T(1);
    loss_.forward(decoder_.forward(eval_z_, ctx), x, ctx);
    const RowVector& log_prior = prior_.forward(b, ctx);
    stoch::bernoulli_log_probability<T>(a, b, log_q_, scratch_);
    return ctx.example_loss + log_q_ - log_prior;
  }

  /// Clears every parameter's gradient (estimate() accumulates).
  void zero_grad() {
    adam_->zero_grad();
    prior_sgd_->zero_grad();
  }

  /// The encoder's logit layer (its gradient is what gradient_variance measures).
  stoch::Linear<T>& encoder_logit_layer() { return encoder_.last(); }

  ParameterList parameters() {
    ParameterList list = encoder_.parameters();
    for (auto* p : decoder_.parameters()) list.push_back(p);
    for (auto* p : prior_.parameters()) list.push_back(p);
    return list;
  }

  std::uint64_t step() const { return step_; }
  const EstimatorShape& shape() const { return shape_; }

 private:
  static std::vector<Index> encoder_sizes(const Settings& s, Index pixels) {
    if (s.model == ModelKind::linear) return {pixels, s.latent};
    return {pixels, s.hidden, s.hidden, s.latent};
  }
  static std::vector<Index> decoder_sizes(const Settings& s, Index pixels) {
    if (s.model == ModelKind::linear) return {s.latent, pixels};
    return {s.latent, s.hidden, s.hidden, pixels};
  }

  double log_weight(const Context& ctx, const RowVector& log_prior, Index column) const {
    return -static_cast<double>(ctx.example_loss[column]) + static_cast<double>(log_prior[column]) -
           static_cast<double>(log_q_[column]);
  }

  /// The next E images of the epoch's order (reshuffled at each epoch), re-binarised.
  void next_batch(stoch::Generator& rng) {
    const Index n = data_.train->cols(), e = settings_.batch;
    if (cursor_ == 0 || cursor_ + e > n) {
      for (std::size_t i = order_.size() - 1; i > 0; --i) {
        const auto j = static_cast<std::size_t>((static_cast<std::uint64_t>(rng.next()) * (i + 1)) >> 32);
        std::swap(order_[i], order_[j]);
      }
      cursor_ = 0;
    }
    binarise(rng, *data_.train, order_, cursor_, e, batch_probabilities_, batch_x_);
    cursor_ += e;
  }

  Settings settings_;
  Data data_;
  EstimatorShape shape_;
  stoch::Generator init_rng_;
  Mlp encoder_, decoder_;
  stoch::BernoulliPrior<T> prior_;
  Gate gate_;
  stoch::BernoulliLogLikelihood<T> loss_;
  std::function<void(Gate&, std::uint64_t)> schedule_;
  std::optional<stoch::Adam<T>> adam_;
  std::optional<stoch::Sgd<T>> prior_sgd_;
  std::vector<Index> order_;
  Index cursor_ = 0;
  std::uint64_t step_ = 0;
  Matrix batch_probabilities_, batch_x_, centred_, a_tiled_, z_, x_tiled_, scratch_, dh_, da_;
  Matrix eval_probabilities_, eval_x_, eval_centred_, eval_a_, eval_p_, eval_b_, eval_z_, eval_x_tiled_;
  RowVector log_q_, weight_;
};

}  // namespace binary_vae
