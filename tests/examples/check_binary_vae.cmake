# Smoke test of examples/binary_vae: 400 steps of DisARM, REINFORCE leave-one-out and Double CV on the linear
# model, on the first 5,000 training images, bounds on 500 validation and test images; then results.json must hold one run
# per estimator with the interface's fields (issue 40), finite numbers, and a training ELBO above its value at
# step 0. Without the data (exit status 77) the test is reported as skipped.
# Usage: cmake -DEXAMPLE=<binary_vae> -DOUT=<dir> -P check_binary_vae.cmake
include(${CMAKE_CURRENT_LIST_DIR}/run_example.cmake)
run_example(binary_vae FILES results.json results.md learning_curves.dat
            ARGS --model linear --estimators disarm,rloo,double-cv --steps 400 --eval-every 200
                 --variance-repeats 5 --iw-samples 20 --train-limit 5000 --eval-limit 500 --jobs 1)

file(READ ${OUT}/results.json json)
string(JSON runs LENGTH "${json}" runs)
if(NOT runs EQUAL 3)
  message(FATAL_ERROR "results.json: expected 3 runs, found ${runs}")
endif()
set(expected disarm rloo double-cv)
math(EXPR last "${runs} - 1")
foreach(i RANGE ${last})
  list(GET expected ${i} want)
  string(JSON estimator GET "${json}" runs ${i} estimator)
  string(JSON model GET "${json}" runs ${i} model)
  string(JSON steps GET "${json}" runs ${i} steps)
  if(NOT estimator STREQUAL want OR NOT model STREQUAL "linear" OR NOT steps EQUAL 400)
    message(FATAL_ERROR "run ${i}: estimator '${estimator}', model '${model}', steps ${steps}; expected ${want}, linear, 400")
  endif()
  foreach(field train_elbo initial_train_elbo test_bound valid_bound grad_variance steps_per_second
                multiply_adds_per_step)
    string(JSON value GET "${json}" runs ${i} ${field})
    if(NOT value MATCHES "^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$")
      message(FATAL_ERROR "run ${i} (${estimator}): ${field} is '${value}', not a finite number")
    endif()
    set(${field} ${value})
  endforeach()
  foreach(field grad_variance steps_per_second multiply_adds_per_step)
    if(${field} MATCHES "^-" OR ${field} MATCHES "^0(\\.0*)?$")
      message(FATAL_ERROR "run ${i} (${estimator}): ${field} is ${${field}}, not positive")
    endif()
  endforeach()
  # CMake's math is integer only: compare whole nats (400 steps gain more than ten).
  string(REGEX MATCH "^-?[0-9]+" start "${initial_train_elbo}")
  string(REGEX MATCH "^-?[0-9]+" end "${train_elbo}")
  if(NOT end GREATER start)
    message(FATAL_ERROR "run ${i} (${estimator}): the training ELBO did not improve: ${initial_train_elbo} at step 0, "
                        "${train_elbo} at step 400")
  endif()
  message(STATUS "${estimator}: train ELBO ${initial_train_elbo} -> ${train_elbo}, test bound ${test_bound}")
endforeach()
