// stoch — the number of threads one model uses: the dense products and the block kernels of a gated layer
// split their work over this many threads. Threads come from OpenMP when the
// library is built with it (CMake option STOCH_OPENMP, on by default where the compiler has it; why OpenMP:
// docs/performance-notes.md#threads); without it everything runs on the calling thread.
#pragma once

#include <string>

#include <Eigen/Core>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "stoch/core/error.hpp"

/// `#pragma omp parallel for schedule(static) if(condition)` where OpenMP is on; nothing otherwise (no
/// unknown-pragma warning). For loops whose iterations write disjoint results.
#define STOCH_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP)
#define STOCH_OMP_PARALLEL_FOR(condition) STOCH_PRAGMA(omp parallel for schedule(static) if(condition))
#else
#define STOCH_OMP_PARALLEL_FOR(condition)
#endif

namespace stoch {

namespace internal {
/// Multiply-adds below which a loop runs on the calling thread: a parallel region costs microseconds.
inline constexpr double kMinParallelWork = 2.0e5;

/// The calling thread's number in the current parallel region (0 outside one, or without OpenMP): an index
/// into per-thread buffers, which must hold threads() of them.
inline int thread_index() noexcept {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
}  // namespace internal

/// Whether this build can run a model on several threads (compiled with OpenMP).
constexpr bool threads_available() noexcept {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

/// The number of threads the next forward, backward and optimiser step use (default: all cores, OpenMP's
/// default; 1 without OpenMP).
inline int threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the number of threads of this process's models (the dense products and the block kernels). Results
/// are the same bits for any count: stoch splits the work so that every sum keeps its order
/// (docs/performance-notes.md#threads). Without OpenMP, any count >= 1 is accepted and 1 is used.
inline void set_threads(int count) {
  if (count < 1) internal::fail("stoch::set_threads: the thread count must be at least 1, got " + std::to_string(count));
#if defined(_OPENMP)
  omp_set_num_threads(count);
  Eigen::setNbThreads(count);
#endif
}

}  // namespace stoch
