// Writing the results of the MNIST experiment: results.json, results.md, the learning-curve plot.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "../common/run_info.hpp"
#include "experiment.hpp"

namespace mnist {

/// Where and how the results were produced (the "machine" object of results.json).
using RunInfo = stoch_examples::RunInfo;

RunInfo describe_run(int argc, char** argv, int threads, const std::string& data_dir);

/// Writes results.json and results.md into `out`.
void write_results(const std::filesystem::path& out, const std::vector<VariantResult>& results,
                   const Settings& settings, const RunInfo& info);

/// Draws valid error vs epoch, one line per variant, with gnuplot into out/learning_curves.{svg,png}.
/// Returns a message saying what was written (or why nothing was: gnuplot missing).
std::string plot_learning_curves(const std::filesystem::path& out, const std::vector<VariantResult>& results);

/// The Figure 2 table as printed on the terminal.
std::string figure2_table(const std::vector<VariantResult>& results);

}  // namespace mnist
