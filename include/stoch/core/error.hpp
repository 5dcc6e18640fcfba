// stoch — the one exception type, and the checks every layer shares.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>

#include "stoch/core/matrix.hpp"

namespace stoch {

/// Every error stoch reports: bad shapes, bad arguments, bad files. The message names the problem.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace internal {

[[noreturn]] inline void fail(const std::string& message) { throw Error(message); }

inline std::string shape_string(Index rows, Index cols) {
  return std::to_string(rows) + " x " + std::to_string(cols);
}

/// Throws unless `rows` equals `expected_rows` (the feature count); `what` names the caller and argument.
inline void check_rows(const char* what, Index rows, Index cols, Index expected_rows) {
  if (rows != expected_rows)
    fail(std::string(what) + ": shape mismatch, expected " + std::to_string(expected_rows) +
         " rows (features) but got " + shape_string(rows, cols));
}

/// Throws unless the matrix is exactly `expected_rows x expected_cols`.
inline void check_shape(const char* what, Index rows, Index cols, Index expected_rows,
                        Index expected_cols) {
  if (rows != expected_rows || cols != expected_cols)
    fail(std::string(what) + ": shape mismatch, expected " +
         shape_string(expected_rows, expected_cols) + " but got " + shape_string(rows, cols));
}

/// Throws on an empty batch (zero columns): a mean over no examples is undefined.
inline void check_batch(const char* what, Index cols) {
  if (cols <= 0) fail(std::string(what) + ": empty batch (0 columns)");
}

/// Throws unless 0 < value < 1 (probabilities, sparsity targets, moving-average rates).
template <class T>
void check_open_unit_interval(const char* what, T value) {
  if (!(value > T(0) && value < T(1)))
    fail(std::string(what) + " must be a probability in (0, 1), got " + std::to_string(value));
}

/// Throws unless value > 0 (learning rates, noise scales, norms).
template <class T>
void check_positive(const char* what, T value) {
  if (!(value > T(0))) fail(std::string(what) + " must be > 0, got " + std::to_string(value));
}

/// Throws unless value >= 0 (penalty strengths, regularisation weights).
template <class T>
void check_non_negative(const char* what, T value) {
  if (!(value >= T(0))) fail(std::string(what) + " must be >= 0, got " + std::to_string(value));
}

/// Whether every entry of `m` is finite, in one vectorised pass: x * 0 is 0 for a finite x and NaN for an
/// Inf or a NaN, so the sum of the products is 0 exactly when all are finite. Eigen's allFinite() tests
/// entry by entry with an early exit that does not vectorise (docs/performance-notes.md#finite-check).
/// Like std::isfinite, meaningless under -ffinite-math-only.
template <class Derived>
bool all_finite(const Eigen::DenseBase<Derived>& m) {
  using T = typename Derived::Scalar;
  return m.size() == 0 || (m.derived().array() * T(0)).sum() == T(0);
}

/// Throws unless every entry of `m` is finite, naming the first NaN or Inf by feature (row) and example
/// (column): "<what>: non-finite <kind> nan (NaN or Inf) at feature i of example j[: <hint>]". Cheap next
/// to a layer's product (one vectorised pass, all_finite), so every Linear checks its input and every
/// elementwise layer and gate its pre-activation, and a NaN never reaches the parameters.
template <class Derived>
void check_finite(const char* what, const Eigen::DenseBase<Derived>& m, const char* kind = "value",
                  const char* hint = nullptr) {
  if (all_finite(m)) return;
  for (Index j = 0; j < m.cols(); ++j)
    for (Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j)))
        fail(std::string(what) + ": non-finite " + kind + " " + std::to_string(m(i, j)) +
             " (NaN or Inf) at feature " + std::to_string(i) + " of example " + std::to_string(j) +
             (hint ? std::string(": ") + hint : std::string()));
}

/// How every message of a layer starts: "Class::method", or "Class::method ('instance')" for a layer that
/// has an instance name (the prefix of its parameters' names, e.g. Linear::backward ('gater.hidden')).
/// An empty `method` gives "Class" or "Class ('instance')", for constructors and options.
inline std::string where(std::string_view class_name, std::string_view method, std::string_view instance = {}) {
  std::string s;
  s.reserve(class_name.size() + method.size() + instance.size() + 8);
  s.append(class_name);
  if (!method.empty()) s.append("::").append(method);
  if (!instance.empty()) s.append(" ('").append(instance).append("')");
  return s;
}

/// What every layer keeps to refuse a backward that does not follow a training forward (an evaluation
/// forward keeps nothing for backward, and a failed forward leaves stale buffers). One flag; a layer calls
/// forget() when its forward starts, remember(ctx.training()) when it has finished, and require() first
/// thing in backward. A backward does not consume the forward: it may be repeated.
class TrainingForward {
 public:
  void forget() noexcept { ready_ = false; }
  void remember(bool training) noexcept { ready_ = training; }
  bool ready() const noexcept { return ready_; }
  /// Throws "<who>: needs a forward in Mode::train first (...)" unless the last forward was a training one;
  /// `who` is the layer's backward prefix (where(...)).
  void require(std::string_view who) const {
    if (!ready_)
      fail(std::string(who) + ": needs a forward in Mode::train first (call forward with a training Context)");
  }

 private:
  bool ready_ = false;
};

}  // namespace internal
}  // namespace stoch
