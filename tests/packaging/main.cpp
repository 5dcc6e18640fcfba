// The downstream program of the packaging tests: includes the umbrella header, builds a Linear layer and
// runs one forward pass. Exits 0 only if the numbers are right.
#include <cmath>
#include <iostream>

#include <stoch/stoch.hpp>

int main() {
  stoch::Linear<double> layer(2, 1);
  layer.weight().value << 2.0, -1.0;
  layer.bias().value << 0.5;
  stoch::Matrix<double> x(2, 2);  // features x batch
  x << 1.0, 3.0,
       4.0, 1.0;
  stoch::Context<double> ctx;
  const stoch::Matrix<double>& y = layer.forward(x, ctx);
  const bool ok = y.rows() == 1 && y.cols() == 2 && std::abs(y(0, 0) + 1.5) < 1e-12 && std::abs(y(0, 1) - 5.5) < 1e-12;
  std::cout << "stoch consumer: forward gives " << y << (ok ? " (ok)\n" : " (WRONG)\n");
  return ok ? 0 : 1;
}
