// Eigen's malloc guard, made to throw (release builds disable eigen_assert), so that a test can prove that
// code allocates nothing: with Eigen::internal::set_is_malloc_allowed(false), any heap allocation by Eigen
// throws std::runtime_error. Both macros must be seen before Eigen's first inclusion, so this header is
// included first in its translation unit.
#pragma once

#ifdef EIGEN_CORE_H
#error "support/no_malloc.hpp must be included before any Eigen or stoch header"
#endif

#include <stdexcept>

#define EIGEN_RUNTIME_NO_MALLOC
#define eigen_assert(x)                                                                 \
  do {                                                                                  \
    if (!(x)) throw std::runtime_error("Eigen assertion failed: " #x);                  \
  } while (false)
