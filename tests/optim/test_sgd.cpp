// Eigen's malloc guard first, so the test can prove that Sgd::step allocates nothing once its buffers are
// sized.
#include "support/no_malloc.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

#include "stoch/optim/sgd.hpp"

#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/threads.hpp"

using namespace stoch;

namespace {

template <class T>
Parameter<T> make_parameter(const char* name, Index rows, Index cols, std::uint64_t seed, T scale = T(1)) {
  Parameter<T> p(name, rows, cols);
  p.value = test::random_matrix<T>(rows, cols, seed, scale);
  return p;
}

template <class T>
T tolerance() {
  return T(16) * std::numeric_limits<T>::epsilon();
}

}  // namespace

TEMPLATE_TEST_CASE("Sgd momentum steps match a hand computation", "[sgd]", float, double) {
  using T = TestType;
  Parameter<T> p("w", 2, 1);
  p.value << 1, 2;
  p.velocity.resize(2, 1);
  p.velocity << T(0.2), T(0);  // an existing velocity (e.g. from a checkpoint) is kept
  Sgd<T> sgd({&p}, {.learning_rate = T(0.1), .momentum = T(0.9)});

  p.grad << T(0.5), T(-1);
  sgd.step();  // v = 0.9 v - 0.1 g = (0.13, 0.1); w = (1.13, 2.1)
  CHECK(p.velocity(0) == Approx(0.13));
  CHECK(p.velocity(1) == Approx(0.1));
  CHECK(p.value(0) == Approx(1.13));
  CHECK(p.value(1) == Approx(2.1));
  CHECK(p.grad.isZero(0));  // cleared

  p.grad << T(0.5), T(-1);
  sgd.step();  // v = (0.9 * 0.13 - 0.05, 0.9 * 0.1 + 0.1) = (0.067, 0.19)
  CHECK(p.value(0) == Approx(1.197));
  CHECK(p.value(1) == Approx(2.29));
}

TEMPLATE_TEST_CASE("Sgd without momentum is plain gradient descent, per-group scale applied", "[sgd]", float,
                   double) {
  using T = TestType;
  Parameter<T> main = make_parameter<T>("main.W", 3, 4, 1), gater = make_parameter<T>("gater.W", 3, 4, 2);
  Parameter<T> state = make_parameter<T>("gate.threshold", 3, 1, 3);
  state.trainable = false;
  gater.learning_rate_scale = T(0.01);  // App. A.4: the SBN gater learns 100 times slower
  const Matrix<T> main_before = main.value, gater_before = gater.value, state_before = state.value;
  const Matrix<T> g1 = test::random_matrix<T>(3, 4, 4), g2 = test::random_matrix<T>(3, 4, 5);
  main.grad = g1;
  gater.grad = g2;
  Sgd<T> sgd({&main, &gater, &state}, {.learning_rate = T(0.1)});
  sgd.step();
  CHECK(main.value.isApprox(main_before - T(0.1) * g1));
  CHECK(gater.value.isApprox(gater_before - T(0.001) * g2));
  CHECK((state.value.array() == state_before.array()).all());  // non-trainable state untouched
  CHECK(main.grad.isZero(0));
  CHECK(gater.grad.isZero(0));

  sgd.set_learning_rate(T(0.5));
  main.grad = g1;
  const Matrix<T> before = main.value;
  sgd.step();
  CHECK(main.value.isApprox(before - T(0.5) * g1));

  main.grad = g1;
  sgd.zero_grad();
  CHECK(main.grad.isZero(0));
}

