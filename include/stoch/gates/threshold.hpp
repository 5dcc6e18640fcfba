// stoch — test-time thresholds (App. A.3): choose t so that the fraction of gate scores above t hits a target.
//
// The paper: "simply thresholding sigmoids at 0.5 does not yield the right proportion of 0's. Instead, we
// optimized a threshold to achieve the target proportion of 1's (10%) when running in deterministic mode."
// Every thresholded gate exposes, after an evaluation forward, `scores()` (what it compares with t) and
// `set_threshold(t)`. Calibrate either exactly on a span of scores (calibrate_threshold), or over a whole
// validation set in bounded memory (ScoreHistogram).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"

namespace stoch {

namespace internal {

inline void check_fraction(const char* what, double fraction) {
  if (!(fraction >= 0.0 && fraction <= 1.0))
    fail(std::string(what) + ": target_fraction must be in [0, 1], got " + std::to_string(fraction));
}

/// Among the candidate thresholds j = 0..last that are `achievable(j)`, the one whose count of scores
/// strictly above, `count_above(j)`, is closest to `goal`; on a tie the smaller count (the sparser, cheaper
/// gate). `count_above(j)` must be non-increasing in j; at least one j must be achievable (else 0).
template <class CountAbove, class Achievable>
std::int64_t closest_index(std::int64_t last, double goal, CountAbove count_above, Achievable achievable) {
  std::int64_t best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j <= last; ++j) {
    if (!achievable(j)) continue;
    const double distance = std::abs(static_cast<double>(count_above(j)) - goal);
    if (distance <= best_distance) {  // later j = fewer above: ties go to the sparser choice
      best_distance = distance;
      best = j;
    }
  }
  return best;
}

}  // namespace internal

/// A gate with a calibratable test-time threshold (App. A.3): scores() after an evaluation forward, and t.
template <class G>
concept Thresholded = requires(G& g, const G& cg) {
  cg.scores();
  g.set_threshold(typename G::Scalar(0));
  cg.threshold();
};

/// Returns t such that the fraction of `scores` strictly greater than t is as close as possible to
/// `target_fraction` (in [0, 1]). With ties only some fractions are achievable (all equal scores are on the
/// same side of t); on a tie in distance the smaller fraction wins. t lies half-way between the last score
/// kept above and the first left below (so it generalises to unseen scores); when everything must be above,
/// t is just below the smallest score; when nothing, t is the largest score. Copies and sorts the scores:
/// O(n log n) time, O(n) memory. Throws stoch::Error on an empty span or a NaN score.
template <class T>
T calibrate_threshold(std::span<const T> scores, T target_fraction) {
  internal::check_fraction("calibrate_threshold", static_cast<double>(target_fraction));
  if (scores.empty()) internal::fail("calibrate_threshold: no scores");
  std::vector<T> sorted(scores.begin(), scores.end());
  if (std::any_of(sorted.begin(), sorted.end(), [](T s) { return std::isnan(s); }))
    internal::fail("calibrate_threshold: a score is NaN");
  std::sort(sorted.begin(), sorted.end(), std::greater<T>());
  const auto n = static_cast<std::int64_t>(sorted.size());
  const double goal = static_cast<double>(target_fraction) * static_cast<double>(n);
  // Candidate j keeps c = n - j scores above t (so c falls as j grows): achievable iff c is 0, n, or splits
  // two different values.
  const std::int64_t best = n - internal::closest_index(
                                    n, goal, [&](std::int64_t j) { return n - j; },
                                    [&](std::int64_t j) {
                                      const std::int64_t c = n - j;
                                      return c == 0 || c == n || sorted[c - 1] > sorted[c];
                                    });
  if (best == 0) return sorted[0];
  if (best == n) return std::nextafter(sorted[n - 1], -std::numeric_limits<T>::infinity());
  const T above = sorted[best - 1], below = sorted[best];
  const T middle = below / 2 + above / 2;
  return (middle >= below && middle < above) ? middle : below;
}

/// The same for a matrix of scores, e.g. a gate's `scores()` after an evaluation forward (any shape).
template <class T>
T calibrate_threshold(const Matrix<T>& scores, T target_fraction) {
  return calibrate_threshold(std::span<const T>(scores.data(), static_cast<std::size_t>(scores.size())),
                             target_fraction);
}

