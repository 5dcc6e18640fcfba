// estimator_lab — every gradient estimator of the library for binary units against the exact gradient of the
// expected loss on small networks (computed by enumerating the 2^n binary vectors): bias in standard errors,
// variance, cosine to the exact gradient, cost. Writes results.json, results.md and variance_vs_cost.png.
// See examples/estimator_lab/README.md.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <stoch/core/error.hpp>
#include <stoch/version.hpp>

#include "../common/result_files.hpp"
#include "estimators.hpp"

namespace {

using nlohmann::json;

/// Default budget: every estimator on the three default networks in about a minute on one core (README.md).
constexpr long kDefaultEstimates = 1000000;

struct Row {
  std::size_t network = 0;  ///< index into the networks
  const lab::Estimator* estimator = nullptr;
  lab::Measurement measurement;
  lab::Summary summary;
};

struct NetworkResult {
  lab::NetworkSpec spec;
  lab::Index parameters = 0;
  double expected_loss = 0;
  double gradient_norm = 0;
  double enumeration_seconds = 0;
  double finite_difference_error = 0;  ///< largest |central difference - exact| over the parameters
};

using stoch_examples::format;

using stoch_examples::write_file;

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, ','))
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

std::string table(const std::vector<Row>& rows, std::size_t network) {
  std::ostringstream md;
  md << "| estimator | unbiased | evaluations | bias_se | relative bias | variance | relative variance | "
        "rel. variance x evaluations | cosine | cosine of mean | us / estimate |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    if (r.network != network) continue;
    const lab::Summary& s = r.summary;
    md << "| " << r.estimator->name << " | " << (r.estimator->unbiased ? "yes" : "no") << " | "
       << r.estimator->samples << " | " << format("%.2f", s.bias_se) << " | " << format("%.4f", s.relative_bias)
       << " | " << format("%.3g", s.variance) << " | " << format("%.3g", s.relative_variance) << " | "
       << format("%.3g", s.relative_variance * static_cast<double>(r.estimator->samples)) << " | "
       << format("%.3f", s.cosine) << " | " << format("%.4f", s.cosine_of_mean) << " | "
       << format("%.2f", s.time_per_estimate_us) << " |\n";
  }
  return md.str();
}

/// The estimators of each cost, by relative variance (lowest first; biased ones marked), for one network.
std::string equal_cost(const std::vector<Row>& rows, std::size_t network) {
  std::map<lab::Index, std::vector<const Row*>> by_cost;
  for (const Row& r : rows)
    if (r.network == network) by_cost[r.estimator->samples].push_back(&r);
  std::ostringstream md;
  md << "At equal cost, relative variance (lowest first; * biased):";
  for (auto& [cost, group] : by_cost) {
    std::sort(group.begin(), group.end(), [](const Row* a, const Row* b) {
      return a->summary.relative_variance < b->summary.relative_variance;
    });
    md << (cost == by_cost.begin()->first ? " " : "; ") << cost << " evaluation" << (cost > 1 ? "s" : "") << ":";
    for (std::size_t j = 0; j < group.size(); ++j)
      md << (j ? "," : "") << " " << group[j]->estimator->name << (group[j]->estimator->unbiased ? "" : "*") << " "
         << format("%.3g", group[j]->summary.relative_variance);
  }
  md << ".\n";
  return md.str();
}

