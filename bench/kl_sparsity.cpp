// The KL sparsity penalty of the sigmoid gates (Eq. 14, App. A.1), once per training batch on the paper's
// 2000 gate units at batch 32:
//
//   BM_KlSparsity/<impl>/<op>: <op> 0 = value (the reported criterion), 1 = add_gradient_wrt_pre_activation
//   (the gate's backward). <impl> 0 = the definition row by row with Eigen (p.row(i).mean(), then the row's
//   update: one value per cache line of the column-major p), 1 = KlSparsity (the means summed column by
//   column over blocks of units, in the same order, so the results are identical). Entries that differ only
//   in <impl> are a same-run comparison.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>

#include "stoch/core/distributions.hpp"
#include "stoch/regularizers/kl_sparsity.hpp"

namespace {

using T = float;
using stoch::Index;

T row_by_row_value(const stoch::KlSparsity<T>& kl, const stoch::Matrix<T>& p) {
  T sum = T(0);
  for (Index i = 0; i < p.rows(); ++i) {
    const T pbar = std::clamp(p.row(i).mean(), kl.mean_clamp, T(1) - kl.mean_clamp);
    sum += kl.target * std::log(pbar) + (T(1) - kl.target) * std::log1p(-pbar);
  }
  return -kl.strength * sum;
}

void row_by_row_gradient(const stoch::KlSparsity<T>& kl, const stoch::Matrix<T>& p, stoch::Matrix<T>& da) {
  const T inv_batch = T(1) / static_cast<T>(p.cols());
  for (Index i = 0; i < p.rows(); ++i) {
    const T pbar = std::clamp(p.row(i).mean(), kl.mean_clamp, T(1) - kl.mean_clamp);
    da.row(i).array() += kl.gradient_wrt_mean(pbar) * inv_batch * p.row(i).array() * (T(1) - p.row(i).array());
  }
}

void BM_KlSparsity(benchmark::State& state) {
  stoch::Generator rng(11);
  stoch::Matrix<T> p(2000, 32);
  stoch::fill_uniform<T>(rng, p);
  stoch::Matrix<T> da = stoch::Matrix<T>::Zero(p.rows(), p.cols());
  const stoch::KlSparsity<T> kl{.target = T(0.1), .strength = T(0.003)};
  const bool library = state.range(0) == 1, gradient = state.range(1) == 1;
  for (auto _ : state) {
    if (gradient) {
      if (library) kl.add_gradient_wrt_pre_activation(p, da);
      else row_by_row_gradient(kl, p, da);
      benchmark::DoNotOptimize(da.data());
    } else {
      benchmark::DoNotOptimize(library ? kl.value(p) : row_by_row_value(kl, p));
    }
  }
}
BENCHMARK(BM_KlSparsity)->ArgsProduct({{0, 1}, {0, 1}})->Unit(benchmark::kMicrosecond);

}  // namespace
