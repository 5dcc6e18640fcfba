// binary_vae: the binary-VAE benchmark of the DisARM paper (Dong, Mnih & Tucker 2020) on dynamically binarised
// MNIST, every estimator of the library behind the same model. See examples/binary_vae/README.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>

#include "report.hpp"
#include "run.hpp"

namespace {

/// Exit status when the data is not found (CTest's skip, as the mnist example).
constexpr int kNoDataExitCode = 77;

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", std::gmtime(&now));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace binary_vae;
  Settings settings;
  RunOptions options;
  std::string model = "linear", estimators, out_dir = "binary_vae_results", data_option;
  Index train_limit = 0, eval_limit = 0;
  unsigned jobs = std::max(1u, std::thread::hardware_concurrency());

  std::string names;
  for (const auto& n : estimator_names()) names += (names.empty() ? "" : ",") + n;
  CLI::App app{"Binary VAE on dynamically binarised MNIST (the DisARM paper's benchmark): trains one model per "
               "estimator and reports the training ELBO, the importance-weighted bounds, the encoder's gradient "
               "variance and the speed"};
  app.add_option("--model", model, "linear (784-200-784) or nonlinear (784-200-200-200 and back, LeakyReLU 0.3)")
      ->check(CLI::IsMember({"linear", "nonlinear"}))->capture_default_str();
  app.add_option("--estimators", estimators, "comma-separated, from: " + names + " (default: all)");
  app.add_option("--steps", options.steps, "training steps per estimator (the paper: 1000000)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--eval-every", options.eval_every, "steps between training-ELBO and gradient-variance evaluations")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--variance-repeats", options.variance_repeats, "gradient estimates per variance evaluation")
      ->check(CLI::Range(2, 100000))->capture_default_str();
  app.add_option("--iw-samples", options.iw_samples, "samples of the final importance-weighted bounds")
      ->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--batch", settings.batch, "examples per step")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--learning-rate", settings.learning_rate, "Adam's, encoder and decoder")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--prior-learning-rate", settings.prior_learning_rate, "SGD's, prior logits")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--seed", settings.seed, "seed of every draw")->capture_default_str();
  app.add_option("--train-limit", train_limit, "use only the first N training images (0: all 50,000)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eval-limit", eval_limit, "bound only the first N validation and test images (0: all 10,000)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--jobs", jobs, "estimators trained at once (threads)")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--data", data_option, "directory with the four MNIST IDX files; default: $STOCH_MNIST_DIR, then "
                                        "the cache of scripts/fetch-mnist");
  app.add_option("--out", out_dir, "output directory")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  settings.model = model == "linear" ? ModelKind::linear : ModelKind::nonlinear;

  std::vector<std::string> chosen = estimators.empty() ? estimator_names() : split(estimators);
  for (const auto& name : chosen)
    if (std::find(estimator_names().begin(), estimator_names().end(), name) == estimator_names().end()) {
      std::cerr << "binary_vae: unknown estimator '" << name << "' (known: " << names << ")\n";
      return 2;
    }
  if (static_cast<Index>(settings.batch) > 0 && train_limit > 0 && train_limit < settings.batch) {
    std::cerr << "binary_vae: --train-limit " << train_limit << " is below the batch " << settings.batch << "\n";
    return 2;
  }

  std::string tried;
  const std::filesystem::path data_dir = stoch::find_mnist(data_option, &tried);
  if (data_dir.empty()) {
    std::cerr << "binary_vae: MNIST data not found (tried " << tried << "); run scripts/fetch-mnist\n";
    return kNoDataExitCode;
  }

  try {
    const stoch::Mnist<T> mnist = stoch::load_mnist<T>(data_dir, train_limit);
    const Matrix valid = eval_limit > 0 ? Matrix(mnist.valid.images.leftCols(std::min(eval_limit, mnist.valid.size())))
                                        : mnist.valid.images;
    const Matrix test = eval_limit > 0 ? Matrix(mnist.test.images.leftCols(std::min(eval_limit, mnist.test.size())))
                                       : mnist.test.images;
    Data data;
    data.train = &mnist.train.images;
    data.valid = &valid;
    data.test = &test;
    data.mean = mnist.train.images.rowwise().mean();

    std::filesystem::create_directories(out_dir);
    ReportHeader header;
    for (int i = 0; i < argc; ++i) {  // piece by piece: gcc 12's -Wrestrict misfires on " " + s
      if (i > 0) header.command += ' ';
      header.command += i > 0 ? argv[i] : "binary_vae";
    }
    header.date = utc_now();
    header.options = options;
    header.settings = settings;
    header.train_images = mnist.train.size();
    header.valid_images = valid.cols();
    header.test_images = test.cols();

    std::mutex mutex;
    const Log log = [&mutex](const std::string& line) {
      std::lock_guard<std::mutex> lock(mutex);
      std::cout << line << std::endl;
    };
    std::vector<RunResult> results(chosen.size());
    std::vector<std::exception_ptr> errors(chosen.size());
    std::atomic<std::size_t> next{0};
    const auto worker = [&] {
      for (std::size_t k; (k = next++) < chosen.size();) {
        try {
          results[k] = run_estimator(chosen[k], settings, data, options, log);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      }
    };
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < std::min<std::size_t>(jobs, chosen.size()); ++t) threads.emplace_back(worker);
    for (auto& thread : threads) thread.join();
    for (const auto& error : errors)
      if (error) std::rethrow_exception(error);

    write_json(out_dir, header, results);
    write_markdown(out_dir, header, results);
    std::cout << plot_curves(out_dir, results) << "\nresults: " << (std::filesystem::path(out_dir) / "results.md").string()
              << "\n";
  } catch (const std::exception& e) {
    std::cerr << "binary_vae: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
