// Tests for include/stoch/detail/block_kernels.hpp: the block mask, the block sums of dL/dh, and the forward
// and backward over the open (block, example) pairs against the dense computation written out element by
// element, including blocks open in every example (read straight from x) and in none, with dense inputs (one
// product per block) and mostly-zero ones (each pair from its non-zero inputs).
#include "stoch/detail/block_kernels.hpp"

#include "conditional/mask_gates.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"
#include "support/threads.hpp"

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

        Matrix<double> stored;  // W in the block layout
        internal::to_block_layout<double>(w, c.k, stored);
        REQUIRE(internal::from_block_layout<double>(stored, c.k) == w);

        internal::ActiveSet active;
        active.count<double>(h);
        active.build_lists<double>(h, ListLayout::by_unit);
        internal::BlockScratch<double> scratch;
        std::vector<double> open(static_cast<std::size_t>(active.nonzeros() * c.k));
        Matrix<double> y_sparse = Matrix<double>::Constant(units, c.batch, 9.0);  // the kernel zeroes it
        internal::NonzeroRows nonzero;
        nonzero.build<double>(x);
        const internal::NonzeroRows* listed = zeros ? &nonzero : nullptr;
        internal::block_expert_forward<double>(active, c.k, stored, bias.data(), x, h, open.data(), y_sparse, scratch,
                                                listed);
        CHECK(test::relative_error(y_sparse, y) <= 1e-13);

        // The dense path: H for every pair, and with dense inputs the same bits as the open pairs' H (one
        // fused multiply-add after another over the inputs, whatever the tile).
        Matrix<double> H_dense;
        internal::block_dense_forward<double>(c.k, stored, bias.data(), x, H_dense, scratch);
        CHECK(test::relative_error(H_dense, H) <= 1e-13);
        if (!zeros)
          for (Index j = 0; j < c.blocks; ++j) {
            const auto examples = active.list(j);
            for (std::size_t q = 0; q < examples.size(); ++q)
              for (Index r = 0; r < c.k; ++r)
                CHECK(open[static_cast<std::size_t>((active.offset(j) + static_cast<Index>(q)) * c.k + r)] ==
                      H_dense(j * c.k + r, examples[q]));
          }

        Matrix<double> dx = Matrix<double>::Zero(c.in, c.batch), g = Matrix<double>::Zero(c.blocks, c.batch);
        Matrix<double> dw = Matrix<double>::Zero(stored.rows(), stored.cols()), db = Matrix<double>::Zero(units, 1);
        internal::block_expert_backward<double>(active, c.k, stored, x, h, dy, open.data(), dw, db.data(), &g, &dx,
                                                scratch, listed);
        CHECK(test::relative_error(internal::from_block_layout<double>(dw, c.k), Matrix<double>(dH * x.transpose())) <=
              1e-13);
        CHECK(test::relative_error(db, Matrix<double>(dH.rowwise().sum())) <= 1e-13);
        CHECK(test::relative_error(dx, Matrix<double>(w.transpose() * dH)) <= 1e-13);
        CHECK(test::relative_error(g, dh) <= 1e-13);

        // Without dL/dx and dL/dh: the same parameter gradients, accumulated (+=) onto what is there.
        Matrix<double> dw2 = dw, db2 = db;
        internal::block_expert_backward<double>(active, c.k, stored, x, h, dy, nullptr, dw2, db2.data(), nullptr,
                                                nullptr, scratch, listed);
        CHECK(test::relative_error(dw2, Matrix<double>(2.0 * dw)) <= 1e-13);
        CHECK(test::relative_error(db2, Matrix<double>(2.0 * db)) <= 1e-13);

        // The dense path's backward: dW, db and dx for every pair (dH = h ⊙ dy, zero at closed blocks).
        Matrix<double> dH_dense = dH, dw3 = Matrix<double>::Zero(stored.rows(), stored.cols()), dx3;
        Matrix<double> db3 = Matrix<double>::Zero(units, 1);
        internal::block_dense_backward<double>(c.k, stored, x, dH_dense, dw3, db3.data(), &dx3, scratch);
        CHECK(test::relative_error(internal::from_block_layout<double>(dw3, c.k), Matrix<double>(dH * x.transpose())) <=
              1e-13);
        CHECK(test::relative_error(db3, Matrix<double>(dH.rowwise().sum())) <= 1e-13);
        CHECK(test::relative_error(dx3, Matrix<double>(w.transpose() * dH)) <= 1e-13);

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

TEST_CASE("block kernels: the same bits with one thread and with two", "[block_kernels][threads]") {
  if (!threads_available()) {
    WARN("built without OpenMP: one thread only");
    return;
  }
  // Wide enough that both the block loops and the input ranges of dL/dx are split (and unaligned sizes).
  const Index in = 517, blocks = 40, k = 16, batch = 23, units = blocks * k;
  for (const double density : {0.1, 1.0}) {
    CAPTURE(density);
    const Matrix<float> h = test::exact_mask<float>(blocks, batch, density, 7);
    Matrix<float> stored;
    internal::to_block_layout<float>(test::random_matrix<float>(units, in, 8), k, stored);
    const Matrix<float> bias = test::random_matrix<float>(units, 1, 9), x = test::random_matrix<float>(in, batch, 10);
    const Matrix<float> dy = test::random_matrix<float>(units, batch, 11);
    internal::ActiveSet active;
    active.count<float>(h);
    active.build_lists<float>(h, ListLayout::by_unit);
    struct Result {
      Matrix<float> y, dw, db, dx, g, H, dw_dense, dx_dense;
    };
    auto run = [&](int count) {
      const test::ThreadCount thread_count(count);
      Result r;
      internal::BlockScratch<float> scratch;
      std::vector<float> open(static_cast<std::size_t>(active.nonzeros() * k));
      internal::block_expert_forward<float>(active, k, stored, bias.data(), x, h, open.data(), r.y, scratch);
      r.dw.setZero(stored.rows(), stored.cols());
      r.db.setZero(units, 1);
      r.dx.setZero(in, batch);
      r.g.setZero(blocks, batch);
      internal::block_expert_backward<float>(active, k, stored, x, h, dy, open.data(), r.dw, r.db.data(), &r.g, &r.dx,
                                             scratch);
      internal::block_dense_forward<float>(k, stored, bias.data(), x, r.H, scratch);
      Matrix<float> dH = dy, db = Matrix<float>::Zero(units, 1);
      r.dw_dense.setZero(stored.rows(), stored.cols());
      internal::block_dense_backward<float>(k, stored, x, dH, r.dw_dense, db.data(), &r.dx_dense, scratch);
      return r;
    };
    const Result one = run(1), two = run(2);
    CHECK(one.y == two.y);
    CHECK(one.dw == two.dw);
    CHECK(one.db == two.db);
    CHECK(one.dx == two.dx);
    CHECK(one.g == two.g);
    CHECK(one.H == two.H);
    CHECK(one.dw_dense == two.dw_dense);
    CHECK(one.dx_dense == two.dx_dense);
  }
}
