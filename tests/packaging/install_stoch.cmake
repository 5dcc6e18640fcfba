# Configures stoch's source tree on its own (library only) and installs it into a scratch prefix, for the
# packaging tests of a configuration other than this build's (e.g. STOCH_WITH_ZLIB=OFF).
#   cmake -DSOURCE=<stoch tree> -DBINARY=<scratch build> -DPREFIX=<scratch prefix> -P install_stoch.cmake -- <args>
cmake_minimum_required(VERSION 3.20)

include(${CMAKE_CURRENT_LIST_DIR}/script_common.cmake)
packaging_script_args(configure_args)

file(REMOVE_RECURSE ${BINARY} ${PREFIX})
packaging_run("configuring stoch" ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY} -DSTOCH_BUILD_TESTS=OFF
              -DSTOCH_BUILD_BENCHMARKS=OFF -DSTOCH_BUILD_EXAMPLES=OFF ${configure_args})
message(STATUS "${last_output}")
packaging_run("installing stoch" ${CMAKE_COMMAND} --install ${BINARY} --prefix ${PREFIX})
message(STATUS "${last_output}")
