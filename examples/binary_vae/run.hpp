// One training run of the binary VAE with one estimator: the estimators by name, their gates and schedules,
// the evaluation points (training ELBO and gradient variance), the final importance-weighted bounds.
#pragma once

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "vae.hpp"

namespace binary_vae {

/// The estimators, in the order of the default run (names as in issue 40's interface).
inline const std::vector<std::string>& estimator_names() {
  static const std::vector<std::string> names{"disarm",   "arm",       "rloo",   "reinforce",
                                              "straight-through", "gumbel-st", "gumbel", "slope-st",
                                              "double-cv"};
  return names;
}

/// What each name means, for the report.
inline std::string estimator_description(const std::string& name) {
  if (name == "reinforce") return "REINFORCE, 1 sample, the paper's minimum-variance baseline (SBN, Eq. 10)";
  if (name == "rloo") return "REINFORCE leave-one-out, 2 samples (Kool et al. 2019)";
  if (name == "double-cv")
    return "REINFORCE leave-one-out, 2 samples, with the Taylor control variate (Titsias & Shi 2022), adaptive alpha";
  if (name == "arm") return "ARM, 1 antithetic pair (Yin & Zhou 2019)";
  if (name == "disarm") return "DisARM, 1 antithetic pair (Dong et al. 2020)";
  if (name == "straight-through") return "straight-through, dL/da = dL/dh (the paper's Eq. 13)";
  if (name == "gumbel-st") return "Gumbel-sigmoid straight-through, tau = max(0.5, exp(-1e-5 t))";
  if (name == "gumbel") return "Gumbel-sigmoid relaxed (decoder sees y), tau = max(0.5, exp(-1e-5 t))";
  if (name == "slope-st") return "slope-annealed straight-through, m = min(5, 1 + 0.04 t / 1000)";
  return name;
}

struct RunOptions {
  std::uint64_t steps = 100000;      ///< the default budget (README: about an hour for all estimators)
  std::uint64_t eval_every = 10000;
  Index variance_repeats = 50;
  Index iw_samples = 100;
};

struct CurvePoint {
  std::uint64_t step = 0;
  double train_seconds = 0;  ///< training time up to this point (evaluations excluded)
  double train_elbo = 0;
  double grad_variance = 0;
};

struct RunResult {
  std::string estimator;
  ModelKind model = ModelKind::linear;
  std::uint64_t steps = 0;
  Index samples = 1;  ///< loss evaluations (decoder passes) per example and step
  double initial_train_elbo = 0;
  double train_elbo = 0;
  double valid_bound = 0;
  double test_bound = 0;
  double grad_variance = 0;
  double train_seconds = 0;
  double steps_per_second = 0;
  double multiply_adds_per_step = 0;
  std::vector<CurvePoint> curve;
};

/// Progress lines ("<estimator> step ...") go to `log`, which must be safe to call from several threads.
using Log = std::function<void(const std::string&)>;

template <class Gate>
RunResult run_with(const std::string& name, const Settings& settings, const Data& data, const RunOptions& options,
                   Gate gate, EstimatorShape shape, std::function<void(Gate&, std::uint64_t)> schedule,
                   const Log& log) {
  Vae<Gate> vae(settings, data, std::move(gate), shape, std::move(schedule));
  // Streams: the training draws, the evaluations' draws and the variance repeats each have their own, so
  // that evaluating more or less often leaves the training run unchanged.
  const std::uint64_t stream = stoch::fnv1a64(name) & 0xffffffffu;
  stoch::Generator train_rng(settings.seed, 1000 + 4 * stream), eval_rng(settings.seed, 1001 + 4 * stream),
      variance_rng(settings.seed, 1002 + 4 * stream);
  // The variance batch: the first E training images, binarised once, the same for every estimator.
  Matrix variance_x, scratch;
  {
    stoch::Generator rng(settings.seed, 7);
    std::vector<Index> first(static_cast<std::size_t>(settings.batch));
    for (Index j = 0; j < settings.batch; ++j) first[static_cast<std::size_t>(j)] = j;
    binarise(rng, *data.train, first, 0, settings.batch, scratch, variance_x);
  }

  RunResult result;
  result.estimator = name;
  result.model = settings.model;
  result.samples = shape.samples;
  result.multiply_adds_per_step = vae.multiply_adds_per_step();
  double train_seconds = 0;
  const auto evaluate = [&](std::uint64_t step) {
    CurvePoint point;
    point.step = step;
    point.train_seconds = train_seconds;
    point.train_elbo = vae.elbo(*data.train, eval_rng);
    point.grad_variance = vae.gradient_variance(variance_x, options.variance_repeats, variance_rng);
    result.curve.push_back(point);
    log(name + " step " + std::to_string(step) + ": train ELBO " + std::to_string(point.train_elbo) +
        ", encoder gradient variance " + std::to_string(point.grad_variance) + ", " +
        std::to_string(static_cast<int>(train_seconds)) + " s of training");
  };
  evaluate(0);
  for (std::uint64_t step = 1; step <= options.steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    const double loss = vae.train_step(train_rng);
    train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!std::isfinite(loss))
      throw std::runtime_error(name + ": the training loss is not finite at step " + std::to_string(step));
    if (step % options.eval_every == 0 || step == options.steps) evaluate(step);
  }
  result.steps = options.steps;
  result.initial_train_elbo = result.curve.front().train_elbo;
  result.train_elbo = result.curve.back().train_elbo;
  result.grad_variance = result.curve.back().grad_variance;
  result.train_seconds = train_seconds;
  result.steps_per_second = train_seconds > 0 ? static_cast<double>(options.steps) / train_seconds : 0;
  result.valid_bound = vae.bound(*data.valid, options.iw_samples, eval_rng);
  result.test_bound = vae.bound(*data.test, options.iw_samples, eval_rng);
  log(name + " done: train ELBO " + std::to_string(result.train_elbo) + ", " +
      std::to_string(options.iw_samples) + "-sample bound valid " + std::to_string(result.valid_bound) + ", test " +
      std::to_string(result.test_bound));
  return result;
}

