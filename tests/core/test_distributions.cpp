// Samplers: moments of every distribution within 5 standard errors (fixed seeds), reproducibility, and
// independence of the result from how a fill is split. Set STOCH_TEST_VERBOSE=1 to print the estimates.
#include "stoch/core/distributions.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numbers>
#include <string>

#include "support/catch.hpp"

using namespace stoch;

namespace {

/// CHECKs |estimate - exact| < 5 standard errors; prints the numbers when STOCH_TEST_VERBOSE is set.
void check_within(const std::string& what, double estimate, double exact, double standard_error) {
  if (std::getenv("STOCH_TEST_VERBOSE") != nullptr)
    std::printf("%-40s estimate %.6g exact %.6g se %.3g (%.2f se)\n", what.c_str(), estimate, exact, standard_error,
                (estimate - exact) / standard_error);
  INFO(what << ": estimate " << estimate << ", exact " << exact << ", standard error " << standard_error);
  CHECK(std::abs(estimate - exact) < 5 * standard_error);
}

/// Sample mean and variance, with their standard errors estimated from the same sample
/// (SE(mean) = s / sqrt(n); SE(variance) = sqrt((m4 - s^4) / n)).
template <class T>
void check_moments(const std::string& what, const Matrix<T>& x, double mean, double variance) {
  const double n = static_cast<double>(x.size());
  const Eigen::ArrayXd d = x.template cast<double>().reshaped().array();
  const double m = d.mean();
  const Eigen::ArrayXd c = d - m;
  const double var = c.square().sum() / (n - 1);
  const double m4 = c.square().square().mean();
  check_within(what + " mean", m, mean, std::sqrt(var / n));
  check_within(what + " variance", var, variance, std::sqrt((m4 - var * var) / n));
}

template <class T>
using Fill = std::function<void(Generator&, MatrixRef<T>, Index /*first linear index*/)>;

/// The same words whatever the split: one 2000 x 64 fill == two 2000 x 32 fills == fills of 37 and
/// the rest, starting from a position that is not a multiple of anything (one word drawn before).
template <class T>
void check_split_invariance(const Fill<T>& fill) {
  Matrix<T> whole(2000, 64), halves(2000, 64), uneven(2000, 64);
  Generator a(11), b(11), c(11);
  a.next();
  b.next();
  c.next();
  fill(a, whole, 0);
  fill(b, halves.leftCols(32), 0);
  fill(b, halves.rightCols(32), 2000 * 32);
  Eigen::Map<Matrix<T>> head(uneven.data(), 37, 1), tail(uneven.data() + 37, uneven.size() - 37, 1);
  fill(c, head, 0);
  fill(c, tail, 37);
  CHECK(whole.array().isFinite().all());
  CHECK(halves == whole);
  CHECK(uneven == whole);
  CHECK(a.position() == b.position());
  CHECK(a.position() == c.position());
}

/// Same seed: identical bits; another seed: different samples.
template <class T>
void check_reproducible(const Fill<T>& fill) {
  Matrix<T> x(300, 7), y(300, 7), z(300, 7);
  Generator a(5), b(5), c(6);
  fill(a, x, 0);
  fill(b, y, 0);
  fill(c, z, 0);
  CHECK(x == y);
  CHECK(x != z);
}

template <class T>
const Matrix<T>& probabilities() {  // columns of p = 0.01, 0.3, 0.9 in turn
  static const Matrix<T> p = [] {
    Matrix<T> m(2000, 64);
    for (Index j = 0; j < m.cols(); ++j) m.col(j).setConstant(j % 3 == 0 ? T(0.01) : j % 3 == 1 ? T(0.3) : T(0.9));
    return m;
  }();
  return p;
}

template <class T>
std::vector<std::pair<std::string, Fill<T>>> samplers() {
  return {
      {"uniform", [](Generator& g, MatrixRef<T> out, Index) { fill_uniform<T>(g, out); }},
      {"gaussian", [](Generator& g, MatrixRef<T> out, Index) { fill_gaussian<T>(g, out, T(2)); }},
      {"logistic", [](Generator& g, MatrixRef<T> out, Index) { fill_logistic<T>(g, out, T(0.5)); }},
      {"bernoulli", [](Generator& g, MatrixRef<T> out, Index first) {
         const Eigen::Map<const Matrix<T>> p(probabilities<T>().data() + first, out.rows(), out.cols());
         fill_bernoulli<T>(g, p, out);
       }},
      {"bernoulli scalar p", [](Generator& g, MatrixRef<T> out, Index) { fill_bernoulli<T>(g, T(0.25), out); }},
      {"beta(5.3, 40.1)", [](Generator& g, MatrixRef<T> out, Index) { fill_beta<T>(g, out, T(5.3), T(40.1)); }},
      {"beta(0.5, 0.7)", [](Generator& g, MatrixRef<T> out, Index) { fill_beta<T>(g, out, T(0.5), T(0.7)); }},
  };
}

}  // namespace

TEMPLATE_TEST_CASE("Every sampler gives the same bits however a fill is split", "[distributions]", float, double) {
  for (const auto& [name, fill] : samplers<TestType>()) {
    INFO(name);
    check_split_invariance<TestType>(fill);
  }
}

