// compare_stoch: stoch's half of the side-by-side comparison with PyTorch (bench/compare/run; PyTorch's half:
// torch_side.py, which builds the same networks, data shapes and optimiser and times them the same way).
//
//   compare_stoch [--threads N] [--cases a,b,...] [--min-seconds S] [--examples N]
//
// prints one line per case, `RESULT stoch <case> <threads> <seconds> <density>`: for mnist_* the time of one
// training epoch (50,000 examples, 1,562 batches of 32), for wide_* the median time of one call; density is the
// X. Cases:
//   mnist_st, mnist_nr   the paper's network (Sec. 5, App. A): gater 784 -> 400 tanh -> 2000 gates, expert
//                        784 -> 2000, output 2000 -> 10 with softmax cross-entropy, SGD with learning rate 0.1;
//                        straight-through gates, or the noisy rectifier with App. A.1's adaptive L1 penalty
//   wide_eval1, wide_eval64, wide_sbn64   784 -> [gated 4096, k = 16] -> rectifier -> [gated 4096, k = 16] ->
//                        rectifier -> 10 (each gater in -> 256 tanh -> 256 SBN gates at about 10 % open): the
//                        forward in evaluation at batch 1 and 64, and one SBN training step at batch 64
// Inputs are random MNIST-shaped data (uniform pixels, uniform labels): the times depend on the shapes and the
// gates' density, not on the values. Each network is configured as the examples configure it (mnist_gated,
// conditional_mlp): the layer chooses its expert path, dL/dx of the pixels is not computed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <stoch/stoch.hpp>

namespace {

using stoch::Index;
using T = float;
constexpr Index kPixels = 784, kClasses = 10;

struct Result {
  std::string name;
  double seconds = 0, density = 0;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Calls `call` until both minimums are reached (after 3 warm-up calls); returns the median call time.
template <class Call>
double median_call(Call&& call, double min_seconds, int min_calls) {
  for (int i = 0; i < 3; ++i) call();
  std::vector<double> times;
  double total = 0;
  while (total < min_seconds || static_cast<int>(times.size()) < min_calls) {
    const auto start = std::chrono::steady_clock::now();
    call();
    times.push_back(seconds_since(start));
    total += times.back();
  }
  std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2), times.end());
  return times[times.size() / 2];
}

// ---- the paper's MNIST network ----

template <class Gate>
Result mnist_epoch(const std::string& name, Gate gate, T gate_bias, const stoch::Matrix<T>& images,
                   const std::vector<int>& labels) {
  using stoch::Linear;
  using Gater = stoch::Sequential<Linear<T>, stoch::Tanh<T>, Linear<T>, Gate>;
  stoch::Generator init(1, 1), noise(1, 2);
  Gater gater(Linear<T>(kPixels, 400, init, "gater.hidden"), stoch::Tanh<T>(400),
              Linear<T>(400, 2000, init, "gater.gate"), std::move(gate));
  // About 10 % open gates at the start, as torch_side.py: sigm(a) = 0.1 for straight-through, P(a + z > 0) =
  // 0.1 with z ~ N(0, 1) for the noisy rectifier.
  gater.template get<2>().bias().value.setConstant(gate_bias);
  stoch::Sequential net(stoch::GatedLayer<Gater>(std::move(gater), Linear<T>(kPixels, 2000, init, "expert"), "expert"),
                        Linear<T>(2000, kClasses, init, "output"));
  net.set_input_gradient(false);
  stoch::SoftmaxCrossEntropy<T> loss(kClasses);
  stoch::Sgd<T> sgd(net.parameters(), {.learning_rate = T(0.1), .momentum = T(0)});

  const Index batch = 32, n = images.cols(), batches = n / batch;
  std::vector<Index> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), Index(0));
  for (Index i = n - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)], order[noise.next() % static_cast<std::size_t>(i + 1)]);
  stoch::Matrix<T> x(kPixels, batch);
  std::vector<int> y(static_cast<std::size_t>(batch));
  stoch::Context<T> ctx(stoch::Mode::train, noise);
  double density = 0;
  const auto start = std::chrono::steady_clock::now();
  for (Index b = 0; b < batches; ++b) {
    for (Index j = 0; j < batch; ++j) {
      const auto example = order[static_cast<std::size_t>(b * batch + j)];
      x.col(j) = images.col(example);
      y[static_cast<std::size_t>(j)] = labels[static_cast<std::size_t>(example)];
    }
    loss.forward(net.forward(x, ctx), y, ctx);
    density += net.template get<0>().density();
    net.backward(loss.backward(), ctx);
    sgd.step();
  }
  return {name, seconds_since(start), density / static_cast<double>(batches)};
}