/// Accumulates gate scores over many batches in bounded memory, for calibrating t over a whole validation
/// set: a histogram of `bins` equal bins on [lower, upper], plus the counts at or below `lower` and above
/// `upper`. Bin k holds scores in (lower + k w, lower + (k + 1) w], w = (upper - lower) / bins, so the
/// number of scores above every bin edge is known exactly (up to rounding of scores that lie on an edge)
/// and `threshold_for` returns the edge whose fraction above is closest to the target: its error is at
/// most the mass of one bin. Memory: bins + 2 counters, whatever the number of scores; the result does not
/// depend on the order of the batches. Use [0, 1] for SBN/ST (p) and STS (sqrt(p)), a range covering the
/// pre-activations for the noisy rectifier (a + c).
template <class T>
class ScoreHistogram {
 public:
  explicit ScoreHistogram(T lower = T(0), T upper = T(1), Index bins = Index(1) << 16)
      : lower_(lower), upper_(upper) {
    if (!(std::isfinite(lower) && std::isfinite(upper) && lower < upper))
      internal::fail("ScoreHistogram: needs finite lower < upper, got [" + std::to_string(lower) + ", " +
                     std::to_string(upper) + "]");
    if (bins < 1) internal::fail("ScoreHistogram: bins must be positive, got " + std::to_string(bins));
    width_ = (static_cast<double>(upper) - static_cast<double>(lower)) / static_cast<double>(bins);
    counts_.assign(static_cast<std::size_t>(bins) + 2, 0);
  }

  /// Adds every entry of `scores` (any shape, e.g. a gate's `units x batch` scores()).
  void add(const MatrixCRef<T>& scores) {
    for (Index j = 0; j < scores.cols(); ++j)
      for (Index i = 0; i < scores.rows(); ++i) add_one(scores(i, j));
  }
  void add(std::span<const T> scores) {
    for (const T s : scores) add_one(s);
  }

  /// Total number of scores added.
  std::int64_t count() const { return total_; }
  Index bins() const { return static_cast<Index>(counts_.size()) - 2; }

  /// The bin edge t whose fraction of scores strictly above is closest to `target_fraction` (ties: the
  /// higher edge). Throws stoch::Error if nothing was added.
  T threshold_for(T target_fraction) const {
    internal::check_fraction("ScoreHistogram::threshold_for", static_cast<double>(target_fraction));
    if (total_ == 0) internal::fail("ScoreHistogram::threshold_for: no scores added");
    // above[j] = scores > edge j = overflow + bins j .. bins-1; computed from the top down.
    const std::int64_t n_bins = bins();
    std::vector<std::int64_t> above(static_cast<std::size_t>(n_bins) + 1);
    std::int64_t running = counts_.back();
    above[static_cast<std::size_t>(n_bins)] = running;
    for (std::int64_t j = n_bins - 1; j >= 0; --j) {
      running += counts_[static_cast<std::size_t>(j) + 1];
      above[static_cast<std::size_t>(j)] = running;
    }
    const double goal = static_cast<double>(target_fraction) * static_cast<double>(total_);
    const std::int64_t edge = internal::closest_index(
        n_bins, goal, [&](std::int64_t j) { return above[static_cast<std::size_t>(j)]; },
        [](std::int64_t) { return true; });
    return edge_value(edge);
  }

  void clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
  }

 private:
  T edge_value(std::int64_t j) const {
    return j == bins() ? upper_ : static_cast<T>(static_cast<double>(lower_) + width_ * static_cast<double>(j));
  }

  // counts_[0]: score <= lower; counts_[k + 1]: bin k; counts_.back(): score > upper.
  void add_one(T score) {
    if (std::isnan(score)) internal::fail("ScoreHistogram::add: a score is NaN");
    std::size_t slot;
    if (score <= lower_) {
      slot = 0;
    } else if (score > upper_) {
      slot = counts_.size() - 1;
    } else {
      const double k = std::ceil((static_cast<double>(score) - static_cast<double>(lower_)) / width_) - 1.0;
      slot = static_cast<std::size_t>(std::clamp<double>(k, 0.0, static_cast<double>(bins() - 1))) + 1;
    }
    ++counts_[slot];
    ++total_;
  }

  T lower_, upper_;
  double width_ = 1;
  std::vector<std::int64_t> counts_;
  std::int64_t total_ = 0;
};

}  // namespace stoch
