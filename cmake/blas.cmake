# Optional: bench/blas_products.cpp (target blas_bench), Eigen's single-precision product against Debian's
# OpenBLAS and BLIS, pthread flavours (apt-get install libopenblas-pthread-dev libblis-pthread-dev). Neither
# library is needed by stoch, its tests or CI: when one is missing, or OpenMP is (Eigen's 2-thread product
# needs it), blas_bench is simply not built; nor in a build whose products already run in BLIS (STOCH_BLAS=BLIS:
# its stoch includes blis.h, whose CBLAS prototypes clash with OpenBLAS's cblas.h).
# Results: docs/performance-notes.md#dense-products-eigen-openblas-and-blis.
#
# The flavours are linked from their own directories, not through the libblas.so.3 alternative, so that the
# benchmark measures both whichever library the alternative points to. Both libraries export cblas_sgemm and
# sgemm_; OpenBLAS is linked first (it provides them), and BLIS is called through its own bli_sgemm.
set(STOCH_BLAS_BENCH OFF)
if(STOCH_BUILD_BENCHMARKS AND CMAKE_LIBRARY_ARCHITECTURE AND NOT STOCH_WITH_BLIS)
  set(stoch_blas_libdir /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})
  set(stoch_blas_incdir /usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
  find_library(STOCH_OPENBLAS_LIBRARY NAMES openblas PATHS ${stoch_blas_libdir}/openblas-pthread NO_DEFAULT_PATH)
  find_path(STOCH_OPENBLAS_INCLUDE_DIR cblas.h PATHS ${stoch_blas_incdir}/openblas-pthread NO_DEFAULT_PATH)
  find_library(STOCH_BLIS_PTHREAD_LIBRARY NAMES blis PATHS ${stoch_blas_libdir}/blis-pthread NO_DEFAULT_PATH)
  find_path(STOCH_BLIS_PTHREAD_INCLUDE_DIR blis.h PATHS ${stoch_blas_incdir}/blis-pthread NO_DEFAULT_PATH)
  find_package(OpenMP COMPONENTS CXX QUIET)
  if(STOCH_OPENBLAS_LIBRARY AND STOCH_OPENBLAS_INCLUDE_DIR AND STOCH_BLIS_PTHREAD_LIBRARY AND STOCH_BLIS_PTHREAD_INCLUDE_DIR
     AND OpenMP_CXX_FOUND)
    set(STOCH_BLAS_BENCH ON)
    add_library(stoch_blas_comparison INTERFACE)
    # SYSTEM: blis.h has unused parameters, which -Werror would turn into errors in the project's flags.
    target_include_directories(stoch_blas_comparison SYSTEM INTERFACE ${STOCH_OPENBLAS_INCLUDE_DIR}
                                                                      ${STOCH_BLIS_PTHREAD_INCLUDE_DIR})
    target_link_libraries(stoch_blas_comparison INTERFACE ${STOCH_OPENBLAS_LIBRARY} ${STOCH_BLIS_PTHREAD_LIBRARY}
                                                          OpenMP::OpenMP_CXX)
    # blis.h would declare the CBLAS prototypes again, with its own enum types, next to OpenBLAS's cblas.h.
    target_compile_definitions(stoch_blas_comparison INTERFACE BLIS_DISABLE_CBLAS)
  endif()
  message(STATUS "stoch: blas_bench ${STOCH_BLAS_BENCH} (OpenBLAS pthread: ${STOCH_OPENBLAS_LIBRARY}, "
                 "BLIS pthread: ${STOCH_BLIS_PTHREAD_LIBRARY}, OpenMP: ${OpenMP_CXX_FOUND})")
endif()
