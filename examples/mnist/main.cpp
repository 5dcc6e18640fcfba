// mnist — reproduces Figure 2 of Bengio, Léonard, Courville (2013): seven gaters of a conditional layer on
// MNIST (Sec. 5, App. A), the table side by side with the paper's numbers, the learning curves, the test-time
// gate rules and what skipping closed gates saves; and, on request, gaters not in the paper in the same
// table (DisARM, REINFORCE leave-one-out, straight-through Gumbel-sigmoid). See examples/mnist/README.md.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <stoch/core/error.hpp>

#include "experiment.hpp"
#include "report.hpp"

namespace {

/// Default epoch budget: all seven variants in about 45 minutes on 2 cores (README.md, "Time").
constexpr int kDefaultEpochs = 50;
/// Exit status when the data is not found (CTest's SKIP_RETURN_CODE for the smoke test).
constexpr int kNoDataExitCode = 77;

/// One permanent line per variant and epoch; on a terminal, also a transient status line of every running
/// variant, rewritten at most twice a second.
class Terminal {
 public:
  Terminal() : tty_(::isatty(STDERR_FILENO) != 0) {}

  mnist::Progress progress() {
    return {[this](const std::string& variant, const std::string& status) { set_status(variant, status); },
            [this](const std::string& line) { print(line); }};
  }
  void done(const std::string& variant) {
    std::lock_guard lock(mutex_);
    status_.erase(variant);
  }
  void print(const std::string& line) {
    std::lock_guard lock(mutex_);
    clear();
    std::cout << line << std::endl;
    draw();
  }

 private:
  void set_status(const std::string& variant, const std::string& status) {
    if (!tty_) return;
    std::lock_guard lock(mutex_);
    status_[variant] = status;
    clear();
    draw();
  }
  void clear() {
    if (tty_) std::cerr << "\r\033[K" << std::flush;
  }
  void draw() {
    if (!tty_ || status_.empty()) return;
    std::string text;
    for (const auto& [variant, status] : status_) text += (text.empty() ? "" : " | ") + status;
    std::cerr << text.substr(0, 230) << std::flush;
  }

  bool tty_;
  std::mutex mutex_;
  std::map<std::string, std::string> status_;
};

std::vector<mnist::VariantResult> finished_results(const std::vector<mnist::VariantResult>& results) {
  std::vector<mnist::VariantResult> finished;
  for (const auto& r : results)
    if (r.epochs > 0) finished.push_back(r);
  return finished;
}

}  // namespace

