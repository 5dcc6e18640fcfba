# Smoke test of examples/conditional_mlp: two epochs of the dense MLP and of the two gated networks (SBN,
# straight-through, whose second epoch trains with thresholded gates) on the first 2,500 training images,
# evaluated on 1,000 validation and test images; then
# results.md and results.json must exist, results.json must hold the three networks with test errors below
# chance (90 %: a network that does not learn, or whose gates or thresholds are broken, stays there), test
# gate densities near the 10 % the thresholds were calibrated to on validation, and timings that are positive,
# with the gated networks faster than the dense MLP at batch 1 (49x and 59x when the test was written; the bound
# of 2x leaves room for a loaded machine). Without the data (exit status 77) the test is skipped.
# Usage: cmake -DEXAMPLE=<conditional_mlp> -DOUT=<dir> -P check_conditional_mlp.cmake
include(${CMAKE_CURRENT_LIST_DIR}/run_example.cmake)
run_example(conditional_mlp FILES results.json results.md
            ARGS --train-limit 2500 --epochs 2 --eval-limit 1000 --timing-examples 20
                 --timing-repeats 1 --threads 1)

file(READ ${OUT}/results.json json)
string(JSON count LENGTH "${json}" networks)
if(NOT count EQUAL 3)
  message(FATAL_ERROR "results.json: expected 3 networks, found ${count}")
endif()
# Bounds on the error after two epochs on 2,500 images, against chance's 90 %: measured with this command
# (the commit that set it), dense 13.0 %, SBN 47.6 %, straight-through 20.8 % on the first 1,000 test images
# (SBN learns slowest: its gaters learn from the loss alone, README.md).
set(names dense sbn st)
set(max_error 0.25 0.75 0.4)
foreach(i RANGE 2)
  list(GET names ${i} want)
  list(GET max_error ${i} bound)
  string(JSON name GET "${json}" networks ${i} name)
  string(JSON error GET "${json}" networks ${i} test_error)
  string(JSON seconds GET "${json}" networks ${i} train_seconds_per_epoch)
  if(NOT name STREQUAL want)
    message(FATAL_ERROR "network ${i} is '${name}', expected '${want}'")
  endif()
  if(NOT error LESS bound OR error LESS 0)
    message(FATAL_ERROR "${name}: test error ${error}, expected below ${bound}")
  endif()
  if(NOT seconds GREATER 0)
    message(FATAL_ERROR "${name}: training time per epoch ${seconds}")
  endif()
  if(NOT name STREQUAL "dense")
    foreach(layer 0 1)
      string(JSON density GET "${json}" networks ${i} test_gate_density ${layer})
      if(density LESS 0.05 OR density GREATER 0.2)
        message(FATAL_ERROR "${name}: test gate density of layer ${layer} is ${density}, calibrated to 0.1 on validation")
      endif()
    endforeach()
  endif()
  message(STATUS "${name}: test error ${error}, ${seconds} s per epoch")
endforeach()

string(JSON rows LENGTH "${json}" timings)
if(NOT rows EQUAL 5)
  message(FATAL_ERROR "results.json: expected 5 timing rows (dense, and both paths of each gated network), found ${rows}")
endif()
math(EXPR last "${rows} - 1")
foreach(i RANGE ${last})
  string(JSON network GET "${json}" timings ${i} network)
  foreach(field batch1_seconds_per_example batch64_seconds_per_example)
    string(JSON value GET "${json}" timings ${i} ${field})
    if(NOT value GREATER 0)
      message(FATAL_ERROR "timing '${network}': ${field} is ${value}")
    endif()
  endforeach()
endforeach()
string(JSON targets LENGTH "${json}" targets)
if(NOT targets EQUAL 2)
  message(FATAL_ERROR "results.json: expected 2 target rows (sbn, st), found ${targets}")
endif()
foreach(i 0 1)
  string(JSON network GET "${json}" targets ${i} network)
  string(JSON speedup GET "${json}" targets ${i} batch1_speedup)
  if(NOT speedup GREATER 2)
    message(FATAL_ERROR "${network}: batch-1 inference only ${speedup}x faster than the dense MLP (expected > 2)")
  endif()
  message(STATUS "${network}: batch-1 speed-up ${speedup}x")
endforeach()
