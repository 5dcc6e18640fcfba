// mnist_gated: the conditional-computation network of Bengio, Leonard, Courville (2013) on MNIST, step by step.
//
// Sec. 5 and Figure 1: a small "gater" network decides, for each example, which of the 2000 hidden units of
// a large "expert" layer are needed; the layer outputs h * H (gate times expert, elementwise), so wherever a
// gate h_i is 0 the expert unit H_i, 784 multiply-adds, need not be computed at all. This program trains
// that network for a few epochs with noisy-rectifier gates (Sec. 2.1) and prints the test error and what
// skipping the closed gates saved. The full experiment with all seven gaters of Figure 2 is examples/mnist.
//
//   mnist_gated [MNIST_DIR] [--epochs N] [--train-limit N]
//
// MNIST_DIR holds the four IDX files; default: $STOCH_MNIST_DIR, then the cache of scripts/fetch-mnist.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include <stoch/stoch.hpp>

using Gater = stoch::Sequential<stoch::Linear<float>, stoch::Tanh<float>, stoch::Linear<float>,
                                stoch::NoisyRectifier<float>>;
using Network = stoch::Sequential<stoch::GatedLayer<Gater>, stoch::Linear<float>>;

// Runs the deterministic network (Mode::eval, App. A.3) over `set` in batches of 100 and returns the
// fraction of misclassified examples. Also adds up the open gates and the expert multiply-adds skipped.
double test_error(Network& net, const stoch::LabeledImages<float>& set, double* open_fraction = nullptr,
                  double* skipped_fraction = nullptr) {
  stoch::Generator unused;  // evaluation draws no noise
  stoch::Context<float> ctx(stoch::Mode::eval, unused);
  stoch::Index errors = 0, batch = 100;
  double open = 0, skipped = 0;
  for (stoch::Index first = 0; first < set.size(); first += batch) {
    const stoch::Index count = std::min(batch, set.size() - first);
    const stoch::Matrix<float>& logits = net.forward(set.images.middleCols(first, count), ctx);
    errors += stoch::count_errors<float>(logits, std::span(set.labels).subspan(static_cast<std::size_t>(first),
                                                                               static_cast<std::size_t>(count)));
    const auto& layer = net.get<0>();
    open += layer.density() * static_cast<double>(count);
    // A dense forward computes all 2000 units; a skipping one only the open (unit, example) pairs.
    if (!layer.last_forward_dense()) skipped += (1 - layer.density()) * static_cast<double>(count);
  }
  const auto n = static_cast<double>(set.size());
  if (open_fraction) *open_fraction = open / n;
  if (skipped_fraction) *skipped_fraction = skipped / n;
  return static_cast<double>(errors) / n;
}