TEMPLATE_TEST_CASE("Max-norm holds after every step, rows and columns", "[sgd]", float, double) {
  using T = TestType;
  const T bound = T(2);
  Parameter<T> rows = make_parameter<T>("linear.W", 6, 5, 7, T(0.5));
  Parameter<T> cols = make_parameter<T>("expert.W", 5, 6, 8, T(0.5));
  cols.fan_in = FanIn::columns;
  set_max_norm<T>({&rows, &cols}, bound);
  Sgd<T> sgd({&rows, &cols}, {.learning_rate = T(0.3), .momentum = T(0.5)});

  int clipped_rows = 0, clipped_cols = 0;
  for (int step = 0; step < 40; ++step) {
    rows.grad = test::random_matrix<T>(6, 5, 100 + step);
    cols.grad = test::random_matrix<T>(5, 6, 200 + step);
    // The unconstrained update, to check that units within the bound are left alone.
    const Matrix<T> free_rows = rows.value + (sgd.momentum() * rows.velocity - sgd.learning_rate() * rows.grad);
    const Matrix<T> free_cols = cols.value + (sgd.momentum() * cols.velocity - sgd.learning_rate() * cols.grad);
    sgd.step();
    for (Index i = 0; i < 6; ++i) {
      REQUIRE(rows.value.row(i).norm() <= bound * (1 + tolerance<T>()));
      if (free_rows.row(i).norm() > bound)
        ++clipped_rows;
      else
        REQUIRE(rows.value.row(i).isApprox(free_rows.row(i)));
      REQUIRE(cols.value.col(i).norm() <= bound * (1 + tolerance<T>()));
      if (free_cols.col(i).norm() > bound)
        ++clipped_cols;
      else
        REQUIRE(cols.value.col(i).isApprox(free_cols.col(i)));
    }
  }
  CHECK(clipped_rows > 10);  // the constraint was active, so the checks above were not vacuous
  CHECK(clipped_cols > 10);
}

TEMPLATE_TEST_CASE("Weight decay adds weight_decay * value to the gradient of weight matrices only", "[sgd]", float,
                   double) {
  using T = TestType;
  Parameter<T> w = make_parameter<T>("linear.W", 3, 4, 11), b = make_parameter<T>("linear.b", 3, 1, 12);
  Parameter<T> plain = make_parameter<T>("other.W", 3, 4, 13);
  set_weight_decay<T>({&w, &b}, T(0.25));  // reaches w, not the bias b (core/test_parameter.cpp)
  const Matrix<T> g = test::random_matrix<T>(3, 4, 14), gb = test::random_matrix<T>(3, 1, 15);
  const Matrix<T> w0 = w.value, b0 = b.value, p0 = plain.value;
  Sgd<T> sgd({&w, &b, &plain}, {.learning_rate = T(0.1), .momentum = T(0.5)});

  w.grad = g;
  b.grad = gb;
  plain.grad = g;
  sgd.step();  // v1 = -0.1 (g + 0.25 w0); w1 = w0 + v1
  const Matrix<T> v1 = -T(0.1) * (g + T(0.25) * w0);
  CHECK(w.value.isApprox(w0 + v1));
  CHECK(b.value.isApprox(b0 - T(0.1) * gb));
  CHECK(plain.value.isApprox(p0 - T(0.1) * g));

  w.grad = g;
  const Matrix<T> w1 = w.value;
  sgd.step();  // v2 = 0.5 v1 - 0.1 (g + 0.25 w1)
  CHECK(w.value.isApprox(w1 + T(0.5) * v1 - T(0.1) * (g + T(0.25) * w1)));

  // With a zero gradient the decay alone shrinks the weights by (1 - rate * decay) per step (no momentum).
  Parameter<T> alone = make_parameter<T>("alone.W", 2, 2, 16);
  alone.weight_decay = T(0.5);
  const Matrix<T> a0 = alone.value;
  Sgd<T> plain_sgd({&alone}, {.learning_rate = T(0.2)});
  plain_sgd.step();
  CHECK(alone.value.isApprox(T(0.9) * a0));
}

