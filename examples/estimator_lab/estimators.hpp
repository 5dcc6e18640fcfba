// estimator_lab — every gradient estimator of the library for binary units, behind one interface: run it many
// times on a BinaryNetwork and measure its bias against the exact gradient, its variance, its cosine to the
// exact gradient and its cost.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "network.hpp"
#include "stoch/gates/arm.hpp"
#include "stoch/gates/double_cv.hpp"
#include "stoch/gates/gumbel_sigmoid.hpp"
#include "stoch/gates/reinforce_loo.hpp"
#include "stoch/gates/slope_annealed_straight_through.hpp"
#include "stoch/gates/stochastic_binary.hpp"
#include "stoch/gates/straight_through.hpp"

namespace lab {

/// The settings of the relaxed and annealed estimators, fixed for a run (the lab measures an estimator at
/// one point of its schedule).
struct EstimatorSettings {
  double temperature = 0.5;  ///< tau of gumbel and gumbel-st (the floor of Jang et al.'s schedule)
  double slope = 1.0;        ///< m of slope-st (its start in Chung et al.'s schedule)
  double average_rate = 0.01;  ///< the SBN moving averages' rate (StochasticBinaryOptions::average_rate)
};

/// What many estimates of one estimator on one network measured (every vector over the parameters).
struct Measurement {
  Index estimates = 0;
  Index warmup = 0;           ///< estimates run before the measured ones (the averaged baselines' start)
  Vector<double> mean, variance;  ///< per parameter: the mean of the estimates, the variance of one estimate
  double cosine = 0;          ///< mean over the estimates of cos(estimate, exact)
  /// Time of one estimate (forward, loss, backward; not the statistics): the median over blocks of kBlock
  /// consecutive estimates of the block's time / kBlock, so that a block in which the process was preempted
  /// (the machine is shared) does not count.
  double seconds_per_estimate = 0;
  static constexpr Index kBlock = 256;
};

/// One estimator: a gate of the library and the layout of its batch.
struct Estimator {
  std::string name;
  std::string gate;         ///< the library's gate and options
  bool unbiased = false;    ///< the theoretical property, not a measurement
  Index samples = 1;        ///< K: loss evaluations per example and estimate
  bool antithetic = false;  ///< antithetic pairs (ARM, DisARM)
  std::function<Measurement(BinaryNetwork&, Generator&, Index, const Vector<double>&)> run;
};

namespace detail {

/// `estimates` estimates after `warmup` unmeasured ones; Welford's running moments per parameter (the
/// estimates of a low-variance estimator are close to their mean, where sum-of-squares would cancel).
template <class Gate>
Measurement measure(Gate gate, BinaryNetwork& net, Generator& rng, Index samples, bool antithetic, Index warmup,
                    Index estimates, const Vector<double>& exact) {
  Measurement m;
  m.warmup = warmup;
  Vector<double> g;
  for (Index k = 0; k < warmup; ++k) net.estimate(gate, rng, samples, antithetic, g);
  const Index p = exact.size();
  m.mean = Vector<double>::Zero(p);
  Vector<double> m2 = Vector<double>::Zero(p), delta(p);
  const double exact_norm = exact.norm();
  double cosine_sum = 0;
  std::vector<double> block_seconds;
  std::chrono::steady_clock::duration busy{};
  Index in_block = 0;
  for (Index k = 0; k < estimates; ++k) {
    const auto start = std::chrono::steady_clock::now();
    net.estimate(gate, rng, samples, antithetic, g);
    busy += std::chrono::steady_clock::now() - start;
    if (++in_block == Measurement::kBlock || k + 1 == estimates) {
      block_seconds.push_back(std::chrono::duration<double>(busy).count() / static_cast<double>(in_block));
      busy = {};
      in_block = 0;
    }
    const double count = static_cast<double>(k + 1);
    delta = g - m.mean;
    m.mean += delta / count;
    m2.array() += delta.array() * (g - m.mean).array();
    const double norm = g.norm();
    cosine_sum += norm > 0 && exact_norm > 0 ? g.dot(exact) / (norm * exact_norm) : 0.0;
  }
  m.estimates = estimates;
  m.variance = estimates > 1 ? Vector<double>(m2 / static_cast<double>(estimates - 1)) : Vector<double>::Zero(p);
  m.cosine = estimates > 0 ? cosine_sum / static_cast<double>(estimates) : 0.0;
  if (!block_seconds.empty()) {
    const auto middle = block_seconds.begin() + static_cast<std::ptrdiff_t>(block_seconds.size() / 2);
    std::nth_element(block_seconds.begin(), middle, block_seconds.end());
    m.seconds_per_estimate = *middle;
  }
  return m;
}

}  // namespace detail

/// Every estimator of the library for binary units, in the order of the report. The names are the lab's
/// interface (results.json): reinforce, rloo, arm, disarm, straight-through, slope-st, gumbel-st, gumbel and
/// double-cv, and the variants reinforce-moving-average, reinforce-nobaseline (other baselines), rloo-4 and
/// double-cv-4 (K = 4).
inline std::vector<Estimator> all_estimators(const EstimatorSettings& s) {
  using namespace stoch;
  std::vector<Estimator> list;
  const auto add = [&list](std::string name, std::string gate, bool unbiased, Index samples, bool antithetic,
                           auto make_gate, Index warmup) {
    Estimator e{std::move(name), std::move(gate), unbiased, samples, antithetic, {}};
    e.run = [=](BinaryNetwork& net, Generator& rng, Index estimates, const Vector<double>& exact) {
      return detail::measure(make_gate(net.spec().units), net, rng, samples, antithetic, warmup, estimates, exact);
    };
    list.push_back(std::move(e));
  };
  // The averaged baselines start at 0 and reach their steady state after a few 1 / rate batches; the lab
  // measures the steady state. The baseline depends on earlier estimates only, so each one stays unbiased
  // (Corollary 1) and the warm-up changes the variance, not the mean.
  const auto warmup = static_cast<Index>(std::ceil(5.0 / s.average_rate));
  const double rate = s.average_rate;
  add("reinforce", "StochasticBinary, minimum-variance baseline (Eq. 10)", true, 1, false,
      [rate](Index n) {
        return StochasticBinary<double>(n, {.baseline = SbnBaseline::minimum_variance, .average_rate = rate});
      },
      warmup);
  add("reinforce-moving-average", "StochasticBinary, moving average of the loss as baseline", true, 1, false,
      [rate](Index n) {
        return StochasticBinary<double>(n, {.baseline = SbnBaseline::moving_average, .average_rate = rate});
      },
      warmup);
  add("reinforce-nobaseline", "StochasticBinary without a baseline (Theorem 1)", true, 1, false,
      [](Index n) { return StochasticBinary<double>(n, {.baseline = SbnBaseline::none}); }, 0);
  add("rloo", "ReinforceLoo, K = 2", true, 2, false, [](Index n) { return ReinforceLoo<double>(n); }, 0);
  add("rloo-4", "ReinforceLoo, K = 4", true, 4, false, [](Index n) { return ReinforceLoo<double>(n); }, 0);
  add("arm", "Arm (antithetic pair)", true, 2, true, [](Index n) { return Arm<double>(n); }, 0);
  add("disarm", "DisArm (antithetic pair)", true, 2, true, [](Index n) { return DisArm<double>(n); }, 0);
  add("straight-through", "StraightThrough, dL/da = dL/dh (Eq. 13)", false, 1, false,
      [](Index n) { return StraightThrough<double>(n); }, 0);
  add("slope-st", "SlopeAnnealedStraightThrough, slope m = " + std::to_string(s.slope), false, 1, false,
      [m = s.slope](Index n) { return SlopeAnnealedStraightThrough<double>(n, {.slope = m}); }, 0);
  add("gumbel-st", "GumbelSigmoidStraightThrough, temperature " + std::to_string(s.temperature), false, 1, false,
      [t = s.temperature](Index n) { return GumbelSigmoidStraightThrough<double>(n, {.temperature = t}); }, 0);
  add("gumbel", "GumbelSigmoid (relaxed), temperature " + std::to_string(s.temperature), false, 1, false,
      [t = s.temperature](Index n) { return GumbelSigmoid<double>(n, {.temperature = t}); }, 0);
  // Appended after the others: the generator stream of an estimator is its position in this list, so the
  // estimators above keep their numbers. The adaptive alpha is a ratio of moving averages at the SBN rate,
  // warmed up like the averaged baselines (it depends on earlier estimates only: each stays unbiased).
  add("double-cv", "DoubleCv, K = 2, adaptive alpha (Titsias & Shi 2022)", true, 2, false,
      [rate](Index n) { return DoubleCv<double>(n, {.average_rate = rate}); }, warmup);
  add("double-cv-4", "DoubleCv, K = 4, adaptive alpha (Titsias & Shi 2022)", true, 4, false,
      [rate](Index n) { return DoubleCv<double>(n, {.average_rate = rate}); }, warmup);
  return list;
}

/// The summary of a Measurement against the exact gradient (see README.md for the definitions).
struct Summary {
  double bias_se = 0;            ///< max over parameters of |mean - exact| / standard error of the mean
  double relative_bias = 0;      ///< ||mean - exact|| / ||exact||
  double relative_se = 0;        ///< ||standard error of the mean|| / ||exact||: the bias it can resolve
  double variance = 0;           ///< mean over parameters of the variance of one estimate
  double relative_variance = 0;  ///< sum over parameters of the variance / ||exact||^2 = E||g - E g||^2 / ||exact||^2
  double cosine = 0;             ///< mean over estimates of cos(estimate, exact)
  double cosine_of_mean = 0;     ///< cos(mean of the estimates, exact)
  double time_per_estimate_us = 0;
};

inline Summary summarize(const Measurement& m, const Vector<double>& exact) {
  Summary s;
  const double n = static_cast<double>(m.estimates);
  const Vector<double> se = (m.variance / n).cwiseSqrt();
  const Vector<double> error = m.mean - exact;
  for (Index k = 0; k < exact.size(); ++k) {
    // A parameter whose estimates never vary has se = 0: exact agreement is no bias, anything else infinite.
    const double z = se[k] > 0 ? std::abs(error[k]) / se[k] : (error[k] == 0 ? 0.0 : INFINITY);
    s.bias_se = std::max(s.bias_se, z);
  }
  const double norm = exact.norm();
  s.relative_bias = error.norm() / norm;
  s.relative_se = se.norm() / norm;
  s.variance = m.variance.mean();
  s.relative_variance = m.variance.sum() / (norm * norm);
  s.cosine = m.cosine;
  s.cosine_of_mean = m.mean.dot(exact) / (m.mean.norm() * norm);
  s.time_per_estimate_us = 1e6 * m.seconds_per_estimate;
  return s;
}

}  // namespace lab
