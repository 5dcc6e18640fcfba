# Shared by the `mnist` CTest scripts: run_mnist(<args>...) empties OUT, runs MNIST with the given arguments
# plus --out OUT, prints its output, and sets in the caller `mnist_status` and `mnist_output`. When the
# binary exits with 77 (data not found) it prints the SKIP_REGULAR_EXPRESSION line and sets `mnist_skipped`.
macro(run_mnist)
  file(REMOVE_RECURSE ${OUT})
  execute_process(COMMAND ${MNIST} ${ARGN} --out ${OUT}
                  RESULT_VARIABLE mnist_status OUTPUT_VARIABLE mnist_stdout ERROR_VARIABLE mnist_stderr)
  set(mnist_output "${mnist_stdout}${mnist_stderr}")
  message("${mnist_output}")
  set(mnist_skipped OFF)
  if(mnist_status EQUAL 77)
    message("SKIPPED: MNIST data not found; run scripts/fetch-mnist (or set STOCH_MNIST_DIR)")
    set(mnist_skipped ON)
  endif()
endmacro()

# run_mnist_expecting_success(<args>...): run_mnist, then end the calling script when the data is missing
# (reported as skipped) and fail it when `mnist` exits with an error.
macro(run_mnist_expecting_success)
  run_mnist(${ARGN})
  if(mnist_skipped)
    return()
  endif()
  if(NOT mnist_status EQUAL 0)
    message(FATAL_ERROR "mnist exited with status ${mnist_status}")
  endif()
endmacro()
