// First translation unit of odr_two_units (see CMakeLists.txt), with main.
#include <cmath>
#include <iostream>

#include <stoch/stoch.hpp>

float unit_b_output();

int main() {
  stoch::Generator rng(7);
  stoch::Linear<float> layer(3, 2, rng);
  stoch::Tanh<float> tanh(2);
  stoch::Context<float> ctx(stoch::Mode::eval, rng);
  const stoch::Matrix<float> x = stoch::Matrix<float>::Constant(3, 1, 0.5f);
  const float a = tanh.forward(layer.forward(x, ctx), ctx).sum();
  const float b = unit_b_output();
  const bool ok = a == b && std::isfinite(a) && a != 0.0f;
  std::cout << (ok ? "two units agree: " : "two units DISAGREE: ") << a << " vs " << b << "\n";
  return ok ? 0 : 1;
}
