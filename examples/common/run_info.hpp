// What the examples record about the run that produced their results: the command, the date, the machine,
// the compiler and Eigen (the "machine" object of their results.json).
#pragma once

#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include <Eigen/Core>

namespace stoch_examples {

struct RunInfo {
  std::string command_line;
  std::string date;  ///< UTC, ISO 8601
  std::string cpu;
  unsigned hardware_threads = 0;
  int threads = 0;
  std::string compiler;
  std::string eigen;
  std::string data_dir;
  double wall_seconds = 0;
};

/// The run as it is now; the command line starts with `program` in place of argv[0] (a path that says
/// nothing on another machine).
inline RunInfo describe_run(const char* program, int argc, char** argv, int threads, const std::string& data_dir) {
  RunInfo info;
  for (int i = 0; i < argc; ++i) {  // appended piece by piece: gcc 12's -Wrestrict misfires on " " + s
    if (i > 0) info.command_line += ' ';
    info.command_line += i > 0 ? argv[i] : program;
  }
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  info.date = date;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      info.cpu = line.substr(line.find(':') + 2);
      break;
    }
  info.hardware_threads = std::thread::hardware_concurrency();
  info.threads = threads;
#if defined(__clang__)
  info.compiler = "clang " __clang_version__;
#elif defined(__GNUC__)
  info.compiler = "gcc " __VERSION__;
#endif
  info.eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
               std::to_string(EIGEN_MINOR_VERSION) + " (" + Eigen::SimdInstructionSetsInUse() + ")";
  info.data_dir = data_dir;
  return info;
}

}  // namespace stoch_examples