int main(int argc, char** argv) {
  // ---- 1. Options and data. load_mnist keeps the last 10,000 of the 60,000 training images apart for
  // validation (Figure 2 reports valid and test errors); --train-limit keeps only the first N of the rest.
  int epochs = 3;
  stoch::Index train_limit = 0;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--epochs" && i + 1 < argc) {
      epochs = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--train-limit" && i + 1 < argc) {
      train_limit = std::max<stoch::Index>(0, std::atol(argv[++i]));
    } else if (arg.starts_with("-")) {
      std::fprintf(stderr, "usage: mnist_gated [MNIST_DIR] [--epochs N] [--train-limit N]\n");
      return 2;
    } else {
      dir = arg;
    }
  }
  std::string tried;
  const std::filesystem::path found = stoch::find_mnist(dir, &tried);  // dir, $STOCH_MNIST_DIR, the cache
  if (found.empty()) {
    std::printf("SKIPPED: MNIST data not found (tried '%s'); run scripts/fetch-mnist or set STOCH_MNIST_DIR\n",
                tried.c_str());
    return 77;
  }
  const stoch::Mnist<float> data = stoch::load_mnist<float>(found, train_limit);
  std::printf("MNIST: %ld train, %ld valid, %ld test images\n", static_cast<long>(data.train.size()),
              static_cast<long>(data.valid.size()), static_cast<long>(data.test.size()));

  // ---- 2. Random numbers. Every draw comes from an explicit stoch::Generator: one stream to initialise
  // the weights and one for the training noise, so that the same seed gives the same network to the bit.
  const std::uint64_t seed = 1;
  stoch::Generator init(seed, 1), noise(seed, 2);

  // ---- 3. The network of App. A. The gater: 784 -> 400 tanh -> 2000 pre-activations a, then the noisy
  // rectifier h = max(0, a + c + z), z ~ N(0, 1) in training (Sec. 2.1; std 1.0, App. A.4). Its adaptive L1
  // penalty (Eq. 15, App. A.1) raises lambda while more than 10% + 0.01 of the gates are open in a batch and
  // lowers it below 10% - 0.01: that is what keeps about 200 of the 2000 experts per example.
  stoch::NoisyRectifierOptions<float> gate_options;
  gate_options.noise_scale = 1.0f;
  gate_options.l1 = stoch::AdaptiveL1<float>(/*target=*/0.1f, /*initial_lambda=*/1e-3f, /*adapt_factor=*/1.01f,
                                             /*band=*/0.01f, "l1.lambda");
  Gater gater(stoch::Linear<float>(784, 400, init, "gater.hidden"), stoch::Tanh<float>(400),
              stoch::Linear<float>(400, 2000, init, "gater.gate"),
              stoch::NoisyRectifier<float>(2000, gate_options, "gate"));
  // The expert is linear, 784 -> 2000 (App. A); GatedLayer outputs h * (W x + b) and computes W x + b only
  // where h != 0. The output layer, 2000 -> 10, then a softmax with the cross-entropy loss.
  Network net(stoch::GatedLayer<Gater>(std::move(gater), stoch::Linear<float>(784, 2000, init, "expert"), "expert"),
              stoch::Linear<float>(2000, 10, init, "output"));
  stoch::SoftmaxCrossEntropy<float> loss(10);
  // In evaluation 90% of the output layer's inputs are zero: let it read only the open units' weights.
  net.get<1>().set_zero_skipping(stoch::ZeroSkipping::evaluation);
  // The input is data: nobody reads dL/dx, so the first layer need not compute it (the gradients of the
  // parameters are the same).
  net.set_input_gradient(false);

  // ---- 4. The optimiser: plain SGD with a learning rate of 0.1 and a maximum norm of 2 on every unit's
  // incoming weights (App. A.4). Sgd holds pointers to the parameters: the network must not move from here.
  stoch::Sgd<float> sgd(net.parameters(), {.learning_rate = 0.1f, .momentum = 0.0f});
  stoch::set_max_norm(net.parameters(), 2.0f);

  // ---- 5. Training: mini-batches of 32 (App. A), a new random order every epoch. forward fills
  // ctx.example_loss, backward accumulates every parameter's gradient, sgd.step() updates and clears them.
  const stoch::Index batch = 32, n = data.train.size();
  std::vector<stoch::Index> order(static_cast<std::size_t>(n));
  stoch::Matrix<float> x(784, batch);
  std::vector<int> y(static_cast<std::size_t>(batch));
  stoch::Context<float> ctx(stoch::Mode::train, noise);
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    std::iota(order.begin(), order.end(), stoch::Index(0));
    for (stoch::Index i = n - 1; i > 0; --i)  // Fisher-Yates, driven by the noise stream
      std::swap(order[static_cast<std::size_t>(i)], order[noise.next() % static_cast<std::size_t>(i + 1)]);
    double loss_sum = 0, density_sum = 0;
    const stoch::Index batches = n / batch;
    for (stoch::Index b = 0; b < batches; ++b) {
      for (stoch::Index j = 0; j < batch; ++j) {
        const stoch::Index example = order[static_cast<std::size_t>(b * batch + j)];
        x.col(j) = data.train.images.col(example);
        y[static_cast<std::size_t>(j)] = data.train.labels[static_cast<std::size_t>(example)];
      }
      loss_sum += loss.forward(net.forward(x, ctx), y, ctx);
      density_sum += net.get<0>().density();
      net.backward(loss.backward(), ctx);
      sgd.step();
    }
    std::printf("epoch %d: training loss %.4f, open gates %.1f%%\n", epoch,
                loss_sum / static_cast<double>(batches), 100 * density_sum / static_cast<double>(batches));
    std::fflush(stdout);
  }

  // ---- 6. The test-time threshold (App. A.3). In evaluation the gate is deterministic: open where its
  // score a + c exceeds a threshold t. Calibrate t on the first 1,000 validation images so that 10% of the
  // gates open there (stoch::ScoreHistogram does the same over a whole set in bounded memory).
  auto& gate = net.get<0>().gater().last();
  stoch::Context<float> eval(stoch::Mode::eval, noise);  // evaluation draws nothing
  std::vector<float> scores;
  for (stoch::Index first = 0; first < 1000; first += 100) {
    net.get<0>().gater().forward(data.valid.images.middleCols(first, 100), eval);
    scores.insert(scores.end(), gate.scores().data(), gate.scores().data() + gate.scores().size());
  }
  gate.set_threshold(stoch::calibrate_threshold(std::span<const float>(scores), 0.1f));

  // ---- 7. Test error and what skipping saved: the layer computes the expert only for open gates
  // (ExpertPath::automatic takes the skipping kernels at this density); ExpertPath::dense computes all
  // 2000 units and then multiplies by h, as a framework without conditional computation would.
  double open = 0, skipped = 0;
  const double error = test_error(net, data.test, &open, &skipped);
  std::printf("test error %.2f%% (paper, Figure 2: 1.87%% for the noisy rectifier after full training)\n",
              100 * error);
  std::printf("open gates %.1f%%: %.1f%% of the expert's multiply-adds skipped\n", 100 * open, 100 * skipped);
  // The gater (784 x 400 + 400 x 2000 per example) is always computed: it bounds what skipping can save in
  // the whole network (Sec. 5: the gater must cost much less than the expert).
  const double gater_work = 784.0 * 400 + 400.0 * 2000, expert_work = 784.0 * 2000, output_work = 2000.0 * 10;
  std::printf("of the whole network's multiply-adds: %.1f%% skipped\n",
              100 * skipped * expert_work / (gater_work + expert_work + output_work));
  auto seconds = [&](stoch::ExpertPath path) {
    net.get<0>().set_path(path);
    net.get<1>().set_zero_skipping(path == stoch::ExpertPath::dense ? stoch::ZeroSkipping::off
                                                                    : stoch::ZeroSkipping::evaluation);
    const auto start = std::chrono::steady_clock::now();
    test_error(net, data.test);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double dense = 1e30, skipping = 1e30;
  for (int k = 0; k < 2; ++k) {  // alternate, keep the best of each: the machine's load may change
    dense = std::min(dense, seconds(stoch::ExpertPath::dense));
    skipping = std::min(skipping, seconds(stoch::ExpertPath::automatic));
  }
  std::printf("evaluating the test set: %.3f s dense, %.3f s skipping closed gates (%.2fx)\n", dense, skipping,
              dense / skipping);
  return 0;
}