json results_json(const std::vector<NetworkResult>& networks, const std::vector<Row>& rows,
                  const lab::EstimatorSettings& settings, long estimates, std::uint64_t seed,
                  const std::string& command, double wall_seconds) {
  json out;
  out["command"] = command;
  out["date"] = utc_now();
  out["stoch_version"] = std::string(stoch::version);
  out["estimates"] = estimates;
  out["seed"] = seed;
  out["temperature"] = settings.temperature;
  out["slope"] = settings.slope;
  out["average_rate"] = settings.average_rate;
  out["wall_seconds"] = wall_seconds;
  out["networks"] = json::array();
  for (const NetworkResult& n : networks)
    out["networks"].push_back({{"name", n.spec.name()},
                               {"units", n.spec.units},
                               {"inputs", n.spec.inputs},
                               {"classes", n.spec.classes},
                               {"examples", n.spec.examples},
                               {"seed", n.spec.seed},
                               {"parameters", n.parameters},
                               {"expected_loss", n.expected_loss},
                               {"exact_gradient_norm", n.gradient_norm},
                               {"enumeration_seconds", n.enumeration_seconds},
                               {"exact_gradient_finite_difference_error", n.finite_difference_error}});
  // One entry per estimator and network; non-finite numbers are written as null by nlohmann-json.
  out["estimators"] = json::array();
  for (const Row& r : rows) {
    const lab::Summary& s = r.summary;
    out["estimators"].push_back({{"name", r.estimator->name},
                                 {"gate", r.estimator->gate},
                                 {"network", networks[r.network].spec.name()},
                                 {"units", networks[r.network].spec.units},
                                 {"unbiased", r.estimator->unbiased},
                                 {"evaluations", r.estimator->samples},
                                 {"antithetic", r.estimator->antithetic},
                                 {"estimates", r.measurement.estimates},
                                 {"warmup_estimates", r.measurement.warmup},
                                 {"bias_se", s.bias_se},
                                 {"relative_bias", s.relative_bias},
                                 {"relative_standard_error", s.relative_se},
                                 {"variance", s.variance},
                                 {"relative_variance", s.relative_variance},
                                 {"relative_variance_x_evaluations",
                                  s.relative_variance * static_cast<double>(r.estimator->samples)},
                                 {"cosine", s.cosine},
                                 {"cosine_of_mean", s.cosine_of_mean},
                                 {"time_per_estimate_us", s.time_per_estimate_us}});
  }
  return out;
}

std::string markdown(const std::vector<NetworkResult>& networks, const std::vector<Row>& rows,
                     const lab::EstimatorSettings& settings, long estimates, const std::string& command) {
  std::ostringstream md;
  md << "# Estimator lab\n\n`" << command << "`, " << utc_now() << ". " << estimates
     << " estimates per estimator and network; gumbel temperature " << settings.temperature << ", slope-st slope "
     << settings.slope << ". Columns: README.md of examples/estimator_lab.\n\n";
  for (std::size_t k = 0; k < networks.size(); ++k) {
    const NetworkResult& n = networks[k];
    md << "## " << n.spec.name() << " (" << n.spec.inputs << " inputs, " << n.spec.classes << " classes, "
       << n.spec.examples << " examples, " << n.parameters << " parameters; J = " << format("%.4f", n.expected_loss)
       << ", ||dJ|| = " << format("%.4f", n.gradient_norm) << ", largest difference from central differences "
       << format("%.1e", n.finite_difference_error) << ")\n\n"
       << table(rows, k) << "\n" << equal_cost(rows, k) << "\n";
  }
  md << "![variance against cost](variance_vs_cost.png)\n";
  return md.str();
}

