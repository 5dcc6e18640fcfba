# cmake -DMNIST=<binary> -DOUT=<dir> -P check_average_resume.cmake
# --average-decay evaluates the moving average of the parameters (stoch::ParameterAverage), and a run resumed
# from its checkpoint gives the numbers of an uninterrupted one: the averages and their step count are part of
# the checkpoint. The resume is given options that only other variants read (--sts-momentum, --max-norm, which
# SBN replaces with --sbn-max-norm, --st-momentum): they must not stop it, while one that SBN reads
# (--sbn-max-norm) must be refused. Prints "SKIPPED: MNIST data not found" when `mnist` exits with 77.
include(${CMAKE_CURRENT_LIST_DIR}/run_mnist.cmake)
set(common --variants sbn --train-limit 640 --eval-samples 1 --timing-repeats 1 --threads 1 --average-decay 0.99)
set(base ${OUT})

set(OUT ${base}/uninterrupted)
run_mnist_expecting_success(${common} --epochs 2)
file(READ ${OUT}/results.json uninterrupted)

set(OUT ${base}/resumed)
run_mnist_expecting_success(${common} --epochs 1)
# A resume with another value of one of the variant's own hyper-parameters is refused, and leaves the checkpoint
# as it was (the next resume continues from it).
execute_process(COMMAND ${MNIST} ${common} --epochs 2 --resume --sbn-max-norm 3 --out ${OUT}
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(status EQUAL 0 OR NOT output MATCHES "made with another --seed, --train-limit or hyper-parameters")
  message(FATAL_ERROR "mnist --resume --sbn-max-norm 3 exited with ${status}: expected the refusal of the checkpoint")
endif()
# A second run into the same directory with --resume (run_mnist would empty it first), with options SBN ignores.
execute_process(COMMAND ${MNIST} ${common} --epochs 2 --resume --sts-momentum 0.9 --max-norm 3 --st-momentum 0.2
                        --out ${OUT} RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(NOT status EQUAL 0 OR NOT output MATCHES "resumed after epoch 1")
  message(FATAL_ERROR "mnist --resume exited with ${status} or did not resume after epoch 1")
endif()
file(READ ${OUT}/results.json resumed)

string(JSON decay GET "${uninterrupted}" variants 0 settings average_decay_per_step)
if(NOT decay STREQUAL "0.99")
  message(FATAL_ERROR "results.json: settings.average_decay_per_step is '${decay}', expected 0.99")
endif()
foreach(path "test_error" "valid_error" "curve 0 valid_error" "curve 1 valid_error" "curve 1 valid_error_stochastic"
        "curve 1 threshold" "curve 1 train_criterion")
  string(REPLACE " " ";" keys "${path}")
  string(JSON a GET "${uninterrupted}" variants 0 ${keys})
  string(JSON b GET "${resumed}" variants 0 ${keys})
  if(NOT a STREQUAL b)
    message(FATAL_ERROR "${path}: ${a} uninterrupted but ${b} resumed")
  endif()
endforeach()
message(STATUS "an averaged run resumed after epoch 1 matches the uninterrupted one; other variants' options do not stop the resume, its own do")
