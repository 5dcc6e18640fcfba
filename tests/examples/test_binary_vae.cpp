// Tests for examples/binary_vae/vae.hpp, the binary VAE's wiring of the gates: on a VAE small enough to
// enumerate its latent vectors (5 pixels, 3 latent units, 2 examples), the mean of many encoder-gradient
// estimates of each unbiased gate equals the exact gradient of E_q[f] at 5 standard errors, where
//     d E_q[f] / d a = sum_b q(b | x) (b - sigm(a)) f(b)
// (the term E_q[d f / d a at fixed b] = -E_q[d log q / d a] is zero); and gradient_variance leaves the run as
// it found it (same next step, bit for bit); with the relaxed Gumbel-sigmoid gate and its noise held fixed,
// the gradients of the biases and the prior logits match central finite differences of the mean loss.
#include "../../examples/binary_vae/vae.hpp"

#include <cmath>

#include "support/catch.hpp"

using namespace binary_vae;

namespace {

constexpr Index kPixels = 5, kLatent = 3, kExamples = 2;

struct Fixture {
  Matrix images, x;
  Data data;
  Settings settings;

  Fixture() {
    stoch::Generator rng(11, 0);
    images.resize(kPixels, 6);
    stoch::fill_uniform<T>(rng, images);
    x.resize(kPixels, kExamples);
    stoch::fill_bernoulli<T>(rng, images.leftCols(kExamples), x);
    data.train = data.valid = data.test = &images;
    data.mean = images.rowwise().mean();
    settings.latent = kLatent;
    settings.batch = kExamples;
    settings.seed = 5;
  }
};

/// Calls visit(b, q) for each of the 2^kLatent binary latent vectors b (`kLatent x 1`) of example e, with
/// q = q(b | x_e) = prod_i p_i^b_i (1 - p_i)^(1 - b_i), p = sigm(a.col(e)) for the encoder's logits a.
template <class Visit>
void for_each_latent(const Matrix& a, Index e, Visit&& visit) {
  for (int code = 0; code < (1 << kLatent); ++code) {
    Matrix b(kLatent, 1);
    double q = 1;
    for (Index i = 0; i < kLatent; ++i) {
      b(i, 0) = T((code >> i) & 1);
      const double p = 1 / (1 + std::exp(-static_cast<double>(a(i, e))));
      q *= b(i, 0) > 0 ? p : 1 - p;
    }
    visit(b, q);
  }
}

/// The exact gradient of the mean over the examples of E_q[f] w.r.t. the encoder's output bias.
template <class Gate>
Eigen::VectorXd exact_bias_gradient(Vae<Gate>& vae, const Matrix& x) {
  const Matrix a = vae.logits(x);
  Eigen::VectorXd gradient = Eigen::VectorXd::Zero(kLatent);
  for (Index e = 0; e < kExamples; ++e)
    for_each_latent(a, e, [&](const Matrix& b, double q) {
      const double f = static_cast<double>(vae.losses(x.col(e), b)[0]);
      for (Index i = 0; i < kLatent; ++i) {
        const double p = 1 / (1 + std::exp(-static_cast<double>(a(i, e))));
        gradient[i] += q * (static_cast<double>(b(i, 0)) - p) * f / static_cast<double>(kExamples);
      }
    });
  return gradient;
}

template <class Gate>
void check_unbiased(Gate gate, EstimatorShape shape, int repeats = 40000) {
  Fixture fx;
  Vae<Gate> vae(fx.settings, fx.data, std::move(gate), shape);
  const Eigen::VectorXd exact = exact_bias_gradient(vae, fx.x);
  stoch::Generator rng(17, 3);
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(kLatent), squares = Eigen::VectorXd::Zero(kLatent);
  for (int r = 0; r < repeats; ++r) {
    vae.zero_grad();
    Context ctx(stoch::Mode::train, rng);
    vae.estimate(ctx, fx.x);
    const Eigen::VectorXd g = vae.encoder_logit_layer().bias().grad.col(0).template cast<double>();
    sum += g;
    squares += g.cwiseProduct(g);
  }
  const double n = repeats;
  const Eigen::VectorXd mean = sum / n;
  const Eigen::VectorXd se = ((squares / n - mean.cwiseProduct(mean)) / (n - 1)).cwiseSqrt();
  for (Index i = 0; i < kLatent; ++i) {
    INFO("unit " << i << ": mean " << mean[i] << ", exact " << exact[i] << ", standard error " << se[i]);
    CHECK(std::abs(exact[i]) > 0);
    CHECK(std::abs(mean[i] - exact[i]) <= 5 * se[i]);
  }
}

}  // namespace

TEST_CASE("binary VAE: the unbiased gates' encoder gradients match exact enumeration", "[binary_vae]") {
  SECTION("disarm") { check_unbiased(stoch::DisArm<T>(kLatent), {2, true, false}); }
  SECTION("arm") { check_unbiased(stoch::Arm<T>(kLatent), {2, true, false}); }
  SECTION("rloo") { check_unbiased(stoch::ReinforceLoo<T>(kLatent), {2, false, false}); }
  SECTION("reinforce") { check_unbiased(stoch::StochasticBinary<T>(kLatent), {1, false, false}); }
  SECTION("double-cv") { check_unbiased(stoch::DoubleCv<T>(kLatent), {2, false, true}); }
}