// ---- the wide network ----

constexpr Index kUnits = 4096, kBlock = 16, kBottleneck = 256;
constexpr double kTarget = 0.1;
using Sbn = stoch::StochasticBinary<T>;
using WideGater = stoch::Sequential<stoch::Linear<T>, stoch::Tanh<T>, stoch::Linear<T>, Sbn>;
using WideNet = stoch::Sequential<stoch::GatedLayer<WideGater>, stoch::Rectifier<T>, stoch::GatedLayer<WideGater>,
                                  stoch::Rectifier<T>, stoch::Linear<T>>;

stoch::GatedLayer<WideGater> wide_layer(Index in, stoch::Generator& init, const std::string& name) {
  WideGater gater(stoch::Linear<T>(in, kBottleneck, init, name + ".gater.hidden"), stoch::Tanh<T>(kBottleneck),
                  stoch::Linear<T>(kBottleneck, kUnits / kBlock, init, name + ".gater.gate"),
                  Sbn(kUnits / kBlock, {}, name + ".sbn"));
  gater.template get<2>().bias().value.setConstant(static_cast<T>(stoch::logit(kTarget)));  // sigm(a) about 0.1
  return stoch::GatedLayer<WideGater>(std::move(gater), stoch::Linear<T>(in, kUnits, init, name), kBlock, name);
}

/// The evaluation thresholds that open 10 % of each layer's gates on `x` (App. A.3), as torch_side.py.
void calibrate(WideNet& net, const stoch::Matrix<T>& x) {
  stoch::Generator unused;
  stoch::Context<T> eval(stoch::Mode::eval, unused);
  auto& first = net.get<0>();
  first.gater().forward(x, eval);
  first.gater().last().set_threshold(stoch::calibrate_threshold(first.gater().last().scores(), T(kTarget)));
  const stoch::Matrix<T> hidden = net.get<1>().forward(first.forward(x, eval), eval);
  auto& second = net.get<2>();
  second.gater().forward(hidden, eval);
  second.gater().last().set_threshold(stoch::calibrate_threshold(second.gater().last().scores(), T(kTarget)));
}