// step() updates velocity, value and gradient chunk by chunk (one pass over memory); every value must get
// exactly what the whole-matrix statements of the documented update give, so that training runs made before
// the chunking reproduce bit for bit. Sizes straddle the chunk (8 KB: 2048 floats, 1024 doubles).
TEMPLATE_TEST_CASE("Sgd's chunked update gives exactly the whole-matrix statements", "[sgd]", float, double) {
  using T = TestType;
  const std::pair<Index, Index> shapes[] = {{1, 1},    {7, 3},   {1023, 1}, {1025, 1},
                                            {2047, 1}, {32, 64}, {2049, 1}, {50, 100}};
  for (const T momentum : {T(0), T(0.9)})
    for (const T decay : {T(0), T(3e-4)})
      for (const auto& [rows, cols] : shapes) {
        CAPTURE(momentum, decay, rows, cols);
        const auto seed = static_cast<std::uint64_t>(rows * 131 + cols);
        Parameter<T> p = make_parameter<T>("w", rows, cols, seed);
        p.weight_decay = decay;
        p.learning_rate_scale = T(0.5);
        p.velocity = test::random_matrix<T>(rows, cols, seed + 1, T(0.1));
        Matrix<T> value = p.value, velocity = p.velocity;
        Sgd<T> sgd({&p}, {.learning_rate = T(0.1), .momentum = momentum});
        for (int step = 0; step < 3; ++step) {
          const Matrix<T> grad = test::random_matrix<T>(rows, cols, seed + 2 + static_cast<std::uint64_t>(step));
          p.grad = grad;
          sgd.step();
          const T rate = T(0.1) * T(0.5);
          const Matrix<T> next = decay > T(0) ? Matrix<T>(momentum * velocity - rate * (grad + decay * value))
                                              : Matrix<T>(momentum * velocity - rate * grad);
          value += next;
          // Without momentum and decay the velocity is neither read nor written (the value's bits as through it).
          if (decay > T(0) || momentum > T(0)) velocity = next;
          CHECK(p.velocity == velocity);
          CHECK(p.value == value);
          CHECK(p.grad.isZero(0));
        }
      }
}

TEST_CASE("Sgd::step allocates nothing once sized", "[sgd]") {
  Parameter<double> w = make_parameter<double>("w", 20, 30, 1);
  Parameter<double> b = make_parameter<double>("b", 20, 1, 2);
  Parameter<double> e = make_parameter<double>("e", 30, 20, 3);
  e.fan_in = FanIn::columns;
  set_max_norm<double>({&w, &b, &e}, 0.5);
  set_weight_decay<double>({&w, &b, &e}, 0.01);
  Sgd<double> sgd({&w, &b, &e}, {.learning_rate = 0.1, .momentum = 0.9});
  sgd.step();  // sizes the max-norm buffer
  Eigen::internal::set_is_malloc_allowed(false);
  bool threw = false;
  try {
    for (int i = 0; i < 5; ++i) {
      w.grad.setOnes();
      e.grad.setOnes();
      sgd.step();
    }
  } catch (const std::exception&) {
    threw = true;
  }
  Eigen::internal::set_is_malloc_allowed(true);
  CHECK_FALSE(threw);
  // The guard is live: an allocation under it is caught.
  Eigen::internal::set_is_malloc_allowed(false);
  CHECK_THROWS(Matrix<double>(100, 100));
  Eigen::internal::set_is_malloc_allowed(true);
}

