// The downstream program of the packaging tests: includes the umbrella header, prints the version it was
// compiled against, whether it reads gzip'd IDX files and who runs its matrix products, builds a Linear layer and runs one forward pass.
// Exits 0 only if the numbers are right and the version string agrees with the version macros.
#include <cmath>
#include <iostream>
#include <string>

#include <stoch/stoch.hpp>

static_assert(STOCH_VERSION == STOCH_VERSION_MAJOR * 10000 + STOCH_VERSION_MINOR * 100 + STOCH_VERSION_PATCH);

int main() {
  const std::string from_macros = std::to_string(STOCH_VERSION_MAJOR) + "." + std::to_string(STOCH_VERSION_MINOR) +
                                  "." + std::to_string(STOCH_VERSION_PATCH);
#ifdef STOCH_WITH_ZLIB
  const char* gzip = "yes";
#else
  const char* gzip = "no";
#endif
  // Who runs the products of more than one column: BLIS when stoch was configured with STOCH_BLAS=BLIS (its
  // targets define STOCH_WITH_BLIS, include blis.h and link BLIS), Eigen otherwise. The forward below has two.
#ifdef STOCH_WITH_BLIS
  const char* products = "BLIS";
#else
  const char* products = "Eigen";
#endif
  stoch::Linear<double> layer(2, 1);
  layer.weight().value << 2.0, -1.0;
  layer.bias().value << 0.5;
  stoch::Matrix<double> x(2, 2);  // features x batch
  x << 1.0, 3.0,
       4.0, 1.0;
  stoch::Context<double> ctx;
  const stoch::Matrix<double>& y = layer.forward(x, ctx);
  const bool ok = stoch::version == from_macros && y.rows() == 1 && y.cols() == 2 && std::abs(y(0, 0) + 1.5) < 1e-12 &&
                  std::abs(y(0, 1) - 5.5) < 1e-12;
  std::cout << "stoch consumer: stoch " << stoch::version << " (gzip IDX: " << gzip << ", products: " << products << "), forward gives " << y
            << (ok ? " (ok)\n" : " (WRONG)\n");
  return ok ? 0 : 1;
}
