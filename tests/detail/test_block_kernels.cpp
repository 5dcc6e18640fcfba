// Tests for include/stoch/detail/block_kernels.hpp: the block mask, the block sums of dL/dh, and the forward
// and backward over the open (block, example) pairs against the dense computation written out element by
// element, including blocks open in every example (read straight from x) and in none, with dense inputs (one
// product per block) and mostly-zero ones (each pair from its non-zero inputs).
#include "stoch/detail/block_kernels.hpp"

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;

namespace {

/// A gate mask of `blocks x batch` with exactly `density` open pairs, block 0 open in every example and the
/// last block closed in every example (when there are at least 3 blocks and the density leaves room).
Matrix<double> gate_mask(Index blocks, Index batch, double density, std::uint64_t seed) {
  Matrix<double> h = test::exact_mask<double>(blocks, batch, density, seed);
  if (blocks >= 3 && density > 0.0 && density < 1.0) {
    const Index open = (h.array() != 0.0).count();
    Matrix<double> moved = Matrix<double>::Zero(blocks, batch);
    moved.row(0).setConstant(0.75);  // open everywhere
    Index left = open - batch;
    for (Index b = 0; b < batch && left > 0; ++b)
      for (Index j = 1; j + 1 < blocks && left > 0; ++j)
        if (h(j, b) != 0.0) {
          moved(j, b) = h(j, b);
          --left;
        }
    if (open >= batch) h = moved;
  }
  return h;
}

struct Case {
  Index in, blocks, k, batch;
};

}  // namespace

TEST_CASE("block kernels: forward and backward over the open pairs equal the dense computation", "[block_kernels]") {
  // k = 16, 3, 8, 1, 20 (a chunk of 16 and one of 4 with float packets of 8 or 16), 80 (more than 4 packets).
  const Case cases[] = {{37, 3, 16, 1}, {37, 3, 16, 33}, {5, 7, 3, 9}, {64, 4, 8, 64}, {1, 2, 1, 3},
                        {23, 3, 20, 5}, {19, 2, 80, 4}};
  std::uint64_t seed = 40;
  for (const bool zeros : {false, true})
    for (const Case& c : cases)
      for (const double density : {0.0, 0.1, 0.5, 1.0}) {
        CAPTURE(zeros, c.in, c.blocks, c.k, c.batch, density);
        const Index units = c.blocks * c.k;
        const Matrix<double> h = gate_mask(c.blocks, c.batch, density, ++seed);
        const Matrix<double> w = test::random_matrix<double>(units, c.in, ++seed);
        const Matrix<double> bias = test::random_matrix<double>(units, 1, ++seed);
        Matrix<double> x = test::random_matrix<double>(c.in, c.batch, ++seed);
        if (zeros) {  // about 90 % zero inputs, a whole zero column, and the input of a gated layer below
          x = (test::random_matrix<double>(c.in, c.batch, ++seed).array() > 1.28).select(x, 0.0);
          x.col(0).setZero();
        }
        const Matrix<double> dy = test::random_matrix<double>(units, c.batch, ++seed);

        // The definition, entry by entry: y_i = h_{i/k} H_i, H = W x + b.
        const Matrix<double> H = (w * x).colwise() + bias.col(0);
        Matrix<double> y(units, c.batch), dH(units, c.batch), dh = Matrix<double>::Zero(c.blocks, c.batch);
        for (Index b = 0; b < c.batch; ++b)
          for (Index i = 0; i < units; ++i) {
            y(i, b) = h(i / c.k, b) * H(i, b);
            dH(i, b) = h(i / c.k, b) * dy(i, b);
            if (h(i / c.k, b) != 0.0) dh(i / c.k, b) += dy(i, b) * H(i, b);
          }

        internal::ActiveSet active;
        active.count<double>(h);
        active.build_lists<double>(h, ListLayout::by_unit);
        internal::BlockScratch<double> scratch;
        std::vector<double> open(static_cast<std::size_t>(active.nonzeros() * c.k));
        Matrix<double> y_sparse = Matrix<double>::Constant(units, c.batch, 9.0);  // the kernel zeroes it
        internal::NonzeroRows nonzero;
        nonzero.build<double>(x);
        const internal::NonzeroRows* listed = zeros ? &nonzero : nullptr;
        internal::block_expert_forward<double>(active, c.k, w, bias.data(), x, h, open.data(), y_sparse, scratch, listed);
        CHECK(test::relative_error(y_sparse, y) <= 1e-13);

        Matrix<double> dx = Matrix<double>::Zero(c.in, c.batch), g = Matrix<double>::Zero(c.blocks, c.batch);
        Matrix<double> dw = Matrix<double>::Zero(units, c.in), db = Matrix<double>::Zero(units, 1);
        internal::block_expert_backward<double>(active, c.k, w, x, h, dy, open.data(), dw, db.data(), &g, &dx, scratch,
                                                listed);
        CHECK(test::relative_error(dw, Matrix<double>(dH * x.transpose())) <= 1e-13);
        CHECK(test::relative_error(db, Matrix<double>(dH.rowwise().sum())) <= 1e-13);
        CHECK(test::relative_error(dx, Matrix<double>(w.transpose() * dH)) <= 1e-13);
        CHECK(test::relative_error(g, dh) <= 1e-13);

        // Without dL/dx and dL/dh: the same parameter gradients, accumulated (+=) onto what is there.
        Matrix<double> dw2 = dw, db2 = db;
        internal::block_expert_backward<double>(active, c.k, w, x, h, dy, nullptr, dw2, db2.data(), nullptr, nullptr,
                                                scratch, listed);
        CHECK(test::relative_error(dw2, Matrix<double>(2.0 * dw)) <= 1e-13);
        CHECK(test::relative_error(db2, Matrix<double>(2.0 * db)) <= 1e-13);

        // The dense path's helpers.
        Matrix<double> masked;
        internal::block_mask_product<double>(h, c.k, H, masked);
        CHECK(masked == y);
        Matrix<double> all, open_only;
        internal::block_gate_gradient<double>(h, c.k, dy, H, false, all);
        internal::block_gate_gradient<double>(h, c.k, dy, H, true, open_only);
        CHECK(test::relative_error(open_only, dh) <= 1e-13);
        for (Index b = 0; b < c.batch; ++b)
          for (Index j = 0; j < c.blocks; ++j)
            CHECK(all(j, b) == Approx(dy.col(b).segment(j * c.k, c.k).dot(H.col(b).segment(j * c.k, c.k))));
      }
}
