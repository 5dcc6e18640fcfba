// Tests for include/stoch/detail/parallel_product.hpp: a product split over two threads holds the same bits as
// on one, at the shapes of the paper's network and of the wide networks, and so do Linear's forward and
// backward, which use it; the product equals Eigen's. In a STOCH_BLAS=BLIS build the same checks hold BLIS, on
// its own threads, to them.
#include "stoch/detail/parallel_product.hpp"

#include <array>

#include "stoch/layers/linear.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/threads.hpp"

using namespace stoch;

namespace {

/// Runs `body` with `count` threads.
template <class Body>
auto with_threads(int count, const Body& body) {
  const test::ThreadCount thread_count(count);
  return body();
}

}  // namespace

TEST_CASE("split products: the same bits on one thread and on two", "[parallel_product][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  // rows x depth x columns: the paper's network at batch 32 (forward, dL/dx, dW), a wide layer at batch 64 and 1,
  // and sizes that are multiples of nothing.
  const Index shapes[][3] = {{2000, 784, 32}, {784, 2000, 32}, {2000, 32, 784}, {400, 784, 32},
                             {1024, 1024, 64}, {1024, 1024, 1}, {517, 301, 45},  {333, 97, 1},
                             {784, 2000, 50},  {100, 2000, 37}};
  std::uint64_t seed = 1;
  for (const auto& s : shapes) {
    CAPTURE(s[0], s[1], s[2]);
    const Matrix<float> a = test::random_matrix<float>(s[0], s[1], ++seed), b = test::random_matrix<float>(s[1], s[2], ++seed);
    const Matrix<float> start = test::random_matrix<float>(s[0], s[2], ++seed);
    auto run = [&] {
      Matrix<float> p, q = start, t;
      internal::product(p, a, b);
      internal::add_product(q, a, b);
      const Matrix<float> at = a.transpose();
      internal::product(t, at.transpose(), b);  // a transposed left side, as the gated expert's W^T x
      return std::array<Matrix<float>, 3>{p, q, t};
    };
    const auto one = with_threads(1, run), two = with_threads(2, run);
    CHECK(one[0] == two[0]);
    CHECK(one[1] == two[1]);
    CHECK(one[2] == two[2]);
    CHECK(one[0].isApprox(Matrix<float>(a * b), 1e-5f));
    CHECK(one[1].isApprox(Matrix<float>(start + a * b), 1e-5f));
  }
}

TEST_CASE("Linear: forward and backward hold the same bits on one thread and on two", "[parallel_product][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  for (const Index batch : {Index(1), Index(64)}) {
    CAPTURE(batch);
    const Matrix<float> x = test::random_matrix<float>(700, batch, 3), dy = test::random_matrix<float>(900, batch, 4);
    auto run = [&] {
      Generator rng(5);
      Linear<float> layer(700, 900, rng, "wide");
      Context<float> ctx(Mode::train, rng);
      const Matrix<float> y = layer.forward(x, ctx);
      const Matrix<float> dx = layer.backward(dy, ctx);
      return std::array<Matrix<float>, 3>{y, dx, layer.weight().grad};
    };
    const auto one = with_threads(1, run), two = with_threads(2, run);
    CHECK(one[0] == two[0]);
    CHECK(one[1] == two[1]);
    CHECK(one[2] == two[2]);
  }
}
