# Included by the consumers that vendor stoch (add_subdirectory, FetchContent): a vendored stoch builds only
# the library. Its tests, benchmarks, examples and fuzzers are off, it added no subdirectory of its own, and
# its install rules are off unless the consumer set STOCH_INSTALL=ON (STOCH_EXPECT_INSTALL).
function(stoch_check_vendored stoch_source_dir)
  foreach(option IN ITEMS STOCH_BUILD_TESTS STOCH_BUILD_BENCHMARKS STOCH_BUILD_EXAMPLES STOCH_BUILD_FUZZERS)
    if(${option})
      message(FATAL_ERROR "vendored stoch: ${option} is ${${option}}, expected OFF")
    endif()
  endforeach()
  get_directory_property(subdirectories DIRECTORY ${stoch_source_dir} SUBDIRECTORIES)
  if(subdirectories)
    message(FATAL_ERROR "vendored stoch added its own subdirectories: ${subdirectories}")
  endif()
  if(NOT STOCH_INSTALL STREQUAL STOCH_EXPECT_INSTALL)
    message(FATAL_ERROR "vendored stoch: STOCH_INSTALL is ${STOCH_INSTALL}, expected ${STOCH_EXPECT_INSTALL}")
  endif()
endfunction()
