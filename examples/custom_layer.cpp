// custom_layer: how to write a layer of your own, use it with the library's layers, and check its backward.
//
// A stoch layer is any class that meets the contract written down in include/stoch/layers/layer.hpp and
// checked by the concept stoch::Layer: no base class, no virtual functions. Activations are
// `features x batch` matrices (one example per column). The layer below is a per-feature scale and shift,
//     y_ib = gamma_i * x_ib + beta_i,
// with two parameters, gamma and beta (`features x 1`). The program builds a small network around it, checks
// its gradients against central finite differences and exits with 1 if they disagree.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <stoch/stoch.hpp>

template <class T>
class ScaleShift {
 public:
  using Scalar = T;  // float or double: every layer of a network shares it

  // Parameters are stoch::Parameter: a name (for saving and loading), a value, and a gradient that backward
  // accumulates into and the optimiser clears.
  explicit ScaleShift(stoch::Index features, std::string name = "scale_shift")
      : name_(std::move(name)), gamma_(name_ + ".gamma", features, 1), beta_(name_ + ".beta", features, 1) {
    gamma_.value.setOnes();  // starts as the identity
  }

  stoch::Index input_size() const { return gamma_.value.rows(); }
  stoch::Index output_size() const { return gamma_.value.rows(); }

  // forward: check the input's shape (a clear stoch::Error naming the layer), compute into a buffer the layer
  // owns (no allocation once the batch size is steady) and, in training mode, keep what backward needs.
  // A stochastic layer would draw its noise from ctx.generator() here, in Mode::train only.
  const stoch::Matrix<T>& forward(const stoch::MatrixCRef<T>& x, stoch::Context<T>& ctx) {
    if (x.rows() != input_size() || x.cols() < 1)
      throw stoch::Error(name_ + ": forward expects " + std::to_string(input_size()) + " x batch, got " +
                         std::to_string(x.rows()) + " x " + std::to_string(x.cols()));
    y_ = (x.array().colwise() * gamma_.value.col(0).array()).colwise() + beta_.value.col(0).array();
    trained_ = ctx.training();
    if (trained_) x_ = x;
    return y_;
  }

  // backward: dy = dL/dy, `features x batch`. ASSIGN dL/dx to the layer's buffer and return it; ACCUMULATE
  // (+=) every parameter's gradient, so that a parameter shared by two paths gets the sum.
  //   dL/dx_ib = gamma_i dy_ib,   dL/dgamma_i = sum_b dy_ib x_ib,   dL/dbeta_i = sum_b dy_ib.
  const stoch::Matrix<T>& backward(const stoch::MatrixCRef<T>& dy, stoch::Context<T>&) {
    if (!trained_) throw stoch::Error(name_ + ": backward needs a training forward first (call forward first)");
    if (dy.rows() != x_.rows() || dy.cols() != x_.cols())
      throw stoch::Error(name_ + ": backward expects dy of the forward's shape " + std::to_string(x_.rows()) +
                         " x " + std::to_string(x_.cols()));
    dx_ = dy.array().colwise() * gamma_.value.col(0).array();
    gamma_.grad += (dy.array() * x_.array()).rowwise().sum().matrix();
    beta_.grad += dy.rowwise().sum();
    return dx_;
  }

  // parameters: pointers to everything the optimiser updates and a saved model keeps, in a fixed order.
  stoch::ParameterList<T> parameters() { return {&gamma_, &beta_}; }

 private:
  std::string name_;
  stoch::Parameter<T> gamma_, beta_;
  stoch::Matrix<T> x_, y_, dx_;
  bool trained_ = false;
};

// The compiler checks the contract: a missing or mistyped member fails here, with the concept's message,
// instead of deep inside Sequential.
static_assert(stoch::Layer<ScaleShift<float>>);
static_assert(stoch::Layer<ScaleShift<double>>);

int main() {
  // A small classifier, 5 -> 8 -> 3, with the user's layer between a Linear and a Tanh. Double precision, so
  // that the finite differences below are accurate to about 1e-10.
  stoch::Generator rng(7);
  auto model = stoch::Sequential(stoch::Linear<double>(5, 8, rng, "hidden"), ScaleShift<double>(8),
                                 stoch::Tanh<double>(8), stoch::Linear<double>(8, 3, rng, "output"));
  // Move gamma and beta away from 1 and 0, so that the check exercises every term of the backward.
  for (stoch::Parameter<double>* p : model.get<1>().parameters()) p->value.setRandom();
  stoch::SoftmaxCrossEntropy<double> loss(3);
  const stoch::Matrix<double> x = stoch::Matrix<double>::Random(5, 4);
  const std::vector<int> labels = {0, 2, 1, 2};
  stoch::Context<double> ctx(stoch::Mode::train, rng);
  auto loss_value = [&] { return loss.forward(model.forward(x, ctx), labels, ctx); };

  // The analytic gradients: one forward, one backward (they accumulate into the zeroed Parameter::grad).
  loss_value();
  model.backward(loss.backward(), ctx);

  // Central differences, (L(w + e) - L(w - e)) / 2e, for every entry of every parameter of the model. The
  // "hidden" layer's gradient depends on ScaleShift's dL/dx, so this checks all three formulas of backward.
  const double step = 1e-5, tolerance = 1e-7;
  double worst = 0;
  stoch::Index entries = 0;
  for (stoch::Parameter<double>* p : model.parameters()) {
    for (stoch::Index k = 0; k < p->value.size(); ++k) {
      double& w = p->value.data()[k];
      const double saved = w;
      w = saved + step;
      const double up = loss_value();
      w = saved - step;
      const double down = loss_value();
      w = saved;
      const double numeric = (up - down) / (2 * step), analytic = p->grad.data()[k];
      const double error = std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric));
      worst = std::max(worst, error);
      ++entries;
      if (error > tolerance)
        std::printf("%s[%ld]: backward %.10f, finite differences %.10f\n", p->name.c_str(), static_cast<long>(k),
                    analytic, numeric);
    }
  }
  if (worst > tolerance) {
    std::printf("gradient check FAILED: largest relative error %.2e > %.0e\n", worst, tolerance);
    return 1;
  }
  std::printf("gradient check passed: largest relative error %.2e over %ld weights\n", worst,
              static_cast<long>(entries));

  // Training with the library's optimiser works as with any built-in layer.
  for (stoch::Parameter<double>* p : model.parameters()) p->grad.setZero();  // drop the check's gradients
  stoch::Sgd<double> sgd(model.parameters(), {.learning_rate = 0.5, .momentum = 0.0});
  const double first = loss_value();
  double last = first;
  for (int step_count = 0; step_count < 50; ++step_count) {
    last = loss_value();
    model.backward(loss.backward(), ctx);
    sgd.step();  // updates, then clears the gradients
  }
  std::printf("training loss %.4f -> %.4f after 50 steps\n", first, last);
  return 0;
}
