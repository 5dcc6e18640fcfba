# Shared by the packaging scripts run with cmake -P (install_stoch.cmake, run_consumer.cmake).

# packaging_script_args(<var>): the arguments after "--" on the cmake -P command line (they go to a configure).
function(packaging_script_args var)
  set(args "")
  set(after_separator OFF)
  math(EXPR last "${CMAKE_ARGC} - 1")
  foreach(i RANGE ${last})
    if(after_separator)
      list(APPEND args "${CMAKE_ARGV${i}}")
    elseif(CMAKE_ARGV${i} STREQUAL "--")
      set(after_separator ON)
    endif()
  endforeach()
  set(${var} "${args}" PARENT_SCOPE)
endfunction()

# packaging_run(<step> <command>...): runs the command; a failure stops the test naming the step and showing
# the command's output. The output is left in last_output.
function(packaging_run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging: ${step} failed (${rc}):\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()