/// Runs the estimator `name`; throws std::invalid_argument for an unknown name.
inline RunResult run_estimator(const std::string& name, const Settings& settings, const Data& data,
                               const RunOptions& options, const Log& log) {
  const Index units = settings.latent;
  if (name == "reinforce")
    return run_with<stoch::StochasticBinary<T>>(name, settings, data, options, stoch::StochasticBinary<T>(units),
                                                {1, false, false}, {}, log);
  if (name == "rloo")
    return run_with<stoch::ReinforceLoo<T>>(name, settings, data, options, stoch::ReinforceLoo<T>(units),
                                            {2, false, false}, {}, log);
  // Double CV reads dL/dh (pathwise wiring: 2 dL/dz, the prior, log q) next to the K losses.
  if (name == "double-cv")
    return run_with<stoch::DoubleCv<T>>(name, settings, data, options, stoch::DoubleCv<T>(units), {2, false, true},
                                        {}, log);
  if (name == "arm")
    return run_with<stoch::Arm<T>>(name, settings, data, options, stoch::Arm<T>(units), {2, true, false}, {}, log);
  if (name == "disarm")
    return run_with<stoch::DisArm<T>>(name, settings, data, options, stoch::DisArm<T>(units), {2, true, false}, {},
                                      log);
  if (name == "straight-through")
    return run_with<stoch::StraightThrough<T>>(name, settings, data, options, stoch::StraightThrough<T>(units),
                                               {1, false, true}, {}, log);
  // Jang et al. 2017's schedule: tau = max(0.5, exp(-r t)), r = 1e-5, updated every 500 steps.
  const auto temperature = stoch::Anneal<T>::exponential_decay(T(1), T(1e-5), T(0.5), 500);
  if (name == "gumbel-st")
    return run_with<stoch::GumbelSigmoidStraightThrough<T>>(
        name, settings, data, options, stoch::GumbelSigmoidStraightThrough<T>(units), {1, false, true},
        [temperature](auto& gate, std::uint64_t step) { gate.set_temperature(temperature(step)); }, log);
  if (name == "gumbel")
    return run_with<stoch::GumbelSigmoid<T>>(
        name, settings, data, options, stoch::GumbelSigmoid<T>(units), {1, false, true},
        [temperature](auto& gate, std::uint64_t step) { gate.set_temperature(temperature(step)); }, log);
  // Chung et al. 2017's schedule, m = min(5, 1 + 0.04 epoch), with an epoch of 1,000 steps (50,000 / 50).
  if (name == "slope-st") {
    const auto slope = stoch::Anneal<T>::linear_growth(T(1), T(0.04e-3), T(5), 1000);
    return run_with<stoch::SlopeAnnealedStraightThrough<T>>(
        name, settings, data, options, stoch::SlopeAnnealedStraightThrough<T>(units), {1, false, true},
        [slope](auto& gate, std::uint64_t step) { gate.set_slope(slope(step)); }, log);
  }
  throw std::invalid_argument("unknown estimator '" + name + "'");
}

}  // namespace binary_vae