std::vector<Result> wide_cases(const std::vector<std::string>& cases, double min_seconds) {
  auto wanted = [&](const char* name) { return std::find(cases.begin(), cases.end(), name) != cases.end(); };
  std::vector<Result> results;
  if (!wanted("wide_eval1") && !wanted("wide_eval64") && !wanted("wide_sbn64")) return results;
  stoch::Generator init(2, 1), rng(2, 2);
  WideNet net(wide_layer(kPixels, init, "hidden1"), stoch::Rectifier<T>(kUnits), wide_layer(kUnits, init, "hidden2"),
              stoch::Rectifier<T>(kUnits), stoch::Linear<T>(kUnits, kClasses, init, "output"));
  // As examples/conditional_mlp: the second gater's first product and the output layer read only the non-zero
  // inputs (the rectified output of a gated layer), in training too; dL/dx of the pixels is not computed.
  net.get<2>().gater().get<0>().set_zero_skipping(stoch::ZeroSkipping::always);
  net.get<4>().set_zero_skipping(stoch::ZeroSkipping::always);
  net.set_input_gradient(false);
  stoch::Matrix<T> x64(kPixels, 64);
  stoch::fill_uniform<T>(rng, x64);
  std::vector<int> y64(64);
  for (auto& label : y64) label = static_cast<int>(rng.next() % kClasses);
  calibrate(net, x64);
  auto density = [&] { return (net.get<0>().density() + net.get<2>().density()) / 2; };

  stoch::Context<T> eval(stoch::Mode::eval, rng);
  // What the batch-1 calls read: a block's weights are read by every example that opens it, so the weights the
  // 64 examples touch together are those of the blocks open for at least one of them.
  for (const Index layer : {Index(0), Index(1)}) {
    const stoch::Matrix<T> hidden = net.get<1>().forward(net.get<0>().forward(x64, eval), eval);
    const stoch::Matrix<T>& h = layer == 0 ? net.get<0>().gater().forward(x64, eval)
                                           : net.get<2>().gater().forward(hidden, eval);
    const auto any_open = (h.array() != T(0)).rowwise().any().count();
    std::printf("# stoch: gated layer %ld: %.1f %% of the blocks are open for at least one of the 64 examples\n",
                static_cast<long>(layer + 1), 100.0 * static_cast<double>(any_open) / static_cast<double>(h.rows()));
  }
  for (const Index batch : {Index(1), Index(64)}) {
    const std::string name = "wide_eval" + std::to_string(batch);
    if (!wanted(name.c_str())) continue;
    // Batch 1 cycles through the 64 examples: each call gets another example, as in a stream of requests.
    Index calls = 0;
    const double seconds = median_call(
        [&] {
          net.forward(x64.middleCols(batch == 1 ? calls % 64 : 0, batch), eval);
          ++calls;
        },
        min_seconds, 20);
    net.forward(x64, eval);
    results.push_back({name, seconds, density()});
  }
  if (wanted("wide_sbn64")) {
    stoch::SoftmaxCrossEntropy<T> loss(kClasses);
    stoch::Sgd<T> sgd(net.parameters(), {.learning_rate = T(0.01), .momentum = T(0)});
    stoch::Context<T> train(stoch::Mode::train, rng);
    const double seconds = median_call(
        [&] {
          loss.forward(net.forward(x64, train), y64, train);
          net.backward(loss.backward(), train);
          sgd.step();
        },
        min_seconds, 10);
    results.push_back({"wide_sbn64", seconds, density()});
  }
  return results;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin <= list.size()) {
    const std::size_t end = std::min(list.find(',', begin), list.size());
    if (end > begin) parts.push_back(list.substr(begin, end - begin));
    begin = end + 1;
  }
  return parts;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  double min_seconds = 2.0;
  Index examples = 50000;  // of the MNIST epochs; fewer for a quick test
  std::string case_list = "mnist_st,mnist_nr,wide_eval1,wide_eval64,wide_sbn64";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--cases" && i + 1 < argc) {
      case_list = argv[++i];
    } else if (arg == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else if (arg == "--examples" && i + 1 < argc) {
      examples = std::max<Index>(32, std::atol(argv[++i]));
    } else {
      std::fprintf(stderr,
                   "usage: compare_stoch [--threads N] [--cases a,b,...] [--min-seconds S] [--examples N]\n");
      return 2;
    }
  }
  stoch::set_threads(threads);
  std::printf("# stoch %s, %d threads requested, %d used (%s)\n", std::string(stoch::version).c_str(), threads,
              stoch::threads(), stoch::threads_available() ? "OpenMP" : "built without OpenMP: 1 thread");
  std::fflush(stdout);
  const std::vector<std::string> cases = split(case_list);
  std::vector<Result> results;
  const bool mnist = std::any_of(cases.begin(), cases.end(), [](const auto& c) { return c.starts_with("mnist_"); });
  if (mnist) {
    stoch::Generator data(4);
    stoch::Matrix<T> images(kPixels, examples);
    stoch::fill_uniform<T>(data, images);
    std::vector<int> labels(static_cast<std::size_t>(examples));
    for (auto& label : labels) label = static_cast<int>(data.next() % kClasses);
    for (const auto& c : cases) {
      if (c == "mnist_st") {
        results.push_back(mnist_epoch(c, stoch::StraightThrough<T>(2000), T(-2.2), images, labels));
      } else if (c == "mnist_nr") {
        // App. A.1 / A.4 as examples/mnist_gated: noise std 1, the adaptive L1 penalty holding 10 % open.
        stoch::NoisyRectifierOptions<T> options;
        options.noise_scale = T(1);
        options.l1 = stoch::AdaptiveL1<T>(T(0.1), T(1e-3), T(1.01), T(0.01), "l1.lambda");
        results.push_back(mnist_epoch(c, stoch::NoisyRectifier<T>(2000, options, "gate"), T(-1.3), images, labels));
      }
    }
  }
  for (auto& r : wide_cases(cases, min_seconds)) results.push_back(std::move(r));
  for (const auto& r : results)
    std::printf("RESULT stoch %s %d %.6g %.4f\n", r.name.c_str(), threads, r.seconds, r.density);
  return 0;
}
