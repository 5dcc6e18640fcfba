# Configures stoch's source tree on its own (library only) and installs it into a scratch prefix, for the
# packaging tests of a configuration other than this build's (e.g. STOCH_WITH_ZLIB=OFF).
#   cmake -DSOURCE=<stoch tree> -DBINARY=<scratch build> -DPREFIX=<scratch prefix> -P install_stoch.cmake -- <args>
cmake_minimum_required(VERSION 3.20)

set(configure_args "")
set(after_separator OFF)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_separator)
    list(APPEND configure_args "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_separator ON)
  endif()
endforeach()

file(REMOVE_RECURSE ${BINARY} ${PREFIX})
foreach(step IN ITEMS configure install)
  if(step STREQUAL "configure")
    set(command ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY} -DSTOCH_BUILD_TESTS=OFF -DSTOCH_BUILD_BENCHMARKS=OFF
                -DSTOCH_BUILD_EXAMPLES=OFF ${configure_args})
  else()
    set(command ${CMAKE_COMMAND} --install ${BINARY} --prefix ${PREFIX})
  endif()
  execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message(STATUS "${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging: ${step} of stoch failed (${rc})")
  endif()
endforeach()