TEST_CASE("binary VAE: the importance-weighted bound tends to log p(x) computed from losses()", "[binary_vae]") {
  Fixture fx;
  Vae<stoch::DisArm<T>> vae(fx.settings, fx.data, stoch::DisArm<T>(kLatent), {2, true, false});
  // log p(x) = log sum_b p(x, b) >= the importance-weighted bound; enumerate p(x, b) = q(b | x) exp(-f(b)).
  const Matrix a = vae.logits(fx.x);
  double log_px = 0;
  for (Index e = 0; e < kExamples; ++e) {
    double px = 0;
    for_each_latent(a, e, [&](const Matrix& b, double q) {
      px += q * std::exp(-static_cast<double>(vae.losses(fx.x.col(e), b)[0]));
    });
    log_px += std::log(px) / kExamples;
  }
  // With many samples the bound tends to log p(x) (from below in expectation; one estimate of it may land
  // on either side); bound() re-binarises its images, so feed it images that are already binary. The
  // one-sample bound is the ELBO, below log p(x) by KL(q || p(b | x)) on average.
  stoch::Generator rng(23, 0);
  CHECK(vae.bound(fx.x, 4000, rng) == Approx(log_px).margin(0.03));
  double elbo = 0;
  for (int r = 0; r < 2000; ++r) elbo += vae.elbo(fx.x, rng) / 2000;
  CHECK(elbo < log_px);
}

TEST_CASE("binary VAE: gradient_variance leaves the run unchanged", "[binary_vae]") {
  Fixture fx;
  Vae<stoch::StochasticBinary<T>> measured(fx.settings, fx.data, stoch::StochasticBinary<T>(kLatent),
                                           {1, false, false});
  Vae<stoch::StochasticBinary<T>> plain(fx.settings, fx.data, stoch::StochasticBinary<T>(kLatent),
                                        {1, false, false});
  stoch::Generator rng_a(3, 1), rng_b(3, 1), variance_rng(4, 0);
  for (int step = 0; step < 5; ++step) {
    const double variance = measured.gradient_variance(fx.x, 10, variance_rng);
    CHECK(variance > 0);
    CHECK(measured.train_step(rng_a) == plain.train_step(rng_b));
  }
  const auto p = measured.parameters(), q = plain.parameters();
  REQUIRE(p.size() == q.size());
  for (std::size_t k = 0; k < p.size(); ++k) CHECK(p[k]->value == q[k]->value);
}

TEST_CASE("binary VAE: the pathwise wiring matches finite differences with the noise held fixed", "[binary_vae]") {
  // The relaxed Gumbel-sigmoid gate makes the mean loss a smooth function of every parameter once its noise is
  // fixed, so estimate()'s gradients are exact derivatives of it, except the encoder's, which leaves out the
  // direct term d log q(y | a) / d a = y - sigm(a) (zero mean for binary samples): added back here from the
  // same y, recomputed with a copy of the generator (the gate's draws are the only ones of a step).
  Fixture fx;
  const T tau = T(0.7);
  Vae<stoch::GumbelSigmoid<T>> vae(fx.settings, fx.data, stoch::GumbelSigmoid<T>(kLatent, {tau}), {1, false, true});
  const stoch::Generator noise(31, 0);
  const auto mean_loss = [&] {
    stoch::Generator rng = noise;
    Context ctx(stoch::Mode::train, rng);
    const double loss = vae.estimate(ctx, fx.x);
    vae.zero_grad();
    return loss;
  };
  vae.zero_grad();
  stoch::Generator rng = noise;
  Context ctx(stoch::Mode::train, rng);
  vae.estimate(ctx, fx.x);
  const auto params = vae.parameters();  // encoder W, b; decoder W, b; prior logits
  REQUIRE(params.size() == 5);
  std::vector<Matrix> analytic;
  for (auto* p : params) analytic.push_back(p->grad);

  const Matrix a = vae.logits(fx.x);
  stoch::GumbelSigmoid<T> twin(kLatent, {tau});
  stoch::Generator twin_rng = noise;
  Context twin_ctx(stoch::Mode::train, twin_rng);
  const Matrix y = twin.forward(a, twin_ctx);
  const Matrix direct = (y.array() - stoch::sigmoid(a.array())).matrix() / static_cast<T>(kExamples);
  analytic[1].col(0) += direct.rowwise().sum();

  const T eps = T(1e-2);
  for (std::size_t k : {std::size_t(1), std::size_t(3), std::size_t(4)}) {  // the biases and the prior logits
    for (Index i = 0; i < params[k]->value.size(); ++i) {
      T& v = params[k]->value.data()[i];
      const T saved = v;
      v = saved + eps;
      const double up = mean_loss();
      v = saved - eps;
      const double down = mean_loss();
      v = saved;
      const double numeric = (up - down) / (2 * static_cast<double>(eps));
      INFO(params[k]->name << "[" << i << "]: analytic " << analytic[k].data()[i] << ", numeric " << numeric);
      CHECK(std::abs(static_cast<double>(analytic[k].data()[i]) - numeric) < 1e-4);
    }
  }
}
