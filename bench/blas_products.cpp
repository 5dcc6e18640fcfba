// blas_bench: Eigen's single-precision product against OpenBLAS's and BLIS's sgemm at the library's shapes, on
// 1 and 2 threads: should stoch's dense products go to a BLAS (EIGEN_USE_BLAS or direct calls)? Built by
// cmake/blas.cmake only when Debian's pthread flavours of both libraries and OpenMP are there.
//
//   BM_Sgemm/<lib>/<threads>/<M>/<K>/<N>/<op>      C (M x N) = op(A) op(B), inner dimension K, wall time
//
// <lib>: 0 Eigen, its own parallel product (Eigen::setNbThreads; OpenMP); 1 Eigen single-threaded on each of
// <threads> OpenMP threads, each computing a slice of C's columns (of its rows when N = 1): how stoch splits a
// product, the same bits for any thread count; 2 OpenBLAS cblas_sgemm (openblas_set_num_threads); 3 BLIS
// bli_sgemm (bli_thread_set_num_threads); 4 OpenBLAS cblas_sgemv and 5 BLIS bli_sgemv, for N = 1 only: a
// product with one column is a matrix-vector product, which Eigen computes with its GEMV kernel, and
// EIGEN_USE_BLAS, or a direct call, would hand to the BLAS's sgemv, not to its sgemm.
// <op>: 0 A B (forward, W x); 1 A^T B with A stored K x M (backward, W^T dy); 2 A B^T with B stored N x K
// (backward, dy x^T): as Linear's forward and backward multiply.
//
// Before the benchmarks, the program prints what each library runs on (OpenBLAS's core type, BLIS's
// configuration) and checks every library at every shape: the largest difference from Eigen's 1-thread
// result (relative to the largest |C|: a wrong transpose or leading dimension would show as O(1)) and whether
// 2 threads give the same bits as 1. With repetitions, it ends with a markdown table of the medians and each
// library's time relative to Eigen's on 1 thread. `--check-only` stops after the check.
//
// BLIS is called through its own API: both libraries export cblas_sgemm and sgemm_, which resolve to
// OpenBLAS's (linked first), and BLIS's CBLAS layer calls sgemm_. Results: docs/performance-notes.md.
#include <benchmark/benchmark.h>
#include <blis.h>
#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <Eigen/Core>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
using Index = Eigen::Index;

enum Lib : int { kEigen = 0, kEigenSplit = 1, kOpenBlas = 2, kBlis = 3, kOpenBlasGemv = 4, kBlisGemv = 5 };
constexpr const char* kLibName[] = {"Eigen", "Eigen, split by stoch's rule", "OpenBLAS sgemm", "BLIS sgemm",
                                    "OpenBLAS sgemv", "BLIS sgemv"};
enum Op : int { kAB = 0, kAtB = 1, kABt = 2 };

struct Shape {
  Index m, k, n;
  Op op;
  const char* what;
};

// The paper's MNIST network at batch 32 (Sec. 5, App. A), forward and backward, and the wide network of
// issue 38 (N = 8192 and 4096 experts, a gater bottleneck of 256) at batch 64 and 1.
const Shape kShapes[] = {
    {2000, 784, 32, kAB, "MNIST expert W x"},
    {400, 784, 32, kAB, "MNIST gater, first layer"},
    {2000, 400, 32, kAB, "MNIST gater, second layer"},
    {10, 2000, 32, kAB, "MNIST output layer"},
    {784, 2000, 32, kAtB, "MNIST expert W^T dy"},
    {2000, 32, 784, kABt, "MNIST expert dy x^T"},
    {8192, 8192, 64, kAB, "wide, N = 8192, batch 64"},
    {8192, 8192, 1, kAB, "wide, N = 8192, batch 1"},
    {4096, 4096, 64, kAB, "wide, N = 4096, batch 64"},
    {4096, 4096, 1, kAB, "wide, N = 4096, batch 1"},
    {256, 8192, 64, kAB, "wide gater, first layer, batch 64"},
};

struct Operands {
  Matrix a, b, c;
  Operands(const Shape& s, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto fill = [&](Matrix& x, Index rows, Index cols) {
      x.resize(rows, cols);
      for (Index j = 0; j < cols; ++j)
        for (Index i = 0; i < rows; ++i) x(i, j) = uniform(rng);
    };
    fill(a, s.op == kAtB ? s.k : s.m, s.op == kAtB ? s.m : s.k);
    fill(b, s.op == kABt ? s.n : s.k, s.op == kABt ? s.k : s.n);
    c.setZero(s.m, s.n);
  }
};

void eigen_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c) {
  switch (s.op) {
    case kAB: c.noalias() = a * b; break;
    case kAtB: c.noalias() = a.transpose() * b; break;
    case kABt: c.noalias() = a * b.transpose(); break;
  }
}