TEST_CASE("Sgd rejects bad options and bad parameters, naming them", "[sgd]") {
  Parameter<float> p("gater.W", 2, 2);
  REQUIRE_THROWS_MESSAGE(Sgd<float>({&p}, {.learning_rate = 0.0f}), "learning_rate must be > 0");
  REQUIRE_THROWS_MESSAGE(Sgd<float>({&p}, {.learning_rate = -0.1f}), "learning_rate must be > 0");
  REQUIRE_THROWS_MESSAGE(Sgd<float>({&p}, {.momentum = 1.0f}), "momentum must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Sgd<float>({&p}, {.momentum = -0.5f}), "momentum must be in [0, 1)");
  REQUIRE_THROWS_MESSAGE(Sgd<float>({nullptr}), "null pointer");
  Sgd<float> sgd({&p});
  REQUIRE_THROWS_MESSAGE(sgd.set_learning_rate(0.0f), "learning_rate");
  p.max_norm = 0.0f;
  REQUIRE_THROWS_MESSAGE(sgd.step(), "'gater.W': max_norm must be > 0");
  p.max_norm.reset();
  p.weight_decay = -0.1f;
  REQUIRE_THROWS_MESSAGE(sgd.step(), "'gater.W': weight_decay must be finite and >= 0");
  p.weight_decay = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_MESSAGE(sgd.step(), "'gater.W': weight_decay must be finite and >= 0");
  p.weight_decay = 0.0f;
  p.grad.resize(3, 2);
  REQUIRE_THROWS_MESSAGE(sgd.step(), "'gater.W': gradient is 3 x 2 but the value is 2 x 2");
}

TEST_CASE("Sgd::set_fused_steps shares the rate with the parameters and refuses momentum", "[sgd]") {
  Parameter<float> w("expert.W", 2, 2), state("average", 1, 1, false);
  Sgd<float> sgd({&w, &state}, {.learning_rate = 0.2f});
  CHECK_FALSE(sgd.fused_steps());
  CHECK_FALSE(w.fused_rate);
  sgd.set_fused_steps(true);
  REQUIRE(w.fused_rate);
  CHECK(*w.fused_rate == 0.2f);
  CHECK_FALSE(state.fused_rate);  // not trainable: never stepped
  sgd.set_learning_rate(0.05f);
  CHECK(*w.fused_rate == 0.05f);
  REQUIRE_THROWS_MESSAGE(sgd.set_momentum(0.9f), "Sgd::set_momentum: the steps are fused into backward");
  CHECK(sgd.momentum() == 0.0f);
  // A parameter its layer stepped in backward is left as it is, its flag cleared.
  w.value.setOnes();
  w.grad.setConstant(1.0f);
  w.stepped = true;
  sgd.step();
  CHECK(w.value == Matrix<float>::Ones(2, 2));
  CHECK_FALSE(w.stepped);
  sgd.step();  // not stepped in backward: stepped here
  CHECK(w.value(0, 0) == 1.0f - 0.05f);
  sgd.set_fused_steps(false);
  CHECK_FALSE(w.fused_rate);
  sgd.set_momentum(0.5f);
  REQUIRE_THROWS_MESSAGE(sgd.set_fused_steps(true), "Sgd::set_fused_steps: a step fused into backward is plain SGD");
  CHECK_FALSE(w.fused_rate);
}

// The promise that a NaN never reaches the parameters: a non-finite gradient (from a diverged layer whose
// estimator turned NaN into gradients) is refused before anything of its chunk is written, naming the
// parameter; the chunks and parameters already stepped keep finite values.
TEMPLATE_TEST_CASE("Sgd::step refuses a non-finite gradient chunk by chunk, writing no NaN or Inf", "[sgd]", float,
                   double) {
  using T = TestType;
  constexpr Index chunk = 8192 / static_cast<Index>(sizeof(T));
  for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                      -std::numeric_limits<T>::infinity()})
    for (const T decay : {T(0), T(1e-3)}) {
      CAPTURE(bad, decay);
      Parameter<T> first = make_parameter<T>("first", 3, 2, 1);
      Parameter<T> big = make_parameter<T>("hidden.W", 3 * chunk + 5, 1, 2);  // four chunks
      Parameter<T> last = make_parameter<T>("last", 2, 2, 3);
      for (Parameter<T>* p : {&first, &big, &last}) {
        p->weight_decay = decay;
        p->grad = test::random_matrix<T>(p->value.rows(), p->value.cols(), 7);
        p->velocity = test::random_matrix<T>(p->value.rows(), p->value.cols(), 8, T(0.1));
      }
      const Index at = 2 * chunk + 3;  // in the third chunk
      big.grad(at, 0) = bad;
      const Parameter<T> first0 = first, big0 = big, last0 = last;
      Sgd<T> sgd({&first, &big, &last}, {.learning_rate = T(0.1), .momentum = T(0.9)});
      REQUIRE_THROWS_MESSAGE(sgd.step(), "Sgd::step: parameter 'hidden.W': non-finite gradient");
      REQUIRE_THROWS_MESSAGE(sgd.step(), "(NaN or Inf) at entry " + std::to_string(at));
      // Before the bad chunk: stepped (and gradients cleared); from it on: untouched, gradient included.
      CHECK(first.value != first0.value);
      CHECK(first.grad.isZero(0));
      CHECK(big.value.topRows(2 * chunk) != big0.value.topRows(2 * chunk));
      CHECK(big.grad.topRows(2 * chunk).isZero(0));
      CHECK(big.value.bottomRows(chunk + 5) == big0.value.bottomRows(chunk + 5));
      CHECK(big.velocity.bottomRows(chunk + 5) == big0.velocity.bottomRows(chunk + 5));
      CHECK(big.grad(2 * chunk, 0) == big0.grad(2 * chunk, 0));
      CHECK(big.grad(3 * chunk + 4, 0) == big0.grad(3 * chunk + 4, 0));
      CHECK(last.value == last0.value);
      CHECK(last.velocity == last0.velocity);
      for (const Parameter<T>* p : {&first, &big, &last}) {
        CHECK(p->value.allFinite());
        CHECK(p->velocity.allFinite());
      }
    }
}

