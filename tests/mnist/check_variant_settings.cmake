# cmake -DMNIST=<binary> -DOUT=<dir> -P check_variant_settings.cmake
# The per-variant hyper-parameters reach the variant they name and no other: a straight-through max-norm of 3
# and a gate initial norm of 2.5 on the command line must appear in straight-through's settings, while SBN keeps
# its own default max-norm (4) and takes the shared gate initial norm (1.5); straight-through names its KL
# gradient (the exact one); straight-through's default momentum (0.7) must not reach SBN (0, App. A.4:
# momentum hurt SBN), nor SBN's default KL strength (0.03) straight-through (0.003). `--weight-decay` reaches both;
# `--input-dropout` reaches SBN and `--st-input-dropout` straight-through;
# `--st-beta-noise` reaches straight-through only, with its gate bias moved by the noise mean (so that p starts at
# the target), and a beta that has no Beta mode (<= 1) is refused before anything runs. Prints "SKIPPED: MNIST
# data not found" when `mnist` exits with 77.
include(${CMAKE_CURRENT_LIST_DIR}/run_mnist.cmake)
run_mnist(--variants straight-through --epochs 1 --st-beta-noise 0.5)
if(NOT mnist_status EQUAL 2 OR NOT mnist_output MATCHES "--st-beta-noise must be 0 \\(off\\) or > 1")
  message(FATAL_ERROR "--st-beta-noise 0.5: expected status 2 and a message naming the option, got ${mnist_status}")
endif()
run_mnist_expecting_success(--variants straight-through,sbn --epochs 1 --train-limit 640 --eval-samples 1
                            --timing-repeats 1 --threads 1 --st-max-norm 3 --gate-init-norm 1.5
                            --st-gate-init-norm 2.5 --weight-decay 0.0001
                            --st-beta-noise 40.1 --input-dropout 0.2 --st-input-dropout 0.1)
file(READ ${OUT}/results.json json)
string(JSON count LENGTH "${json}" variants)
if(NOT count EQUAL 2)
  message(FATAL_ERROR "results.json: expected 2 variants, got ${count}")
endif()
math(EXPR last "${count} - 1")
foreach(i RANGE ${last})
  string(JSON name GET "${json}" variants ${i} name)
  string(JSON max_norm GET "${json}" variants ${i} settings max_norm)
  string(JSON init_norm GET "${json}" variants ${i} settings gate_init_norm)
  string(JSON momentum GET "${json}" variants ${i} settings momentum)
  string(JSON sparsity GET "${json}" variants ${i} settings sparsity)
  string(JSON weight_decay GET "${json}" variants ${i} settings weight_decay)
  string(JSON bias GET "${json}" variants ${i} settings gate_bias_init)
  string(JSON beta_noise ERROR_VARIABLE no_beta_noise GET "${json}" variants ${i} settings beta_noise)
  string(JSON input_dropout GET "${json}" variants ${i} settings input_dropout)
  if(name STREQUAL "straight-through")
    set(expected_dropout 0.1)
  else()
    set(expected_dropout 0.2)
  endif()
  if(NOT weight_decay STREQUAL "0.0001" OR NOT input_dropout STREQUAL expected_dropout)
    message(FATAL_ERROR "${name}: weight_decay '${weight_decay}' (expected 0.0001), input_dropout '${input_dropout}' "
                        "(expected ${expected_dropout})")
  endif()
  if(name STREQUAL "straight-through")
    set(expected 3)
    set(expected_init 2.5)
    set(expected_momentum 0.7)
    set(expected_sparsity "KL (Eq. 14), lambda 0.003")
    string(JSON kl_gradient GET "${json}" variants ${i} settings kl_gradient)
    if(NOT kl_gradient STREQUAL "exact (through sigm'(a))")
      message(FATAL_ERROR "straight-through: kl_gradient '${kl_gradient}' (expected the exact one)")
    endif()
    # logit(0.1) - E[noise] = -2.1972 + 2.5838 (beta 40.1, App. A.2)
    if(NOT beta_noise STREQUAL "beta 40.1, mode at the target" OR NOT bias MATCHES "^0\\.386")
      message(FATAL_ERROR "straight-through: beta_noise '${beta_noise}', gate_bias_init ${bias} (expected beta 40.1 "
                          "and 0.386...)")
    endif()
  elseif(name STREQUAL "sbn")
    set(expected 4)
    set(expected_init 1.5)
    set(expected_momentum 0)
    set(expected_sparsity "KL (Eq. 14), lambda 0.03")
    if(NOT no_beta_noise OR NOT bias MATCHES "^-2\\.197")  # no noise: logit(0.1)
      message(FATAL_ERROR "sbn: beta_noise '${beta_noise}' (expected none), gate_bias_init ${bias} (expected -2.197...)")
    endif()
  else()
    message(FATAL_ERROR "results.json: unexpected variant ${name}")
  endif()
  if(NOT max_norm STREQUAL expected OR NOT init_norm STREQUAL expected_init OR NOT momentum STREQUAL expected_momentum
     OR NOT sparsity STREQUAL expected_sparsity)
    message(FATAL_ERROR "${name}: max_norm ${max_norm} (expected ${expected}), gate_init_norm ${init_norm} "
                        "(expected ${expected_init}), momentum ${momentum} (expected ${expected_momentum}), "
                        "sparsity '${sparsity}' (expected '${expected_sparsity}')")
  endif()
endforeach()
message(STATUS "per-variant max-norms, gate initial norms, momenta, KL strengths, the KL gradient, the weight decay, "
               "the input dropout and the Beta noise reach their variants")