int main(int argc, char** argv) {
  mnist::Settings settings;
  settings.epochs = kDefaultEpochs;
  std::string data_option, out = "mnist-results";
  std::vector<std::string> variant_names;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  CLI::App app{"Reproduces Figure 2 of Bengio, Leonard, Courville (2013), \"Estimating or Propagating Gradients "
               "Through Stochastic Neurons for Conditional Computation\": seven gaters on MNIST."};
  app.add_option("--learning-rate", settings.learning_rate, "learning rate (App. A.4: 0.1)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--learning-rate-decay", settings.learning_rate_decay,
                 "multiply the learning rate by this after every epoch (1: constant)")
      ->check(CLI::Range(0.5, 1.0))->capture_default_str();
  app.add_option("--average-decay", settings.average_decay,
                 "evaluate the moving average of the parameters, decay D per step (0: the last iterate)")
      ->check(CLI::Range(0.0, 0.999999))->capture_default_str();
  app.add_option("--average-every", settings.average_every,
                 "the average samples the parameters every K steps (1: every step)")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--sbn-gater-learning-rate", settings.sbn_gater_learning_rate,
                 "learning rate of the SBN variant's gater (App. A.4: 0.001; default chosen on validation)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--st-gater-learning-rate", settings.st_gater_learning_rate,
                 "learning rate of the straight-through variant's gater (App. A.4: 0.1; default chosen on validation)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--sts-momentum", settings.momentum_sts, "momentum of the STS variant")
      ->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--st-momentum", settings.momentum_st, "momentum of the straight-through variant (0: none)")
      ->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_flag("--st-sigmoid-derivative", settings.st_sigmoid_derivative,
               "straight-through: multiply dL/dh by sigm'(a) (App. A.4 found it worse)");
  app.add_option("--st-beta-noise", settings.st_beta_noise,
                 "straight-through: App. A.2's Beta noise on the sigmoid's input, with this beta (> 1; STS uses "
                 "40.1); 0: none, as in the paper")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-norm", settings.max_norm,
                 "maximum norm of every unit's incoming weights (App. A.4: 2), but for ST and SBN")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--st-max-norm", settings.st_max_norm, "maximum norm of the straight-through variant (App. A.4: 2)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--sbn-max-norm", settings.sbn_max_norm, "maximum norm of the SBN variant (App. A.4: 2)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--weight-decay", settings.weight_decay,
                 "L2 weight decay of every weight matrix, every variant (not in the paper; 0: none)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--input-dropout", settings.input_dropout,
                 "dropout rate of the input pixels in training, every variant but straight-through (not in the "
                 "paper; 0: none)")
      ->check(CLI::Range(0.0, 0.95))->capture_default_str();
  app.add_option("--st-input-dropout", settings.st_input_dropout,
                 "dropout rate of the straight-through variant's input pixels (not in the paper; 0: none; default "
                 "chosen on validation)")
      ->check(CLI::Range(0.0, 0.95))->capture_default_str();
  app.add_option("--gate-init-norm", settings.gate_init_norm,
                 "initial norm of every gate unit's incoming weights (0: as drawn, Glorot-uniform), but for ST")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--st-gate-init-norm", settings.st_gate_init_norm,
                 "initial norm of the straight-through gate units (0: as drawn; default chosen on validation)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--kl-strength", settings.kl_strength,
                 "lambda of the KL sparsity penalty (Eq. 14) of every sigmoid gate; 0: each variant's default "
                 "(0.01 for STS, 0.003 for straight-through, 0.03 for SBN)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--rectifier-firing-rate", settings.firing_rate,
                 "rectifiers: raise the offset of units firing less often than this (Sec. 2.1); 0: off")
      ->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--data", data_option,
                 "directory with the four MNIST IDX files (plain or .gz); default: $STOCH_MNIST_DIR, then the "
                 "cache of scripts/fetch-mnist");
  std::string all, paper, added;
  for (const auto& v : mnist::all_variants()) {
    all += (all.empty() ? "" : ",") + v.name;
    std::string& list = v.in_paper() ? paper : added;
    list += (list.empty() ? "" : ",") + v.name;
  }
  app.add_option("--variants", variant_names,
                 "comma-separated subset of the paper's " + paper + " and of " + added +
                     " (not in the paper), or 'all' (default: the paper's seven)")
      ->delimiter(',');
  app.add_option("--epochs", settings.epochs, "training epochs per variant")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--seed", settings.seed, "seed of every random stream")->capture_default_str();
  app.add_option("--threads", threads,
                 "variants trained at the same time, one thread each (results do not depend on it)")
      ->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--out", out, "directory for results.json, results.md, the plot and the checkpoints")
      ->capture_default_str();
  app.add_flag("--resume", settings.resume, "continue from the checkpoints in --out (same results as uninterrupted)");
  app.add_option("--train-limit", settings.train_limit,
                 "use only the first N training images (quick runs; 0: all 50,000)")->check(CLI::NonNegativeNumber);
  app.add_option("--eval-batch", settings.eval_batch, "batch size of evaluation and of its timing")
      ->check(CLI::Range(1, 10000))->capture_default_str();
  app.add_option("--eval-samples", settings.eval_samples, "K of the 'mean of K samples' gate rule")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--timing-repeats", settings.timing_repeats, "evaluation timings: best of this many passes")
      ->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--eval-limit", settings.eval_limit,
                 "validate and test on the first N images of each set only (quick runs; 0: all 10,000)")
      ->check(CLI::NonNegativeNumber);
  // --help in three groups: what App. A sets (or Sec. 2.1 describes), what this program adds or chooses
  // otherwise (README.md, "Choices"), and how the experiment is run. Every option is in exactly one; --help
  // lists the groups in the order of their first option, hence the experiment's options are added last.
  const std::pair<const char*, std::vector<std::string>> groups[] = {
      {"Paper settings (App. A)",
       {"--learning-rate", "--sts-momentum", "--st-sigmoid-derivative", "--max-norm", "--kl-strength",
        "--rectifier-firing-rate"}},
      {"Deviations from the paper",
       {"--learning-rate-decay", "--average-decay", "--average-every", "--sbn-gater-learning-rate",
        "--st-gater-learning-rate", "--st-momentum", "--st-beta-noise", "--st-max-norm", "--sbn-max-norm",
        "--weight-decay", "--input-dropout", "--st-input-dropout", "--gate-init-norm", "--st-gate-init-norm"}},
      {"Experiment",
       {"--data", "--variants", "--epochs", "--seed", "--threads", "--out", "--resume", "--train-limit",
        "--eval-batch", "--eval-samples", "--timing-repeats", "--eval-limit"}}};
  for (const auto& [group, names] : groups)
    for (const std::string& name : names) app.get_option(name)->group(group);
  for (const CLI::Option* option : app.get_options())
    if (option->get_group() == "Options" && option != app.get_help_ptr())
      throw stoch::Error("mnist: option " + option->get_name() + " is in no --help group");
  CLI11_PARSE(app, argc, argv);
  if (settings.st_beta_noise > 0 && !(settings.st_beta_noise > 1)) {
    std::cerr << "mnist: --st-beta-noise must be 0 (off) or > 1 (the Beta mode must exist), got "
              << settings.st_beta_noise << "\n";
    return 2;
  }

  std::vector<mnist::VariantSpec> variants;
  if (variant_names.empty()) variants = mnist::paper_variants();
  if (std::find(variant_names.begin(), variant_names.end(), "all") != variant_names.end()) {
    variants = mnist::all_variants();
    variant_names.clear();
  }
  for (const std::string& name : variant_names) {
    const auto& known = mnist::all_variants();
    const auto it = std::find_if(known.begin(), known.end(), [&](const auto& v) { return v.name == name; });
    if (it == known.end()) {
      std::cerr << "mnist: unknown variant '" << name << "'; known: " << all << ", or all\n";
      return 2;
    }
    if (std::none_of(variants.begin(), variants.end(), [&](const auto& v) { return v.name == name; }))
      variants.push_back(*it);
  }

  // The paper's order, then those not in the paper.
  std::sort(variants.begin(), variants.end(), [](const auto& a, const auto& b) { return a.id < b.id; });

  std::string tried;
  const std::filesystem::path data_dir = stoch::find_mnist(data_option, &tried);
  if (data_dir.empty()) {
    std::cerr << "mnist: the MNIST files (train-images-idx3-ubyte, ...) are not in " << (tried.empty() ? "?" : tried)
              << ".\nFetch them with scripts/fetch-mnist (or pass --data DIR).\n";
    return kNoDataExitCode;
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<mnist::VariantResult> results(variants.size());
  std::vector<std::function<void(mnist::VariantResult&)>> timings(variants.size());
  std::vector<std::string> failures;
  try {
    settings.out = out;
    std::filesystem::create_directories(settings.out);
    stoch::Mnist<mnist::T> data = stoch::load_mnist<mnist::T>(data_dir, settings.train_limit);
    for (stoch::LabeledImages<mnist::T>* set : {&data.valid, &data.test})
      if (settings.eval_limit > 0 && settings.eval_limit < set->size()) {
        set->images.conservativeResize(Eigen::NoChange, settings.eval_limit);
        set->labels.resize(static_cast<std::size_t>(settings.eval_limit));
      }
    std::cout << "MNIST from " << data_dir.string() << ": " << data.train.size() << " train, " << data.valid.size()
              << " valid, " << data.test.size() << " test; " << variants.size() << " variant(s), " << settings.epochs
              << " epoch(s), " << std::min<std::size_t>(threads, variants.size()) << " thread(s)" << std::endl;

    Terminal terminal;
    const mnist::Progress progress = terminal.progress();
    // Longest first (measured: the 2000-unit sigmoid gates, then the rectifiers, then the 200-unit baselines;
    // the two-sample gaters cost about twice SBN), so that two threads finish close together.
    std::vector<std::size_t> schedule(variants.size());
    std::iota(schedule.begin(), schedule.end(), std::size_t{0});
    std::stable_sort(schedule.begin(), schedule.end(), [&](std::size_t a, std::size_t b) {
      return variants[a].cost_rank < variants[b].cost_rank;
    });
    std::atomic<std::size_t> next{0};
    std::mutex failures_mutex, results_mutex;
    auto worker = [&] {
      for (std::size_t n; (n = next.fetch_add(1)) < variants.size();) {
        const std::size_t k = schedule[n];
        try {
          mnist::TrainedVariant trained = mnist::run_variant(variants[k], settings, data, progress);
          {  // results.json / results.md so far, so that a long run shows each variant as soon as it is done
            std::lock_guard lock(results_mutex);
            results[k] = std::move(trained.result);
            timings[k] = std::move(trained.time_evaluation);
            mnist::RunInfo info = mnist::describe_run(argc, argv, threads, data_dir.string());
            info.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            mnist::write_results(settings.out, finished_results(results), settings, info);
          }
          terminal.done(variants[k].name);
          terminal.print(variants[k].name + ": done, test error " +
                         std::to_string(100 * results[k].test_error).substr(0, 5) + "%");
        } catch (const std::exception& e) {
          terminal.done(variants[k].name);
          std::lock_guard lock(failures_mutex);
          failures.push_back(variants[k].name + ": " + e.what());
          terminal.print("mnist: " + failures.back());
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < std::min<int>(threads, static_cast<int>(variants.size())); ++t) pool.emplace_back(worker);
    for (std::thread& t : pool) t.join();

    // The evaluation timings, one variant at a time on an otherwise idle machine (see TrainedVariant).
    for (std::size_t k = 0; k < variants.size(); ++k) {
      if (!timings[k]) continue;
      progress.status(variants[k].name, variants[k].name + ": timing the evaluation with and without skipping");
      timings[k](results[k]);
      timings[k] = nullptr;  // frees the network
      terminal.done(variants[k].name);
    }

    const std::vector<mnist::VariantResult> finished = finished_results(results);
    mnist::RunInfo info = mnist::describe_run(argc, argv, threads, data_dir.string());
    info.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    mnist::write_results(settings.out, finished, settings, info);
    std::cout << "\nFigure 2 (right), re-measured (errors in %; paper's numbers next to ours):\n\n"
              << mnist::figure2_table(finished) << "\n"
              << mnist::plot_learning_curves(settings.out, finished) << "\n"
              << "results: " << (settings.out / "results.md").string() << ", "
              << (settings.out / "results.json").string() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "mnist: " << e.what() << "\n";
    return 1;
  }
  if (!failures.empty()) {
    for (const auto& f : failures) std::cerr << "mnist: failed: " << f << "\n";
    return 1;
  }
  return 0;
}
