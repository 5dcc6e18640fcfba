// The MNIST experiment of Sec. 5 / App. A: what a variant is, what a run produces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <stoch/data/mnist.hpp>

namespace mnist {

using T = float;  // the paper's models fit comfortably in float; float doubles the SIMD width

/// Figure 2 (right): training criterion, valid and test classification error (fractions, not %).
struct PaperRow {
  double train, valid, test;
};

/// One gater: the seven of Figure 2, then the ones added after the paper (issue 40: gates not in it).
struct VariantSpec {
  std::string name;   ///< command-line name, e.g. "straight-through"
  std::string label;  ///< the paper's row label (our own label for a variant not in the paper)
  int id;             ///< fixed index: selects the variant's random streams, whatever --variants says
  std::optional<PaperRow> paper;  ///< Figure 2's numbers; empty for a variant not in the paper
  int cost_rank = 0;  ///< 0 = the most expensive to train: --threads starts the costly ones first

  bool in_paper() const { return paper.has_value(); }
};

/// Every variant: the seven of Figure 2 in the paper's order, then those not in the paper.
const std::vector<VariantSpec>& all_variants();

/// The seven of Figure 2 (the default of --variants).
std::vector<VariantSpec> paper_variants();

/// Settings shared by all variants (command line).
struct Settings {
  int epochs = 0;
  std::uint64_t seed = 1;
  stoch::Index train_limit = 0;
  stoch::Index batch = 32;        ///< App. A: mini-batches of 32
  stoch::Index eval_batch = 32;   ///< batch size of every evaluation pass (and of the timing)
  double learning_rate = 0.1;     ///< App. A.4
  double learning_rate_decay = 1; ///< rate of epoch e = learning_rate * decay^(e - 1); 1: constant
  /// Evaluate (validate, early-stop, test) the moving average of the parameters, with this decay per step
  /// (stoch::ParameterAverage: a window of about 5,000 steps, 3 epochs); 0: the last iterate, as the paper.
  /// Chosen on straight-through's validation error (CHOICES.md); training itself is unchanged.
  double average_decay = 0.9998;
  /// The average samples the parameters every this many steps (the cost of averaging divided by it).
  int average_every = 16;
  /// SBN gater: App. A.4 gives 0.001 ("100 times smaller"); 0.03 was chosen on the validation set
  /// (CHOICES.md), because with 0.001 the gater barely learns in the epoch budget.
  double sbn_gater_learning_rate = 0.03;
  /// Straight-through gater: App. A.4 gives 0.1 ("a learning rate of 0.1 throughout the architecture");
  /// 0.03 was chosen on the validation set (CHOICES.md): with 0.1 the gater's validation error
  /// swings by up to 0.8 points from epoch to epoch and stops improving after epoch 19.
  double st_gater_learning_rate = 0.03;
  double momentum_sts = 0.5;      ///< App. A.4: "We use momentum for STS" (value not given)
  /// App. A.4: momentum has "little to no effect" on straight-through. 0.7 was chosen on the validation set
  /// (CHOICES.md): paired with the same seeds, it lowered the mean validation error of epochs
  /// 21-50 and 51-100 for each of three seeds. `--st-momentum 0` restores the paper's plain SGD.
  double momentum_st = 0.7;
  /// App. A.4: ST worked best without the sigmoid's derivative; true selects the variant with it.
  bool st_sigmoid_derivative = false;
  /// Straight-through: App. A.2's Beta noise on the sigmoid's input with this beta (> 1); 0: none (the paper's).
  double st_beta_noise = 0;
  double kl_strength = 0;         ///< lambda of Eq. 14 (sigmoid gates); 0: the variant's default
  double target_density = 0.1;    ///< App. A.1
  double firing_rate = 0;         ///< Sec. 2.1 firing-rate control of the rectifiers' offsets (0: off)
  /// App. A.4: a maximum norm of 2 on every unit's incoming weights "works best in most cases"; the ST
  /// and SBN variants use their own bound, chosen on the validation set (CHOICES.md).
  double max_norm = 2.0;
  double st_max_norm = 4.0;
  double sbn_max_norm = 4.0;
  /// L2 weight decay of every weight matrix, every variant (not in the paper; 0: none, the default).
  double weight_decay = 0.0;
  /// Dropout of the input pixels in training (Hinton et al., 2012; not in the paper), every variant but
  /// straight-through; 0: none.
  double input_dropout = 0.0;
  /// Straight-through's own input dropout, chosen on the validation set (CHOICES.md): paired with
  /// the same seeds, 0.2 lowered the mean validation error of epochs 21-50 and 51-100 for each of three seeds.
  double st_input_dropout = 0.2;
  /// The gate layer's initial weights, for every variant but straight-through: every unit's incoming weights
  /// (Glorot-uniform direction) rescaled to this norm (CHOICES.md); 0 keeps the Glorot-uniform draw.
  double gate_init_norm = 2.0;
  /// Straight-through's own initial gate norm, chosen on validation (CHOICES.md): rows of norm 4
  /// spread its gate pre-activations wider, and its gates end up more decisive (App. A.2) than with 2.
  double st_gate_init_norm = 4.0;
  int eval_samples = 10;          ///< K of the "mean over K samples" test-time rule
  int timing_repeats = 3;         ///< evaluation timings: best of this many passes over the test set
  /// Evaluate on the first N validation and test images only (quick runs and CI); 0: all 10,000 of each.
  stoch::Index eval_limit = 0;
  std::filesystem::path out;      ///< checkpoints and results
  bool resume = false;
};

/// What one epoch measured (the learning curve and the diagnostics of the issue).
struct EpochRecord {
  int epoch = 0;                        ///< 1-based
  double train_criterion = 0;           ///< mean training-mode cross-entropy over the epoch's batches
  double sparsity_penalty = 0;          ///< mean Eq. 14 / Eq. 15 value over the epoch's batches
  double train_density = 0;             ///< mean fraction of open gates in training batches
  double train_batch_unit_fraction = 0; ///< mean fraction of expert units some example of a batch needs
  double valid_error = 0;               ///< deterministic network, calibrated threshold (App. A.3)
  double valid_error_stochastic = 0;    ///< training-mode network (one noise sample per example)
  double valid_density = 0;             ///< deterministic gate density on the validation set
  double valid_batch_unit_fraction = 0; ///< same as the training one, deterministic, validation batches
  std::optional<double> indecisive;     ///< fraction of gate probabilities in (0.05, 0.95), if defined
  std::optional<double> threshold;      ///< calibrated test-time threshold, for thresholded gates
  double dead_units = 0;                ///< units never open on the validation set (deterministic)
  double always_on_units = 0;           ///< units open for every validation example
  std::optional<double> l1_lambda;      ///< adaptive L1 strength at the end of the epoch (rectifiers)
  std::optional<double> temperature;    ///< the gate's temperature at the epoch's last step (gumbel-st)
  double seconds = 0;                   ///< wall time of the epoch's training (without evaluation)
  double eval_seconds = 0;              ///< wall time of the epoch's evaluation
};

/// One test-time gate rule (the second table of results.md).
struct GateRuleResult {
  std::string rule;
  double valid_error = 0, test_error = 0, test_density = 0;
};

struct VariantResult {
  VariantSpec spec;
  int epochs = 0;       ///< epochs trained
  int best_epoch = 0;   ///< epoch whose parameters are reported (lowest deterministic valid error)
  double train_criterion = 0, valid_error = 0, test_error = 0, gate_density = 0;
  double eval_seconds_sparse = 0, eval_seconds_dense = 0, train_seconds = 0;
  /// The skipping pass with every gate closed (0 for gates that never close): the gater and output layer
  /// alone, so eval_seconds_dense / eval_seconds_closed bounds the speed-up on the machine that measured it.
  double eval_seconds_closed = 0;
  stoch::Index units = 0;
  std::vector<EpochRecord> curve;
  std::vector<GateRuleResult> gate_rules;
  std::vector<std::pair<std::string, std::string>> settings;  ///< the variant's hyper-parameters, for the record
};

/// Progress reporting, shared by the threads (implemented in main.cpp).
struct Progress {
  std::function<void(const std::string& variant, const std::string& status)> status;  ///< transient
  std::function<void(const std::string& line)> line;                                  ///< permanent
};

/// A trained variant: its result so far, and the timing of its evaluation with and without skipping, kept
/// for later so that the caller can run it when no other variant is training (a busy second core shares
/// L3 and memory bandwidth and would skew the ratio). `time_evaluation` fills eval_seconds_*; it keeps the
/// trained network alive until it is destroyed.
struct TrainedVariant {
  VariantResult result;
  std::function<void(VariantResult&)> time_evaluation;
};

/// Trains (or resumes) one variant and evaluates its errors. Single-threaded; safe to call from several
/// threads for different variants.
TrainedVariant run_variant(const VariantSpec& spec, const Settings& settings, const stoch::Mnist<T>& data,
                           const Progress& progress);

}  // namespace mnist
