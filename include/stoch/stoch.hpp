// stoch — umbrella header: everything in the library.
//
// Bengio, Léonard, Courville (2013), "Estimating or Propagating Gradients Through Stochastic Neurons for
// Conditional Computation". Layers are `features x batch`; see stoch/layers/layer.hpp for the contract.
#pragma once

#include "stoch/core/context.hpp"
#include "stoch/core/distributions.hpp"
#include "stoch/core/error.hpp"
#include "stoch/core/initialization.hpp"
#include "stoch/core/math.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/mode.hpp"
#include "stoch/core/parameter.hpp"
#include "stoch/core/random.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/layer.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/rectifier.hpp"
#include "stoch/layers/sigmoid.hpp"
#include "stoch/layers/softmax_cross_entropy.hpp"
#include "stoch/layers/tanh.hpp"
