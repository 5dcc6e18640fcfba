// The parameters of the paper's MNIST network (784 -> gater 400 -> 2000 gates, expert 784 -> 2000, output
// 2000 -> 10: 2,706,010 floats), with uniform values, for the benchmarks of what passes over all of them.
#pragma once

#include <memory>
#include <vector>

#include "stoch/core/distributions.hpp"
#include "stoch/core/parameter.hpp"

namespace stoch::bench {

template <class T>
struct MnistParameters {
  std::vector<std::unique_ptr<Parameter<T>>> storage;
  ParameterList<T> list;
  Index values = 0;

  /// Values uniform in [0, 1) from a fixed seed; gradients zero (sized: every parameter is trainable).
  MnistParameters() {
    const struct { const char* name; Index rows, cols; } shapes[] = {
        {"gater1.weight", 400, 784},    {"gater1.bias", 400, 1},   {"gater2.weight", 2000, 400},
        {"gater2.bias", 2000, 1},       {"expert.weight", 784, 2000}, {"expert.bias", 2000, 1},
        {"output.weight", 10, 2000},    {"output.bias", 10, 1}};
    Generator rng(2013);
    for (const auto& s : shapes) {
      storage.push_back(std::make_unique<Parameter<T>>(s.name, s.rows, s.cols));
      fill_uniform<T>(rng, storage.back()->value);
      list.push_back(storage.back().get());
      values += s.rows * s.cols;
    }
  }
};

}  // namespace stoch::bench
