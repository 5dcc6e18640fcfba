// Tests for include/stoch/detail/packet_math.hpp: the packet erfc against std::erfc on [0, infinity], and
// append_above (the scores above a threshold among the first `count`, never read past them).
#include "stoch/detail/packet_math.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "support/catch.hpp"

using namespace stoch;

namespace {

using DoublePacket = Eigen::internal::packet_traits<double>::type;
/// internal::perfc_nonnegative at one z (in every lane of one packet; the first lane returned).
double packet_erfc(double z) {
  DoublePacket packet[1] = {Eigen::internal::pset1<DoublePacket>(z)};
  internal::perfc_nonnegative(packet);
  double lanes[Eigen::internal::packet_traits<double>::size];
  Eigen::internal::pstoreu(lanes, packet[0]);
  return lanes[0];
}

}  // namespace

TEST_CASE("the packet erfc is erfc on [0, infinity] to 1e-12 relative", "[packet_math]") {
  // scripts/erfc-chebyshev measures 4.1e-13 for the 20-term formula; the packet exp adds about 1e-14 at z = 10.
  double worst = 0;
  for (int i = 0; i <= 1280; ++i) {
    const double z = i / 128.0;
    worst = std::max(worst, std::abs(packet_erfc(z) - std::erfc(z)) / std::erfc(z));
  }
  CHECK(worst < 1e-12);
  CHECK(packet_erfc(std::numeric_limits<double>::infinity()) == 0.0);
  CHECK(packet_erfc(40.0) == Approx(0.0).margin(1e-300));
}

TEST_CASE("append_above lists the scores above the threshold among the first `count`, never past them",
          "[packet_math]") {
  // Past `count` every score is above the threshold: a read past the count would list it.
  std::vector<float> scores(16, 5.0f);
  scores[2] = -1.0f;                                        // at the threshold: closed
  scores[4] = std::numeric_limits<float>::quiet_NaN();      // NaN: closed
  for (std::int32_t count = 1; count <= 16; ++count) {
    std::vector<std::int32_t> positions(16 + internal::kLaneSlack, -7);
    const std::int32_t open = internal::append_above(scores.data(), 100, count, -1.0f, positions.data());
    std::vector<std::int32_t> expected;
    for (std::int32_t i = 0; i < count; ++i)
      if (i != 2 && i != 4) expected.push_back(100 + i);
    INFO("count " << count);
    REQUIRE(open == static_cast<std::int32_t>(expected.size()));
    CHECK(std::equal(expected.begin(), expected.end(), positions.begin()));
  }
}