// Each thread computes whole columns of C (whole rows when C has one column) with a single-threaded Eigen
// product: Eigen does not parallelise inside a parallel region. The sum over K of one entry of C is then the
// same computation whatever the thread count, as long as Eigen blocks K independently of the slice's width.
void eigen_split_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const Index parts = omp_get_num_threads(), part = omp_get_thread_num();
    if (s.n >= parts) {
      const Index first = s.n * part / parts, count = s.n * (part + 1) / parts - first;
      switch (s.op) {
        case kAB: c.middleCols(first, count).noalias() = a * b.middleCols(first, count); break;
        case kAtB: c.middleCols(first, count).noalias() = a.transpose() * b.middleCols(first, count); break;
        case kABt: c.middleCols(first, count).noalias() = a * b.middleRows(first, count).transpose(); break;
      }
    } else {
      const Index first = s.m * part / parts, count = s.m * (part + 1) / parts - first;
      switch (s.op) {
        case kAB: c.middleRows(first, count).noalias() = a.middleRows(first, count) * b; break;
        case kAtB: c.middleRows(first, count).noalias() = a.middleCols(first, count).transpose() * b; break;
        case kABt: c.middleRows(first, count).noalias() = a.middleRows(first, count) * b.transpose(); break;
      }
    }
  }
}

void openblas_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c) {
  cblas_sgemm(CblasColMajor, s.op == kAtB ? CblasTrans : CblasNoTrans, s.op == kABt ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(s.m), static_cast<blasint>(s.n), static_cast<blasint>(s.k), 1.0f, a.data(),
              static_cast<blasint>(a.rows()), b.data(), static_cast<blasint>(b.rows()), 0.0f, c.data(),
              static_cast<blasint>(c.rows()));
}

void blis_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c) {
  float one = 1.0f, zero = 0.0f;
  bli_sgemm(s.op == kAtB ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, s.op == kABt ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
            s.m, s.n, s.k, &one, const_cast<float*>(a.data()), 1, a.rows(), const_cast<float*>(b.data()), 1,
            b.rows(), &zero, c.data(), 1, c.rows());
}

// N = 1, op A B only (the wide network's batch-1 forward).
void openblas_vector_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c) {
  cblas_sgemv(CblasColMajor, CblasNoTrans, static_cast<blasint>(s.m), static_cast<blasint>(s.k), 1.0f, a.data(),
              static_cast<blasint>(a.rows()), b.data(), 1, 0.0f, c.data(), 1);
}

void blis_vector_product(const Shape& s, const Matrix& a, const Matrix& b, Matrix& c) {
  float one = 1.0f, zero = 0.0f;
  bli_sgemv(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, s.m, s.k, &one, const_cast<float*>(a.data()), 1, a.rows(),
            const_cast<float*>(b.data()), 1, &zero, c.data(), 1);
}

bool applies(Lib lib, const Shape& s) { return lib < kOpenBlasGemv || (s.n == 1 && s.op == kAB); }

// Sets the thread count of the library about to run (each library keeps its own) and runs one product.
void set_threads(Lib lib, int threads) {
  Eigen::setNbThreads(lib == kEigen ? threads : 1);
  if (lib == kOpenBlas || lib == kOpenBlasGemv) openblas_set_num_threads(threads);
  if (lib == kBlis || lib == kBlisGemv) bli_thread_set_num_threads(threads);
}

void product(Lib lib, int threads, const Shape& s, Operands& x) {
  switch (lib) {
    case kEigen: eigen_product(s, x.a, x.b, x.c); break;
    case kEigenSplit: eigen_split_product(s, x.a, x.b, x.c, threads); break;
    case kOpenBlas: openblas_product(s, x.a, x.b, x.c); break;
    case kBlis: blis_product(s, x.a, x.b, x.c); break;
    case kOpenBlasGemv: openblas_vector_product(s, x.a, x.b, x.c); break;
    case kBlisGemv: blis_vector_product(s, x.a, x.b, x.c); break;
  }
}