/// variance_vs_cost.png: relative variance against loss evaluations per estimate (both log scale), one panel
/// per network, one symbol per estimator: filled for the unbiased ones, open for the biased ones, whose key
/// entry gives the relative bias on that network. Estimators of equal cost are spread a little along x so
/// that their symbols do not cover each other.
std::string plot(const std::filesystem::path& out, const std::vector<NetworkResult>& networks,
                 const std::vector<Row>& rows, const std::vector<const lab::Estimator*>& estimators) {
  const auto position = [&](const lab::Estimator* e) {
    return static_cast<std::size_t>(std::find(estimators.begin(), estimators.end(), e) - estimators.begin());
  };
  std::ostringstream data;
  for (std::size_t k = 0; k < networks.size(); ++k) {
    data << "# " << networks[k].spec.name() << ": x (evaluations, spread), relative variance, estimator\n";
    std::map<lab::Index, std::vector<const Row*>> by_cost;
    for (const Row& r : rows)
      if (r.network == k) by_cost[r.estimator->samples].push_back(&r);
    for (const auto& [cost, group] : by_cost)
      for (std::size_t j = 0; j < group.size(); ++j) {
        const double spread =
            std::pow(2.0, 0.08 * (static_cast<double>(j) - 0.5 * static_cast<double>(group.size() - 1)));
        data << format("%.6g", static_cast<double>(cost) * spread) << " "
             << format("%.6g", group[j]->summary.relative_variance) << " " << position(group[j]->estimator) << "\n";
      }
    data << "\n\n";
  }
  write_file(out / "variance_vs_cost.dat", data.str());
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0)
    return "gnuplot not found: the plot's data is in variance_vs_cost.dat; install gnuplot (Debian: gnuplot-nox) "
           "to get variance_vs_cost.png";
  static constexpr const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                             "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000", "#aec7e8",
                                             "#98df8a"};
  static constexpr int kFilled[] = {7, 5, 9, 11, 13, 15}, kOpen[] = {6, 4, 8, 10, 12, 14};
  const std::size_t panels = networks.size(), columns = std::min<std::size_t>(panels, 3),
                    lines = (panels + columns - 1) / columns;
  std::ostringstream script;
  script << "set terminal pngcairo size " << 520 * columns << "," << 640 * lines << " font ',9'\n"
         << "set output 'variance_vs_cost.png'\n"
         << "set multiplot layout " << lines << "," << columns
         << " title 'Variance of one estimate against its cost (filled: unbiased; open: biased, with its relative "
            "bias ||E g - dJ|| / ||dJ||)'\n"
         << "set logscale xy\nset xrange [0.6:6]\nset xtics (1, 2, 4)\nset grid\n"
         << "set key below maxrows 6 font ',8' samplen 1\n"
         << "set xlabel 'loss evaluations per example and estimate'\n"
         << "set ylabel 'relative variance  E||g - E g||^2 / ||dJ||^2'\n";
  for (std::size_t k = 0; k < panels; ++k) {
    script << "set title '" << networks[k].spec.name() << "'\nplot ";
    std::size_t filled = 0, open = 0;
    for (std::size_t e = 0; e < estimators.size(); ++e) {
      const auto found = std::find_if(rows.begin(), rows.end(), [&](const Row& r) {
        return r.network == k && r.estimator == estimators[e];
      });
      std::string title = estimators[e]->name;
      const bool unbiased = estimators[e]->unbiased;
      if (!unbiased && found != rows.end()) title += " (bias " + format("%.2f", found->summary.relative_bias) + ")";
      const int point = unbiased ? kFilled[filled++ % 6] : kOpen[open++ % 6];
      script << (e ? ", " : "") << "'variance_vs_cost.dat' index " << k << " using 1:($3 == " << e
             << " ? $2 : 1/0) with points pt " << point << " ps 1.4 lc rgb '" << kColours[e % std::size(kColours)] << "' title '"
             << title << "'";
    }
    script << "\n";
  }
  script << "unset multiplot\n";
  write_file(out / "variance_vs_cost.gp", script.str());
  const std::string command = "cd '" + out.string() + "' && gnuplot variance_vs_cost.gp > gnuplot.log 2>&1";
  if (std::system(command.c_str()) != 0)
    return "gnuplot failed (see " + (out / "gnuplot.log").string() + "); the data is in variance_vs_cost.dat";
  std::filesystem::remove(out / "gnuplot.log");
  return "plot: " + (out / "variance_vs_cost.png").string();
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"estimator_lab: the library's gradient estimators for binary units against the exact gradient "
               "(enumeration of 2^n binary vectors)"};
  std::string out_dir, network_list = "4,8,12", estimator_list;
  long estimates = kDefaultEstimates;
  std::uint64_t seed = 1;
  lab::NetworkSpec shape;
  lab::EstimatorSettings settings;
  app.add_option("--out", out_dir, "write results.json, results.md and variance_vs_cost.png into this directory");
  app.add_option("--estimates", estimates, "estimates per estimator and network")
      ->capture_default_str()
      ->check(CLI::Range(2L, 1000000000L));
  app.add_option("--networks", network_list, "comma-separated unit counts of the networks, each 1 .. 16")
      ->capture_default_str();
  app.add_option("--estimators", estimator_list, "comma-separated estimator names (default: all)");
  app.add_option("--seed", seed, "seed of the estimates (the networks have fixed seeds)")->capture_default_str();
  app.add_option("--inputs", shape.inputs, "input features of every network")->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--classes", shape.classes, "classes of every network")->capture_default_str()
      ->check(CLI::Range(2, 64));
  app.add_option("--examples", shape.examples, "examples in the batch of one estimate")->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--temperature", settings.temperature, "temperature of gumbel and gumbel-st")->capture_default_str();
  app.add_option("--slope", settings.slope, "slope of slope-st")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string command = "estimator_lab";
  for (int k = 1; k < argc; ++k) command += std::string(" ") + argv[k];

  const std::vector<lab::Estimator> all = lab::all_estimators(settings);
  std::vector<const lab::Estimator*> chosen;
  if (estimator_list.empty()) {
    for (const lab::Estimator& e : all) chosen.push_back(&e);
  } else {
    for (const std::string& name : split(estimator_list)) {
      const auto found = std::find_if(all.begin(), all.end(), [&](const lab::Estimator& e) { return e.name == name; });
      if (found == all.end()) {
        std::string names;
        for (const lab::Estimator& e : all) names += (names.empty() ? "" : ", ") + e.name;
        std::cerr << "estimator_lab: unknown estimator '" << name << "'; the estimators are " << names << "\n";
        return 2;
      }
      chosen.push_back(&*found);
    }
  }
  std::vector<NetworkResult> networks;
  for (const std::string& units : split(network_list)) {
    lab::NetworkSpec spec = shape;
    std::size_t used = 0;
    spec.units = std::stol(units, &used);
    if (used != units.size()) {
      std::cerr << "estimator_lab: --networks takes unit counts, got '" << units << "'\n";
      return 2;
    }
    // Fixed per unit count, so that `--networks 8` is the default run's 8-unit network.
    spec.seed = 20260000 + static_cast<std::uint64_t>(spec.units);
    NetworkResult result;
    result.spec = spec;
    networks.push_back(result);
  }
  if (networks.empty() || chosen.empty()) {
    std::cerr << "estimator_lab: nothing to run (no network or no estimator)\n";
    return 2;
  }
  // Test the temperature and slope once, with the gates' own messages, before any work.
  stoch::GumbelSigmoid<double>(1, {.temperature = settings.temperature});
  stoch::SlopeAnnealedStraightThrough<double>(1, {.slope = settings.slope});

  const auto wall_start = std::chrono::steady_clock::now();
  std::vector<Row> rows;
  for (std::size_t k = 0; k < networks.size(); ++k) {
    NetworkResult& n = networks[k];
    lab::BinaryNetwork net(n.spec);
    lab::Vector<double> exact;
    const auto start = std::chrono::steady_clock::now();
    n.expected_loss = net.exact(exact);
    n.enumeration_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    n.parameters = net.parameter_count();
    n.gradient_norm = exact.norm();
    // The reference itself checked: the enumerated gradient against central differences of the enumerated J
    // (step 1e-5: truncation error ~1e-10, rounding ~1e-11 for J ~ 1).
    n.finite_difference_error = net.finite_difference_error();
    std::printf("%s: %ld parameters, J = %.4f, ||dJ|| = %.4f (exact, 2^%ld states per example; largest difference "
                "from central differences %.1e)\n",
                n.spec.name().c_str(), static_cast<long>(n.parameters), n.expected_loss, n.gradient_norm,
                static_cast<long>(n.spec.units), n.finite_difference_error);
    if (!(n.finite_difference_error < 1e-6)) {
      std::cerr << "estimator_lab: the exact gradient of the " << n.spec.name() << " network differs from central "
                << "differences of its expected loss by " << n.finite_difference_error << "\n";
      return 1;
    }
    for (std::size_t e = 0; e < chosen.size(); ++e) {
      // Each (network, estimator) has its own stream: a run of a subset gives the same numbers as the full run.
      const auto index = static_cast<std::uint64_t>(
          std::find_if(all.begin(), all.end(), [&](const lab::Estimator& x) { return &x == chosen[e]; }) -
          all.begin());
      stoch::Generator rng(seed, 1000 * static_cast<std::uint64_t>(n.spec.units) + index);
      Row row{k, chosen[e], chosen[e]->run(net, rng, estimates, exact), {}};
      row.summary = lab::summarize(row.measurement, exact);
      std::printf("  %-26s bias_se %8.2f  relative bias %.4f  relative variance %10.4g  cosine %6.3f  %7.2f us\n",
                  chosen[e]->name.c_str(), row.summary.bias_se, row.summary.relative_bias,
                  row.summary.relative_variance, row.summary.cosine, row.summary.time_per_estimate_us);
      std::fflush(stdout);
      rows.push_back(std::move(row));
    }
  }
  const double wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  std::printf("%.1f s\n", wall_seconds);
  if (!out_dir.empty()) {
    const std::filesystem::path out(out_dir);
    std::filesystem::create_directories(out);
    write_file(out / "results.json",
               results_json(networks, rows, settings, estimates, seed, command, wall_seconds).dump(2) + "\n");
    write_file(out / "results.md", markdown(networks, rows, settings, estimates, command));
    std::printf("results: %s, results.md\n%s\n", (out / "results.json").string().c_str(),
                plot(out, networks, rows, chosen).c_str());
  }
  return 0;
} catch (const std::exception& error) {
  std::cerr << "estimator_lab: " << error.what() << "\n";
  return 1;
}
