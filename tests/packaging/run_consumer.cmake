# Driver of the packaging tests that need more than ctest --build-and-test: configure, build and run a
# consumer project, then optionally install it and check whether stoch's files came along.
#   cmake -DSOURCE=<consumer> -DBINARY=<scratch> -DOUTPUT_REGEX=<re> [-DTARBALL_OF=<stoch tree>
#         -DTARBALL_NAME=stoch-x.y.z] [-DEXPECT_STOCH_INSTALLED=ON|OFF] -P run_consumer.cmake -- <configure args>
# With TARBALL_OF, a release-like tarball of the library part of the tree (what a vendored build needs: no
# tests, benchmarks or examples) is made first and passed as -DSTOCH_URL/-DSTOCH_URL_SHA256.
cmake_minimum_required(VERSION 3.20)

include(${CMAKE_CURRENT_LIST_DIR}/script_common.cmake)
packaging_script_args(configure_args)

file(REMOVE_RECURSE ${BINARY})
file(MAKE_DIRECTORY ${BINARY})

if(TARBALL_OF)
  set(stage ${BINARY}/stage/${TARBALL_NAME})
  file(COPY ${TARBALL_OF}/CMakeLists.txt ${TARBALL_OF}/LICENSE ${TARBALL_OF}/cmake ${TARBALL_OF}/include
       DESTINATION ${stage})
  set(tarball ${BINARY}/${TARBALL_NAME}.tar.gz)
  packaging_run("making ${tarball}" ${CMAKE_COMMAND} -E chdir ${BINARY}/stage ${CMAKE_COMMAND} -E tar czf ${tarball} ${TARBALL_NAME})
  file(SHA256 ${tarball} sha256)
  list(APPEND configure_args -DSTOCH_URL=${tarball} -DSTOCH_URL_SHA256=${sha256})
endif()

packaging_run("configuring ${SOURCE}" ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY}/build ${configure_args})
packaging_run("building the consumer" ${CMAKE_COMMAND} --build ${BINARY}/build)
packaging_run("running the consumer" ${BINARY}/build/consumer)
message(STATUS "${last_output}")
if(NOT last_output MATCHES "${OUTPUT_REGEX}")
  message(FATAL_ERROR "packaging: the consumer's output does not match '${OUTPUT_REGEX}'")
endif()

if(DEFINED EXPECT_STOCH_INSTALLED)
  set(prefix ${BINARY}/prefix)
  packaging_run("installing the consumer" ${CMAKE_COMMAND} --install ${BINARY}/build --prefix ${prefix})
  file(GLOB_RECURSE installed RELATIVE ${prefix} ${prefix}/*)
  message(STATUS "installed: ${installed}")
  # The consumer's own program must be there, so that an empty install cannot pass for "stoch installed nothing".
  if(NOT EXISTS ${prefix}/bin/consumer)
    message(FATAL_ERROR "packaging: the consumer's install rule did not install bin/consumer")
  endif()
  set(stoch_files ${installed})
  list(FILTER stoch_files INCLUDE REGEX "(^|/)stoch(/|Config|Targets)")
  if(EXPECT_STOCH_INSTALLED AND NOT "include/stoch/stoch.hpp" IN_LIST installed)
    message(FATAL_ERROR "packaging: STOCH_INSTALL=ON under the consumer, but stoch's headers were not installed")
  elseif(NOT EXPECT_STOCH_INSTALLED AND stoch_files)
    message(FATAL_ERROR "packaging: stoch was vendored with its install rules off, yet installed: ${stoch_files}")
  endif()
endif()
