// SIGKILLs the MNIST example at random moments, many of them while it writes its checkpoint, and checks
// after every kill that the checkpoint is whole (stoch::read_model_info validates structure and checksum)
// and never goes back an epoch; finally resumes once more and checks that training continues from it.
//
//   checkpoint_kill <mnist binary> <work dir> [seconds budget, default 60]
//
// Exit 0: every check passed; 1: a check failed; 77: MNIST data not available (the test is skipped).
// The random moments come from a seed printed at the start (STOCH_KILL_SEED=<n> repeats a run).
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stoch/io/serialization.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kSkip = 77;
const char* const kVariant = "straight-through";

struct Run {
  pid_t pid = -1;
  int status = 0;
  bool exited = false;
};

Run start(const std::string& mnist, const fs::path& out, const fs::path& log) {
  const std::vector<std::string> args = {mnist, "--variants", kVariant, "--epochs", "100000", "--train-limit", "64",
                                         "--threads", "1", "--eval-samples", "1", "--timing-repeats", "1",
                                         "--out", out.string(), "--resume"};
  Run run;
  run.pid = fork();
  if (run.pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (run.pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return run;
}

/// True once the child has exited (status recorded).
bool finished(Run& run) {
  if (run.exited) return true;
  if (waitpid(run.pid, &run.status, WNOHANG) == run.pid) run.exited = true;
  return run.exited;
}

void kill_and_reap(Run& run) {
  if (!finished(run)) {
    kill(run.pid, SIGKILL);
    waitpid(run.pid, &run.status, 0);
    run.exited = true;
  }
}

std::vector<fs::path> temporaries(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().find(".tmp.") != std::string::npos) found.push_back(it->path());
  return found;
}

/// The checkpoint's epoch; fails the test if the file exists but is not a whole, valid model file.
std::int64_t checkpoint_epoch(const fs::path& file) {
  if (!fs::exists(file)) return 0;
  try {
    const stoch::ModelFileInfo info = stoch::read_model_info(file);
    return static_cast<std::int64_t>(info.metadata.integers.at("epoch"));
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_kill: FAILED: the checkpoint is not whole after a kill: " << e.what() << "\n";
    std::exit(1);
  }
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

[[noreturn]] void child_failed(const Run& run, const fs::path& log) {
  const std::string text = read_text(log);
  if (WIFEXITED(run.status) && WEXITSTATUS(run.status) == kSkip) {
    std::cout << "checkpoint_kill: skipped, mnist has no data: " << text.substr(text.size() > 400 ? text.size() - 400 : 0)
              << "\n";
    std::exit(kSkip);
  }
  std::cerr << "checkpoint_kill: FAILED: mnist stopped by itself (status " << run.status << "):\n"
            << text.substr(text.size() > 3000 ? text.size() - 3000 : 0) << "\n";
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: checkpoint_kill <mnist binary> <work dir> [seconds]\n";
    return 2;
  }
  const std::string mnist = argv[1];
  const fs::path work = argv[2];
  const double budget = argc > 3 ? std::atof(argv[3]) : 60.0;
  const char* seed_env = std::getenv("STOCH_KILL_SEED");
  const std::uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : std::random_device{}();
  std::mt19937_64 random(seed);
  std::cout << "checkpoint_kill: seed " << seed << " (STOCH_KILL_SEED repeats it)\n";

  fs::remove_all(work);
  fs::create_directories(work);
  const fs::path out = work / "out", log = work / "mnist.log";
  const fs::path dir = out / "checkpoints", checkpoint = dir / (std::string(kVariant) + ".stoch");

  const auto begin = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - begin).count(); };
  int kills = 0, during_save = 0, leftovers = 0;
  std::int64_t epoch = 0;
  double epoch_seconds = 5;     // refined from the first save
  int save_window_us = 120000;  // kills during a save land uniformly in this many microseconds after it starts
  constexpr int kMinRounds = 4, kMaxRounds = 12;
  for (int round = 0; round < kMaxRounds && (round < kMinRounds || elapsed() < budget); ++round) {
    const auto round_start = Clock::now();
    Run run = start(mnist, out, log);
    if (round % 2 == 0) {
      // Wait for the next save to begin (its temporary file appears), then kill at a random moment of it.
      while (temporaries(dir).empty()) {
        if (finished(run)) child_failed(run, log);
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
      epoch_seconds = std::chrono::duration<double>(Clock::now() - round_start).count();
      std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, save_window_us)(random)));
    } else {
      // Anywhere: loading, training, evaluating or saving.
      const double at = std::uniform_real_distribution<double>(0, 1.5 * epoch_seconds)(random);
      while (std::chrono::duration<double>(Clock::now() - round_start).count() < at) {
        if (finished(run)) child_failed(run, log);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    if (finished(run)) child_failed(run, log);
    kill_and_reap(run);
    ++kills;
    const auto left = temporaries(dir);
    if (!left.empty()) ++during_save;  // the write was cut short: only the temporary file is partial
    // Aim the next save-time kill: shrink the window when this one came after the save had finished.
    if (round % 2 == 0) save_window_us = left.empty() ? std::max(2000, save_window_us * 3 / 5) : save_window_us * 6 / 5;
    leftovers += static_cast<int>(left.size());
    for (const fs::path& p : left) fs::remove(p);
    const std::int64_t now = checkpoint_epoch(checkpoint);
    if (now < epoch) {
      std::cerr << "checkpoint_kill: FAILED: the checkpoint went back from epoch " << epoch << " to " << now << "\n";
      return 1;
    }
    std::cout << "  kill " << kills << " at " << elapsed() << " s" << (left.empty() ? "" : " (during a save)")
              << ": checkpoint whole, epoch " << now << "\n";
    epoch = now;
  }

  // Resume once more and let it save the next epoch: training continues from the checkpoint.
  Run run = start(mnist, out, log);
  const std::int64_t from = epoch;
  while (checkpoint_epoch(checkpoint) <= from) {
    if (finished(run)) child_failed(run, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill_and_reap(run);
  const std::int64_t after = checkpoint_epoch(checkpoint);
  const bool resumed = from == 0 || read_text(log).find("resumed after epoch " + std::to_string(from)) != std::string::npos;
  std::cout << "checkpoint_kill: " << kills << " kills, " << during_save << " during a save (" << leftovers
            << " partial temporary files, never the checkpoint); resumed from epoch " << from << " and saved epoch "
            << after << (resumed ? "" : " -- but the log does not say it resumed") << "\n";
  if (!resumed || after != from + 1) {
    std::cerr << "checkpoint_kill: FAILED: the last run did not resume from epoch " << from << "\n";
    return 1;
  }
  std::cout << "checkpoint_kill: ok\n";
  return 0;
}
