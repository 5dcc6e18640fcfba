# cmake -DMNIST=<binary> -DOUT=<dir> -DMAX_TEST_ERROR=<fraction> -P check_results.cmake
# Runs a one-epoch, one-variant `mnist` into OUT and checks its results files. Prints
# "SKIPPED: MNIST data not found" (the test's SKIP_REGULAR_EXPRESSION) when `mnist` exits with 77.
include(${CMAKE_CURRENT_LIST_DIR}/run_mnist.cmake)
run_mnist_expecting_success(--variants straight-through --epochs 1 --train-limit 3000 --eval-samples 2
                            --timing-repeats 1 --threads 1)
foreach(file results.json results.md learning_curves.dat checkpoints/straight-through.stoch)
  if(NOT EXISTS ${OUT}/${file})
    message(FATAL_ERROR "mnist did not write ${OUT}/${file}")
  endif()
endforeach()
file(READ ${OUT}/results.json json)
string(JSON name GET "${json}" variants 0 name)
string(JSON epochs GET "${json}" variants 0 epochs)
string(JSON test_error GET "${json}" variants 0 test_error)
string(JSON density GET "${json}" variants 0 gate_density)
if(NOT name STREQUAL "straight-through" OR NOT epochs EQUAL 1)
  message(FATAL_ERROR "results.json: expected one epoch of straight-through, got ${name}, ${epochs} epoch(s)")
endif()
# CMake compares numbers as doubles in LESS/GREATER.
if(NOT test_error LESS ${MAX_TEST_ERROR})
  message(FATAL_ERROR "test error ${test_error} is not below ${MAX_TEST_ERROR}")
endif()
if(density LESS 0.05 OR density GREATER 0.15)
  message(FATAL_ERROR "test gate density ${density} is not near the calibrated 10%")
endif()
# The three timed passes: dense, skipping, and skipping with every gate closed (the measured bound).
foreach(key eval_seconds_dense eval_seconds_sparse eval_seconds_gates_closed eval_speedup_bound)
  string(JSON value ERROR_VARIABLE missing GET "${json}" variants 0 ${key})
  if(missing OR NOT value GREATER 0)
    message(FATAL_ERROR "results.json: ${key} is '${value}' ${missing}, expected a positive number")
  endif()
endforeach()
message("mnist smoke test: test error ${test_error}, gate density ${density}")
