// Second translation unit of odr_two_units (see CMakeLists.txt): the same header, the same instantiations.
#include <stoch/stoch.hpp>

float unit_b_output() {
  stoch::Generator rng(7);
  stoch::Linear<float> layer(3, 2, rng);
  stoch::Tanh<float> tanh(2);
  stoch::Context<float> ctx(stoch::Mode::eval, rng);
  const stoch::Matrix<float> x = stoch::Matrix<float>::Constant(3, 1, 0.5f);
  return tanh.forward(layer.forward(x, ctx), ctx).sum();
}