TEST_CASE("Sgd::step refuses an update that would overflow the value, naming the parameter and entry", "[sgd]") {
  Parameter<float> p("gater.W", 2, 2);
  p.value.setConstant(1.0f);
  p.grad.setConstant(1e-3f);
  p.grad(1, 1) = -3e38f;  // finite, but the step takes the value past the largest float
  Sgd<float> sgd({&p}, {.learning_rate = 10.0f});
  REQUIRE_THROWS_MESSAGE(sgd.step(), "Sgd::step: parameter 'gater.W': the update makes the value non-finite "
                                     "(NaN or Inf) at entry 3 of 2 x 2");
  CHECK(p.value == Matrix<float>::Constant(2, 2, 1.0f));
  CHECK(p.velocity.isZero(0));
  // A value that is already non-finite (set by hand) is named too, and left as it was.
  p.grad.setZero();
  p.value(0, 1) = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_MESSAGE(sgd.step(), "parameter 'gater.W': non-finite value nan (NaN or Inf) at entry 2");
}

TEST_CASE("Sgd::step: the same values on one thread and on two, and a non-finite gradient is still refused",
          "[sgd][threads]") {
  // 300 x 1000 floats: enough chunks for two threads' ranges; with and without momentum, and on flagged columns.
  for (const float momentum : {0.0f, 0.9f})
    for (const bool flagged : {false, true}) {
      CAPTURE(momentum, flagged);
      auto run = [&](int count) {
        const test::ThreadCount thread_count(count);
        Parameter<float> p = make_parameter<float>("wide.W", 300, 1000, 3);
        p.max_norm = 1.0f;
        p.fan_in = FanIn::columns;
        if (flagged) internal::track_written_columns(p);
        Sgd<float> sgd({&p}, {.learning_rate = 0.1f, .momentum = momentum});
        for (int step = 0; step < 2; ++step) {
          p.grad = test::random_matrix<float>(300, 1000, 10 + static_cast<std::uint64_t>(step));
          if (flagged) {  // as a gated layer's backward leaves it: every third column written
            p.all_columns_written = false;
            for (Index c = 0; c < 1000; ++c) {
              p.written_columns[static_cast<std::size_t>(c)] = c % 3 == 0;
              if (c % 3 != 0) p.grad.col(c).setZero();
            }
          }
          sgd.step();
        }
        return Matrix<float>(p.value);
      };
      const Matrix<float> one = run(1), two = run(2);
      CHECK(one == two);
    }
  const test::ThreadCount thread_count(2);
  Parameter<float> p = make_parameter<float>("wide.W", 300, 1000, 3);
  p.grad.setConstant(1e-3f);
  p.grad(5, 900) = std::numeric_limits<float>::quiet_NaN();  // in the second thread's range
  Sgd<float> sgd({&p}, {.learning_rate = 0.1f});
  REQUIRE_THROWS_MESSAGE(sgd.step(), "Sgd::step: parameter 'wide.W': non-finite gradient");
  CHECK(p.value.allFinite());
}
