// Benchmark inputs with an exact fraction of non-zero entries: the open gates of the gated-layer benchmarks and
// the sparse inputs of the affine layer's.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "stoch/core/matrix.hpp"
#include "stoch/core/random.hpp"

namespace stoch::bench {

/// `rows x cols` with round(density * rows * cols) entries set to value() at random positions drawn from
/// `rng` (a partial Fisher-Yates shuffle), zeros elsewhere.
template <class T, class Value>
Matrix<T> exact_density(Index rows, Index cols, double density, Generator& rng, Value value) {
  Matrix<T> x = Matrix<T>::Zero(rows, cols);
  std::vector<Index> positions(static_cast<std::size_t>(x.size()));
  std::iota(positions.begin(), positions.end(), Index(0));
  const auto open = static_cast<Index>(density * static_cast<double>(x.size()) + 0.5);
  for (Index k = 0; k < open; ++k) {
    const Index pick = k + static_cast<Index>(rng.next() % static_cast<std::uint32_t>(x.size() - k));
    std::swap(positions[static_cast<std::size_t>(k)], positions[static_cast<std::size_t>(pick)]);
    x.data()[positions[static_cast<std::size_t>(k)]] = value();
  }
  return x;
}

}  // namespace stoch::bench
