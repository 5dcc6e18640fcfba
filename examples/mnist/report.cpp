// results.json, results.md and the learning curves of the MNIST experiment.
#include "report.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include "../common/result_files.hpp"

namespace mnist {

namespace {

using nlohmann::json;

using stoch_examples::format;

std::string percent(double fraction) { return format("%.2f", 100 * fraction); }

/// `text` inside a single-quoted gnuplot string, where a quote is written twice.
std::string gnuplot_quoted(const std::string& text) {
  std::string out;
  for (const char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

/// The row label of the markdown tables: a variant not in the paper is marked (kNotInPaperNote).
std::string label(const VariantSpec& v) { return v.in_paper() ? v.label : v.label + " †"; }
constexpr const char* kNotInPaperNote =
    "† not in the paper (issue 40): gates published after it, each in the place of the paper's gater named in "
    "parentheses, with that variant's network and settings (CHOICES.md); no paper numbers to compare with.";

using stoch_examples::write_file;

json optional(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

json curve_json(const EpochRecord& r) {
  json record = {{"epoch", r.epoch},
                 {"train_criterion", r.train_criterion},
                 {"sparsity_penalty", r.sparsity_penalty},
                 {"train_density", r.train_density},
                 {"train_batch_unit_fraction", r.train_batch_unit_fraction},
                 {"valid_error", r.valid_error},
                 {"valid_error_stochastic", r.valid_error_stochastic},
                 {"valid_density", r.valid_density},
                 {"valid_batch_unit_fraction", r.valid_batch_unit_fraction},
                 {"indecisive_fraction", optional(r.indecisive)},
                 {"threshold", optional(r.threshold)},
                 {"dead_units", r.dead_units},
                 {"always_on_units", r.always_on_units},
                 {"l1_lambda", optional(r.l1_lambda)},
                 {"train_seconds", r.seconds},
                 {"eval_seconds", r.eval_seconds}};
  if (r.temperature) record["temperature"] = *r.temperature;  // (only for a gate that has one)
  return record;
}

json variant_json(const VariantResult& v) {
  json settings = json::object();
  for (const auto& [key, value] : v.settings) settings[key] = value;
  json curve = json::array(), rules = json::array();
  for (const EpochRecord& r : v.curve) curve.push_back(curve_json(r));
  for (const GateRuleResult& g : v.gate_rules)
    rules.push_back({{"rule", g.rule}, {"valid_error", g.valid_error}, {"test_error", g.test_error},
                     {"gate_density", g.test_density}});
  return {{"name", v.spec.name},
          {"label", v.spec.label},
          {"in_paper", v.spec.in_paper()},
          {"epochs", v.epochs},
          {"best_epoch", v.best_epoch},
          {"train_criterion", v.train_criterion},
          {"valid_error", v.valid_error},
          {"test_error", v.test_error},
          {"gate_density", v.gate_density},
          {"eval_seconds_sparse", v.eval_seconds_sparse},
          {"eval_seconds_dense", v.eval_seconds_dense},
          {"eval_speedup", v.eval_seconds_sparse > 0 ? v.eval_seconds_dense / v.eval_seconds_sparse : 0.0},
          {"eval_seconds_gates_closed", v.eval_seconds_closed > 0 ? json(v.eval_seconds_closed) : json(nullptr)},
          {"eval_speedup_bound", v.eval_seconds_closed > 0 ? json(v.eval_seconds_dense / v.eval_seconds_closed)
                                                          : json(nullptr)},
          {"train_seconds", v.train_seconds},
          {"units", v.units},
          {"settings", settings},
          {"gate_rules", rules},
          {"curve", curve}};
}

json paper_json() {
  json rows = json::object();
  for (const VariantSpec& v : all_variants())
    if (v.paper)
      rows[v.name] = {{"label", v.label},
                      {"train_criterion", v.paper->train},
                      {"valid_error", v.paper->valid},
                      {"test_error", v.paper->test}};
  return {{"source", "Bengio, Leonard, Courville (2013), Figure 2 (right), MNIST"}, {"variants", rows}};
}

/// The bound measured on this machine: the skipping pass with every gate closed costs the gater only (the
/// output layer skips every input), so no expert kernel, however fast, can make skipping faster than
/// dense / closed.
std::string measured_bound_table(const std::vector<VariantResult>& results) {
  std::ostringstream out;
  out << "Measured on this machine: the same timed pass with every gate closed (a threshold above any score) "
         "is the gater alone (the output layer then adds only its bias), what skipping would cost with a free "
         "expert; dense / closed bounds the speed-up here, whatever the expert kernel.\n\n"
         "| gater | eval dense s | eval skipping s | eval every gate closed s | speed-up | bound (dense / closed) |\n"
         "|---|---|---|---|---|---|\n";
  bool any = false;
  for (const VariantResult& v : results) {
    if (v.eval_seconds_closed <= 0 || v.eval_seconds_sparse <= 0) continue;
    any = true;
    out << "| " << label(v.spec) << " | " << format("%.3f", v.eval_seconds_dense) << " | "
        << format("%.3f", v.eval_seconds_sparse) << " | " << format("%.3f", v.eval_seconds_closed) << " | "
        << format("%.2fx", v.eval_seconds_dense / v.eval_seconds_sparse) << " | "
        << format("%.2fx", v.eval_seconds_dense / v.eval_seconds_closed) << " |\n";
  }
  return any ? out.str() + "\n" : std::string();
}

/// Multiply-accumulates per test example of the network of App. A: the gater, the expert, the output layer.
struct Cost {
  double gater, expert, output;
};
Cost cost(stoch::Index units) {
  return {784.0 * 400 + 400.0 * static_cast<double>(units), 784.0 * static_cast<double>(units),
          static_cast<double>(units) * 10};
}

}  // namespace

RunInfo describe_run(int argc, char** argv, int threads, const std::string& data_dir) {
  return stoch_examples::describe_run("mnist", argc, argv, threads, data_dir);
}

std::string figure2_table(const std::vector<VariantResult>& results) {
  std::ostringstream out;
  out << "| gater | epochs (best) | train crit. | paper | valid % | paper | test % | paper | test gate density | "
         "eval dense s | eval skipping s | speed-up |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  bool added = false;
  for (const VariantResult& v : results) {
    const std::optional<PaperRow>& paper = v.spec.paper;
    added = added || !paper;
    out << "| " << label(v.spec) << " | " << v.epochs << " (" << v.best_epoch << ") | "
        << format("%.1e", v.train_criterion) << " | " << (paper ? format("%.1e", paper->train) : "–") << " | "
        << percent(v.valid_error) << " | " << (paper ? percent(paper->valid) : "–") << " | "
        << percent(v.test_error) << " | " << (paper ? percent(paper->test) : "–") << " | "
        << format("%.3f", v.gate_density)
        << (v.units != 2000 ? " of " + std::to_string(v.units) : std::string()) << " | "
        << format("%.3f", v.eval_seconds_dense) << " | " << format("%.3f", v.eval_seconds_sparse) << " | "
        << format("%.2fx", v.eval_seconds_sparse > 0 ? v.eval_seconds_dense / v.eval_seconds_sparse : 0.0) << " |\n";
  }
  if (added) out << "\n" << kNotInPaperNote << "\n";
  return out.str();
}

void write_results(const std::filesystem::path& out, const std::vector<VariantResult>& results,
                   const Settings& settings, const RunInfo& info) {
  json variants = json::array();
  for (const VariantResult& v : results) variants.push_back(variant_json(v));
  const json machine = {{"date", info.date},         {"cpu", info.cpu},
                        {"hardware_threads", info.hardware_threads}, {"threads", info.threads},
                        {"compiler", info.compiler}, {"eigen", info.eigen},
                        {"wall_seconds", info.wall_seconds}, {"command", info.command_line}};
  json run = {{"epochs", settings.epochs},           {"seed", settings.seed},
              {"train_limit", settings.train_limit}, {"batch", settings.batch},
              {"eval_batch", settings.eval_batch},   {"learning_rate", settings.learning_rate},
              {"target_density", settings.target_density}, {"max_norm", settings.max_norm},
              {"eval_samples", settings.eval_samples}};
  if (settings.eval_limit > 0) run["eval_limit"] = settings.eval_limit;  // (only when used)
  const json document = {{"variants", variants}, {"paper", paper_json()}, {"machine", machine}, {"settings", run}};
  write_file(out / "results.json", document.dump(2) + "\n");

  std::ostringstream md;
  md << "# MNIST, Figure 2 (right) of Bengio, Léonard, Courville (2013), re-measured\n\n"
     << "Produced by `" << info.command_line << "` on " << info.date << ", " << info.cpu << ", "
     << info.threads << " thread(s) of " << info.hardware_threads << ", " << info.compiler << ", Eigen "
     << info.eigen << "; wall time " << format("%.0f", info.wall_seconds) << " s.\n\n"
     << "Errors are classification errors in % (paper: Figure 2, right). The model reported for each variant is "
        "the epoch with the lowest deterministic validation error (in parentheses). Validation and test use the "
        "deterministic network; the stochastic gates use a threshold calibrated on the validation set to a "
     << format("%.0f", 100 * settings.target_density)
     << "% gate density (App. A.3). Gate density: fraction of gates open on the test set (the sigmoid "
        "baselines have 200 units, all open: the same compute as 10% of 2000). Evaluation times: the "
     << (settings.eval_limit > 0 ? "first " + std::to_string(settings.eval_limit) : std::string("10,000"))
     << " test images, batches of "
     << settings.eval_batch << ", best of " << settings.timing_repeats
     << " passes, dense product vs skipping closed gates.\n\n"
     << figure2_table(results) << "\n";
  const Cost c = cost(2000);
  const double dense = c.gater + c.expert + c.output,
               sparse = c.gater + settings.target_density * (c.expert + c.output);
  md << "Bound on the speed-up: per example the gater costs " << format("%.0f", c.gater) << " multiply-adds (784·400 "
     << "+ 400·2000), the expert " << format("%.0f", c.expert) << " (784·2000) and the output layer "
     << format("%.0f", c.output) << " (2000·10); skipping 90% of the expert, and of the output layer's inputs, "
     << "leaves " << format("%.0f", sparse) << " of "
     << format("%.0f", dense) << ", so skipping can remove at most " << format("%.2f", dense / sparse)
     << "x of the multiply-adds in this architecture. A measured ratio somewhat above that comes from the "
        "work that is not multiply-adds: the dense path also adds the bias to and multiplies the mask into "
        "the whole 2000 x 32 expert output of every batch.\n\n"
     << measured_bound_table(results);

  md << "## Test-time gate rules\n\nThe main table uses the paper's rule. Here the same trained models "
        "(best epoch) with other rules: `p > 0.5` thresholds each gate's probability of being open at 1/2; "
        "`one sample` runs the stochastic network once; `mean of K samples` averages the softmax outputs of K "
        "stochastic passes (density: mean over the samples).\n\n"
        "| gater | rule | valid % | test % | test gate density |\n|---|---|---|---|---|\n";
  for (const VariantResult& v : results)
    for (const GateRuleResult& g : v.gate_rules)
      md << "| " << label(v.spec) << " | " << g.rule << " | " << percent(g.valid_error) << " | "
         << percent(g.test_error) << " | " << format("%.3f", g.test_density) << " |\n";

  md << "\n## Diagnostics at the reported epoch (validation set)\n\n"
        "| gater | valid % deterministic | valid % stochastic | train density | indecisive gates | threshold | "
        "dead units | always-on units | expert units a training batch needs |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const VariantResult& v : results) {
    if (v.best_epoch == 0) continue;
    const EpochRecord& r = v.curve[static_cast<std::size_t>(v.best_epoch - 1)];
    md << "| " << label(v.spec) << " | " << percent(r.valid_error) << " | " << percent(r.valid_error_stochastic)
       << " | " << format("%.3f", r.train_density) << " | "
       << (r.indecisive ? format("%.3f", *r.indecisive) : std::string("–")) << " | "
       << (r.threshold ? format("%.4g", *r.threshold) : std::string("–")) << " | " << format("%.0f", r.dead_units)
       << " | " << format("%.0f", r.always_on_units) << " | " << format("%.3f", r.train_batch_unit_fraction)
       << " |\n";
  }
  md << "\nIndecisive gates: fraction of gate probabilities in (0.05, 0.95) (App. A.2); for the noisy rectifier "
        "the probability of being open, Φ(a + c). Dead: never open on the validation set; always-on: open for "
        "every validation example.\n\n![learning curves](learning_curves.svg)\n";
  write_file(out / "results.md", md.str());
}

std::string plot_learning_curves(const std::filesystem::path& out, const std::vector<VariantResult>& results) {
  std::ostringstream data;
  for (const VariantResult& v : results) {
    data << "# " << v.spec.label << "\n";
    for (const EpochRecord& r : v.curve) data << r.epoch << " " << 100 * r.valid_error << "\n";
    data << "\n\n";
  }
  write_file(out / "learning_curves.dat", data.str());
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0)
    return "gnuplot not found: learning curves written as data only (learning_curves.dat); install gnuplot "
           "(Debian: gnuplot-nox) to get learning_curves.svg";
  std::ostringstream script;
  script << "set xlabel 'epoch'\nset ylabel 'validation error (%, log scale)'\n"
            "set title 'MNIST learning curves (cf. Figure 2, left)'\nset key top right\nset grid\n"
            "set logscale y\nset mytics 10\nset format y '%g'\n";
  std::string plot = "plot ";
  for (std::size_t k = 0; k < results.size(); ++k)
    plot += (k ? ", " : "") + std::string("'learning_curves.dat' index ") + std::to_string(k) +
            " with linespoints title '" + gnuplot_quoted(label(results[k].spec)) + "'";
  script << "set terminal svg size 900,600 dynamic\nset output 'learning_curves.svg'\n" << plot << "\n";
  script << "set terminal pngcairo size 900,600\nset output 'learning_curves.png'\n" << plot << "\n";
  write_file(out / "learning_curves.gp", script.str());
  const std::string command = "cd '" + out.string() + "' && gnuplot learning_curves.gp > gnuplot.log 2>&1";
  if (std::system(command.c_str()) != 0)
    return "gnuplot failed (see " + (out / "gnuplot.log").string() + "); the data is in learning_curves.dat";
  return "learning curves: " + (out / "learning_curves.svg").string() + " and learning_curves.png";
}

}  // namespace mnist
