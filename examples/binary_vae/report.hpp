// results.json, results.md and the learning curves (gnuplot) of the binary-VAE benchmark.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../common/result_files.hpp"
#include "run.hpp"

namespace binary_vae {

struct ReportHeader {
  std::string command;  ///< the command line that made the results
  std::string date;     ///< UTC
  RunOptions options;
  Settings settings;
  Index train_images = 0, valid_images = 0, test_images = 0;
};

using stoch_examples::format;

using stoch_examples::write_file;

inline void write_json(const std::filesystem::path& out, const ReportHeader& header,
                       const std::vector<RunResult>& runs) {
  using nlohmann::json;
  json list = json::array();
  for (const RunResult& r : runs) {
    json curve = json::array();
    for (const CurvePoint& p : r.curve)
      curve.push_back({{"step", p.step}, {"train_seconds", p.train_seconds}, {"train_elbo", p.train_elbo},
                       {"grad_variance", p.grad_variance}});
    list.push_back({{"estimator", r.estimator},
                    {"model", model_name(r.model)},
                    {"steps", r.steps},
                    {"samples_per_example", r.samples},
                    {"initial_train_elbo", r.initial_train_elbo},
                    {"train_elbo", r.train_elbo},
                    {"valid_bound", r.valid_bound},
                    {"test_bound", r.test_bound},
                    {"grad_variance", r.grad_variance},
                    {"train_seconds", r.train_seconds},
                    {"steps_per_second", r.steps_per_second},
                    {"multiply_adds_per_step", r.multiply_adds_per_step},
                    {"gmacs_per_second", r.multiply_adds_per_step * r.steps_per_second * 1e-9},
                    {"curve", curve}});
  }
  const json document = {{"command", header.command},
                         {"date", header.date},
                         {"batch", header.settings.batch},
                         {"learning_rate", header.settings.learning_rate},
                         {"prior_learning_rate", header.settings.prior_learning_rate},
                         {"seed", header.settings.seed},
                         {"eval_every", header.options.eval_every},
                         {"variance_repeats", header.options.variance_repeats},
                         {"iw_samples", header.options.iw_samples},
                         {"train_images", header.train_images},
                         {"valid_images", header.valid_images},
                         {"test_images", header.test_images},
                         {"runs", list}};
  write_file(out / "results.json", document.dump(2) + "\n");
}

inline void write_markdown(const std::filesystem::path& out, const ReportHeader& header,
                           const std::vector<RunResult>& runs) {
  std::ostringstream md;
  md << "# Binary VAE on dynamically binarised MNIST\n\n"
     << "Command: `" << header.command << "`  \nDate (UTC): " << header.date << "  \n"
     << "Images: " << header.train_images << " train, " << header.valid_images << " validation, "
     << header.test_images << " test. Batch " << header.settings.batch << ", Adam "
     << format("%g", static_cast<double>(header.settings.learning_rate)) << " (prior logits: SGD "
     << format("%g", static_cast<double>(header.settings.prior_learning_rate)) << "), seed " << header.settings.seed
     << ".\n\n"
     << "| estimator | model | steps | samples | train ELBO (start) | train ELBO | valid bound | test bound | "
        "encoder grad. variance | steps/s | multiply-adds/step | GMAC/s |\n"
     << "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const RunResult& r : runs)
    md << "| " << r.estimator << " | " << model_name(r.model) << " | " << r.steps << " | " << r.samples << " | "
       << format("%.2f", r.initial_train_elbo) << " | " << format("%.2f", r.train_elbo) << " | "
       << format("%.2f", r.valid_bound) << " | " << format("%.2f", r.test_bound) << " | "
       << format("%.3g", r.grad_variance) << " | " << format("%.0f", r.steps_per_second) << " | "
       << format("%.3g", r.multiply_adds_per_step) << " | "
       << format("%.2f", r.multiply_adds_per_step * r.steps_per_second * 1e-9) << " |\n";
  md << "\nTrain ELBO: single-sample ELBO over the training images (each re-binarised), in nats. Bounds: the "
     << header.options.iw_samples
     << "-sample importance-weighted bound. Encoder gradient variance: the per-coordinate variance of "
     << header.options.variance_repeats
     << " estimates of the gradient of the encoder's logit layer (W and b) on one fixed batch, averaged over "
        "the coordinates, at the end of the run. Samples: decoder passes per example and step. "
        "Multiply-adds/step: the Linear layers' products of one step (forward and backward); GMAC/s: those at "
        "the measured steps/s (training steps only, evaluations excluded).\n\nEstimators:\n\n";
  for (const RunResult& r : runs) md << "- `" << r.estimator << "`: " << estimator_description(r.estimator) << "\n";
  md << "\n![ELBO against steps](elbo_vs_steps.png)\n\n![ELBO against training time](elbo_vs_time.png)\n\n"
        "![encoder gradient variance](grad_variance.png)\n";
  write_file(out / "results.md", md.str());
}

/// The curves as gnuplot data, and PNGs when gnuplot is installed. Returns what was written.
inline std::string plot_curves(const std::filesystem::path& out, const std::vector<RunResult>& runs) {
  std::ostringstream data;
  for (const RunResult& r : runs) {
    data << "# " << r.estimator << " (" << model_name(r.model) << "): step train_seconds train_elbo grad_variance\n";
    for (const CurvePoint& p : r.curve)
      data << p.step << " " << p.train_seconds << " " << p.train_elbo << " " << p.grad_variance << "\n";
    data << "\n\n";
  }
  write_file(out / "learning_curves.dat", data.str());
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0)
    return "gnuplot not found: curves written as data only (learning_curves.dat)";
  std::ostringstream script;
  script << "set terminal pngcairo size 900,600\nset grid\nset key bottom right\n";
  const auto plot = [&](const char* file, const char* xlabel, const char* ylabel, int x, int y, bool logy) {
    script << "set output '" << file << "'\nset xlabel '" << xlabel << "'\nset ylabel '" << ylabel << "'\n"
           << (logy ? "set logscale y\n" : "unset logscale y\n") << "plot ";
    for (std::size_t k = 0; k < runs.size(); ++k)
      script << (k ? ", " : "") << "'learning_curves.dat' index " << k << " using " << x << ":" << y
             << " with linespoints title '" << runs[k].estimator << "'";
    script << "\n";
  };
  plot("elbo_vs_steps.png", "training steps", "train ELBO (nats)", 1, 3, false);
  plot("elbo_vs_time.png", "training time (s, evaluations excluded)", "train ELBO (nats)", 2, 3, false);
  plot("grad_variance.png", "training steps", "encoder gradient variance", 1, 4, true);
  write_file(out / "learning_curves.gp", script.str());
  const std::string command = "cd '" + out.string() + "' && gnuplot learning_curves.gp > gnuplot.log 2>&1";
  if (std::system(command.c_str()) != 0)
    return "gnuplot failed (see " + (out / "gnuplot.log").string() + "); the data is in learning_curves.dat";
  return "curves: elbo_vs_steps.png, elbo_vs_time.png, grad_variance.png";
}

}  // namespace binary_vae
