# The run of an example's smoke test: run_example(<name> FILES <file>... ARGS <argument>...) removes ${OUT}, runs
# ${EXAMPLE} with the arguments and `--out ${OUT}`, prints its output, reports the test as skipped and returns
# from the calling script when the example exits with 77 (the MNIST data not found), fails on any other
# non-zero status, and fails unless the example wrote each listed file into ${OUT}.
macro(run_example name)
  cmake_parse_arguments(run "" "" "FILES;ARGS" ${ARGN})
  file(REMOVE_RECURSE ${OUT})
  execute_process(COMMAND ${EXAMPLE} ${run_ARGS} --out ${OUT}
                  RESULT_VARIABLE status OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  message("${stdout}${stderr}")
  if(status EQUAL 77)
    message("SKIPPED: MNIST data not found; run scripts/fetch-mnist (or set STOCH_MNIST_DIR)")
    return()
  endif()
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${name} exited with status ${status}")
  endif()
  foreach(file IN LISTS run_FILES)
    if(NOT EXISTS ${OUT}/${file})
      message(FATAL_ERROR "${name} did not write ${file}")
    endif()
  endforeach()
endmacro()