void BM_Sgemm(benchmark::State& state, Lib lib, int threads, Shape s) {
  Operands x(s, 2013);
  set_threads(lib, threads);
  for (auto _ : state) {
    product(lib, threads, s, x);
    benchmark::DoNotOptimize(x.c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * static_cast<double>(s.m * s.k * s.n),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

std::string shape_key(const Shape& s) {
  return std::to_string(s.m) + "/" + std::to_string(s.k) + "/" + std::to_string(s.n) + "/" + std::to_string(s.op);
}

const bool registered = [] {
  for (const Shape& s : kShapes)
    for (int threads : {1, 2})
      for (int lib = kEigen; lib <= kBlisGemv; ++lib) {
        if (!applies(static_cast<Lib>(lib), s)) continue;
        const std::string name =
            "BM_Sgemm/" + std::to_string(lib) + "/" + std::to_string(threads) + "/" + shape_key(s);
        // Wall time: the BLAS's worker threads do not count in the calling thread's CPU time.
        benchmark::RegisterBenchmark(name.c_str(), BM_Sgemm, static_cast<Lib>(lib), threads, s)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
  return true;
}();

// ---- the check: agreement with Eigen and the same bits on 1 and 2 threads ----

bool same_bits(const Matrix& x, const Matrix& y) {
  return x.size() == y.size() &&
         std::memcmp(x.data(), y.data(), static_cast<std::size_t>(x.size()) * sizeof(float)) == 0;
}

void check() {
  std::printf("Check: |C - C_Eigen,1 thread|max / |C_Eigen|max, and whether 2 threads give 1 thread's bits\n");
  std::printf("%-34s %-18s", "shape (M x K x N)", "");
  for (int lib = kEigen; lib <= kBlisGemv; ++lib) std::printf(" | %-28s", kLibName[lib]);
  std::printf("\n");
  for (const Shape& s : kShapes) {
    Operands x(s, 2013);
    set_threads(kEigen, 1);
    eigen_product(s, x.a, x.b, x.c);
    const Matrix reference = x.c;
    const float scale = reference.cwiseAbs().maxCoeff();
    std::printf("%-34s %5ldx%5ldx%5ld ", s.what, static_cast<long>(s.m), static_cast<long>(s.k),
                static_cast<long>(s.n));
    for (int l = kEigen; l <= kBlisGemv; ++l) {
      const Lib lib = static_cast<Lib>(l);
      if (!applies(lib, s)) {
        std::printf(" | %-28s", "-");
        continue;
      }
      Matrix result[2];
      for (int threads : {1, 2}) {
        x.c.setZero();
        set_threads(lib, threads);
        product(lib, threads, s, x);
        result[threads - 1] = x.c;
      }
      const double error = static_cast<double>((result[0] - reference).cwiseAbs().maxCoeff() / scale);
      char cell[64];
      std::snprintf(cell, sizeof cell, "%.1e, %s", error,
                    same_bits(result[0], result[1]) ? "2 thr same bits" : "2 thr DIFFER");
      std::printf(" | %-28s", cell);
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

// ---- the summary: a markdown table of the medians (or of the single runs, without repetitions) ----

class TableReporter : public benchmark::ConsoleReporter {
 public:
  // Colour only on a terminal: the output is meant to be kept in a file.
  TableReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_Defaults : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (!median && run.run_type != Run::RT_Iteration) continue;
      int lib = 0, threads = 0;
      char shape[64] = {};
      if (std::sscanf(run.run_name.function_name.c_str(), "BM_Sgemm/%d/%d/%63s", &lib, &threads, shape) != 3)
        continue;
      auto& cell = times_[std::string(shape)][{lib, threads}];
      if (median) {
        cell.median = run.GetAdjustedRealTime();
        cell.has_median = true;
      } else {
        cell.single = run.GetAdjustedRealTime();
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nMedian wall time in µs per product; in parentheses, the time relative to Eigen's on 1 thread "
                "(< 1: faster than Eigen)\n\n");
    std::printf("| shape M x K x N | threads |");
    for (int lib = kEigen; lib <= kBlisGemv; ++lib) std::printf(" %s |", kLibName[lib]);
    std::printf("\n|---|---|");
    for (int lib = kEigen; lib <= kBlisGemv; ++lib) std::printf("---|");
    std::printf("\n");
    for (const Shape& s : kShapes) {
      const auto found = times_.find(shape_key(s));
      if (found == times_.end()) continue;
      const auto& row = found->second;
      const auto base = row.find({kEigen, 1});
      const double eigen = base == row.end() ? 0.0 : base->second.value();
      for (int threads : {1, 2}) {
        const char* op = s.op == kAtB ? " (A^T B)" : s.op == kABt ? " (A B^T)" : "";
        std::printf("| %ldx%ldx%ld%s | %d |", static_cast<long>(s.m), static_cast<long>(s.k),
                    static_cast<long>(s.n), op, threads);
        for (int lib = kEigen; lib <= kBlisGemv; ++lib) {
          const auto cell = row.find({lib, threads});
          if (cell == row.end()) {
            std::printf(" – |");
          } else if (eigen > 0) {
            std::printf(" %.1f (%.2f) |", cell->second.value(), cell->second.value() / eigen);
          } else {
            std::printf(" %.1f |", cell->second.value());
          }
        }
        std::printf("\n");
      }
    }
    std::fflush(stdout);
  }

 private:
  struct Cell {
    double median = 0, single = 0;
    bool has_median = false;
    double value() const { return has_median ? median : single; }
  };
  std::map<std::string, std::map<std::pair<int, int>, Cell>> times_;
};

}  // namespace

int main(int argc, char** argv) {
  bool check_only = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--check-only") == 0)
      check_only = true;
    else
      args.push_back(argv[i]);
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;

  const std::string openblas = std::string(openblas_get_config()) + ", core " + openblas_get_corename();
  const std::string blis = std::string("BLIS ") + bli_info_get_version_str() + ", configuration " +
                           bli_arch_string(bli_arch_query_id());
  const std::string eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                            std::to_string(EIGEN_MINOR_VERSION) + ", " + Eigen::SimdInstructionSetsInUse();
  std::printf("OpenBLAS: %s\n%s\nEigen %s\n\n", openblas.c_str(), blis.c_str(), eigen.c_str());
  benchmark::AddCustomContext("openblas", openblas);
  benchmark::AddCustomContext("blis", blis);
  benchmark::AddCustomContext("eigen", eigen);

  check();
  if (check_only) return 0;
  std::printf("\n");
  TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
