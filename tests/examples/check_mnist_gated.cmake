# cmake -DEXAMPLE=<mnist_gated binary> -DMAX_TEST_ERROR=<percent> -P check_mnist_gated.cmake
# Runs the teaching example (examples/mnist_gated.cpp) for one epoch on the first 3,000 training images and
# checks that it exits with 0, prints a test error below MAX_TEST_ERROR (chance is 90%), a density of open
# gates near the calibrated 10% and both evaluation timings. Prints "SKIPPED: MNIST data not found" (the
# test's SKIP_REGULAR_EXPRESSION) when the example exits with 77.
execute_process(COMMAND ${EXAMPLE} --epochs 1 --train-limit 3000
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE errors)
message("${output}${errors}")
if(status EQUAL 77)
  return()  # the example printed the SKIPPED line
endif()
if(NOT status EQUAL 0)
  message(FATAL_ERROR "mnist_gated exited with status ${status}")
endif()
if(NOT output MATCHES "test error ([0-9.]+)%")
  message(FATAL_ERROR "mnist_gated printed no test error")
endif()
set(test_error ${CMAKE_MATCH_1})
if(NOT test_error LESS ${MAX_TEST_ERROR})
  message(FATAL_ERROR "test error ${test_error}% is not below ${MAX_TEST_ERROR}%")
endif()
if(NOT output MATCHES "open gates ([0-9.]+)%: ([0-9.]+)% of the expert's multiply-adds skipped")
  message(FATAL_ERROR "mnist_gated printed no density of open gates")
endif()
if(CMAKE_MATCH_1 LESS 5 OR CMAKE_MATCH_1 GREATER 15 OR CMAKE_MATCH_2 LESS 80)
  message(FATAL_ERROR "open gates ${CMAKE_MATCH_1}%, skipped ${CMAKE_MATCH_2}%: not near the calibrated 10% / 90%")
endif()
if(NOT output MATCHES "evaluating the test set: [0-9.]+ s dense, [0-9.]+ s skipping")
  message(FATAL_ERROR "mnist_gated printed no evaluation timings")
endif()
message(STATUS "test error ${test_error}% < ${MAX_TEST_ERROR}%")
