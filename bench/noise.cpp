// Noise throughput: BM_Noise/<distribution>/<generator> fills a 2000 x 32 float matrix per iteration (one
// stochastic layer of the paper's network, batch 32), with stoch's samplers (`stoch`) and with
// std::mt19937 + the standard distribution (`mt19937`, the baseline; logistic has no std distribution, so
// its baseline is std::uniform_real_distribution and log(u / (1 - u)); Beta's is X / (X + Y) with two
// std::gamma_distribution). Items per second = samples per second. Single-threaded.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>

#include "stoch/core/distributions.hpp"
#include "stoch/core/random.hpp"

namespace {

constexpr stoch::Index kUnits = 2000, kBatch = 32;
constexpr float kBetaAlpha = 5.3f, kBetaBeta = 40.1f;  // the STS gate's Beta noise (App. A.2)

/// Per-element Bernoulli probabilities, as a gate's sigm(a) would give.
const stoch::Matrix<float>& probabilities() {
  static const stoch::Matrix<float> p = [] {
    stoch::Generator rng(99);
    stoch::Matrix<float> m(kUnits, kBatch);
    stoch::fill_uniform<float>(rng, m);
    return m;
  }();
  return p;
}

template <class Fill>
void run(benchmark::State& state, Fill fill) {
  stoch::Matrix<float> out(kUnits, kBatch);
  for (auto _ : state) {
    fill(out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * out.size());
  state.counters["threads"] = 1;
}

template <class Distribution>
void fill_std(std::mt19937& engine, Distribution& dist, stoch::Matrix<float>& out) {
  float* data = out.data();
  for (stoch::Index i = 0; i < out.size(); ++i) data[i] = dist(engine);
}

void register_all() {
  using stoch::Matrix;
  auto add = [](const std::string& name, auto fill) {
    benchmark::RegisterBenchmark(("BM_Noise/" + name).c_str(), [fill](benchmark::State& s) { run(s, fill); });
  };

  stoch::Generator rng(1);
  std::mt19937 engine(1);

  add("uniform/stoch", [rng](Matrix<float>& out) mutable { stoch::fill_uniform<float>(rng, out); });
  add("uniform/mt19937", [engine](Matrix<float>& out) mutable {
    std::uniform_real_distribution<float> dist(0.0f, 1.0f);
    fill_std(engine, dist, out);
  });

  add("bernoulli/stoch", [rng](Matrix<float>& out) mutable { stoch::fill_bernoulli<float>(rng, probabilities(), out); });
  add("bernoulli/mt19937", [engine](Matrix<float>& out) mutable {
    const float* p = probabilities().data();
    float* data = out.data();
    for (stoch::Index i = 0; i < out.size(); ++i) data[i] = std::bernoulli_distribution(p[i])(engine) ? 1.0f : 0.0f;
  });

  add("gaussian/stoch", [rng](Matrix<float>& out) mutable { stoch::fill_gaussian<float>(rng, out, 1.0f); });
  add("gaussian/mt19937", [engine](Matrix<float>& out) mutable {
    std::normal_distribution<float> dist(0.0f, 1.0f);
    fill_std(engine, dist, out);
  });

  add("logistic/stoch", [rng](Matrix<float>& out) mutable { stoch::fill_logistic<float>(rng, out, 1.0f); });
  add("logistic/mt19937", [engine](Matrix<float>& out) mutable {
    std::uniform_real_distribution<float> dist(0.0f, 1.0f);
    float* data = out.data();
    for (stoch::Index i = 0; i < out.size(); ++i) {
      float u;
      do u = dist(engine); while (u <= 0.0f || u >= 1.0f);  // the std distribution may return 0 (or 1)
      data[i] = std::log(u / (1.0f - u));
    }
  });

  add("beta/stoch", [rng](Matrix<float>& out) mutable { stoch::fill_beta<float>(rng, out, kBetaAlpha, kBetaBeta); });
  add("beta/mt19937", [engine](Matrix<float>& out) mutable {
    std::gamma_distribution<float> x(kBetaAlpha), y(kBetaBeta);
    float* data = out.data();
    for (stoch::Index i = 0; i < out.size(); ++i) {
      const float a = x(engine), b = y(engine);
      data[i] = a / (a + b);
    }
  });
}

const int registered = (register_all(), 0);

}  // namespace