TEMPLATE_TEST_CASE("Every sampler: same seed identical, another seed different", "[distributions]", float, double) {
  for (const auto& [name, fill] : samplers<TestType>()) {
    INFO(name);
    check_reproducible<TestType>(fill);
  }
}

TEMPLATE_TEST_CASE("Uniform, Gaussian and logistic moments", "[distributions]", float, double) {
  using T = TestType;
  const std::string type = std::is_same_v<T, float> ? "float " : "double ";
  Generator rng(101);
  Matrix<T> x(1000, 200);
  fill_uniform<T>(rng, x);
  check_moments(type + "uniform", x, 0.5, 1.0 / 12.0);

  fill_gaussian<T>(rng, x, T(2));
  check_moments(type + "gaussian(sd 2)", x, 0.0, 4.0);
  // Shape, not only moments: P(|z| < sd) = erf(1 / sqrt 2).
  const double inside = (x.array().abs() < T(2)).template cast<double>().mean(), p = std::erf(1 / std::sqrt(2.0));
  check_within(type + "gaussian P(|z| < sd)", inside, p, std::sqrt(p * (1 - p) / static_cast<double>(x.size())));
  // Box–Muller pairs (slot i and i + 16 of each aligned block of 32) are uncorrelated.
  double pair_sum = 0;
  Index pairs = 0;
  for (Index b = 0; b + 32 <= x.size(); b += 32)
    for (Index i = 0; i < 16; ++i, ++pairs) pair_sum += double(x.data()[b + i]) * double(x.data()[b + 16 + i]) / 4;
  check_within(type + "gaussian pair correlation", pair_sum / double(pairs), 0.0, 1 / std::sqrt(double(pairs)));

  fill_logistic<T>(rng, x, T(0.5));
  check_moments(type + "logistic(scale 0.5)", x, 0.0, 0.25 * std::numbers::pi * std::numbers::pi / 3);
}

TEMPLATE_TEST_CASE("Bernoulli rates follow p per element", "[distributions]", float, double) {
  using T = TestType;
  const std::string type = std::is_same_v<T, float> ? "float " : "double ";
  Generator rng(202);
  const Matrix<T>& p = probabilities<T>();
  Matrix<T> h(p.rows(), p.cols());
  fill_bernoulli<T>(rng, p, h);
  CHECK(((h.array() == T(0)) || (h.array() == T(1))).all());
  for (int k = 0; k < 3; ++k) {
    double ones = 0, n = 0;
    for (Index j = k; j < h.cols(); j += 3, n += double(h.rows())) ones += double(h.col(j).sum());
    const double q = double(p(0, k));
    check_within(type + "bernoulli rate p=" + std::to_string(q), ones / n, q, std::sqrt(q * (1 - q) / n));
  }
  fill_bernoulli<T>(rng, T(0.1), h);
  check_within(type + "bernoulli rate scalar p=0.1", double(h.mean()), 0.1, std::sqrt(0.1 * 0.9 / double(h.size())));
  fill_bernoulli<T>(rng, T(0), h);
  CHECK(h.isZero());
  fill_bernoulli<T>(rng, T(1), h);
  CHECK(h.isOnes());
}

TEMPLATE_TEST_CASE("Beta moments, for the STS gate's shapes and for shapes below 1", "[distributions]", float, double) {
  using T = TestType;
  const std::string type = std::is_same_v<T, float> ? "float " : "double ";
  Generator rng(303);
  Matrix<T> x(1000, 200);
  for (auto [a, b] : {std::pair{5.3, 40.1}, std::pair{0.5, 0.7}, std::pair{2.0, 3.0}}) {
    fill_beta<T>(rng, x, T(a), T(b));
    CHECK(x.minCoeff() >= T(0));
    CHECK(x.maxCoeff() <= T(1));
    const double mean = a / (a + b), variance = a * b / ((a + b) * (a + b) * (a + b + 1));
    check_moments(type + "beta(" + std::to_string(a) + ", " + std::to_string(b) + ")", x, mean, variance);
  }
}

TEST_CASE("Samplers reject bad arguments with a message naming them", "[distributions]") {
  Generator rng(1);
  Matrix<double> out(4, 3);
  REQUIRE_THROWS_MESSAGE(fill_beta<double>(rng, out, 0.0, 2.0), "alpha");
  REQUIRE_THROWS_MESSAGE(fill_beta<double>(rng, out, 2.0, -1.0), "beta");
  REQUIRE_THROWS_MESSAGE(fill_bernoulli<double>(rng, Matrix<double>(4, 2), out), "shape mismatch");
  REQUIRE_THROWS_MESSAGE(fill_bernoulli<double>(rng, 1.5, out), "p must be in [0, 1]");
  REQUIRE_THROWS_MESSAGE(fill_logistic<double>(rng, out, 0.0), "scale");
  REQUIRE_THROWS_MESSAGE(fill_gaussian<double>(rng, out, -1.0), "stddev");
  Matrix<double> big(8, 3);
  REQUIRE_THROWS_MESSAGE(fill_uniform<double>(rng, big.topRows(4)), "contiguous");
}
