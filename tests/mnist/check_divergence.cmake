# cmake -DMNIST=<binary> -DOUT=<dir> -P check_divergence.cmake
# A learning rate of 1e38 makes the training loss non-finite within the first batches: `mnist` must stop
# with an error naming the epoch and the batch, exit non-zero, and write no checkpoint (checkpoints are
# written only after a whole epoch). Prints "SKIPPED: MNIST data not found" when `mnist` exits with 77.
include(${CMAKE_CURRENT_LIST_DIR}/run_mnist.cmake)
run_mnist(--variants baseline-rectifier --epochs 1 --train-limit 640 --eval-samples 1 --timing-repeats 1
          --threads 1 --learning-rate 1e38)
if(mnist_skipped)
  return()
endif()
if(mnist_status EQUAL 0)
  message(FATAL_ERROR "mnist exited with status 0 although its loss diverged")
endif()
if(NOT "${mnist_output}" MATCHES "training stopped at epoch 1, batch [0-9]+ of [0-9]+: .*(NaN|Inf|not finite)")
  message(FATAL_ERROR "mnist did not name the epoch and batch where the loss became non-finite")
endif()
if(EXISTS ${OUT}/checkpoints/baseline-rectifier.stoch)
  message(FATAL_ERROR "mnist wrote a checkpoint of a diverged model")
endif()
message(STATUS "divergence stopped training with a message naming the epoch and batch")
