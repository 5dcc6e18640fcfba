#include "stoch/io/serialization.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#include "stoch/core/distributions.hpp"
#include "stoch/graph/sequential.hpp"
#include "stoch/layers/linear.hpp"
#include "stoch/layers/tanh.hpp"
#include "stoch/optim/sgd.hpp"
#include "support/catch.hpp"
#include "support/gradient_check.hpp"

using namespace stoch;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under the system's temporary directory, removed with everything in it.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("stoch_serialization_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), {})); }
};

/// A small model: a gater's weights and biases, a layer's saved state and an adaptive lambda.
template <class T>
struct Tiny {
  Parameter<T> w{"gater.W", 4, 3}, b{"gater.b", 4, 1}, threshold{"gate.threshold", 4, 1, false},
      lambda{"gater.l1.lambda", 1, 1, false};
  explicit Tiny(std::uint64_t seed) {
    w.value = test::random_matrix<T>(4, 3, seed);
    b.value = test::random_matrix<T>(4, 1, seed + 1);
    threshold.value = test::random_matrix<T>(4, 1, seed + 2);
    lambda.value(0, 0) = T(0.25) + T(seed);
    w.velocity = test::random_matrix<T>(4, 3, seed + 3);
    b.velocity = test::random_matrix<T>(4, 1, seed + 4);
  }
  ParameterList<T> list() { return {&w, &b, &threshold, &lambda}; }
};

template <class T>
bool same_bits(const Matrix<T>& a, const Matrix<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), sizeof(T) * static_cast<std::size_t>(a.size())) == 0);
}

template <class T>
bool same_model(const Tiny<T>& a, const Tiny<T>& b) {
  auto same = [](const Parameter<T>& x, const Parameter<T>& y) {
    return same_bits(x.value, y.value) && same_bits(x.velocity, y.velocity);
  };
  return same(a.w, b.w) && same(a.b, b.b) && same(a.threshold, b.threshold) && same(a.lambda, b.lambda);
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes, std::size_t count) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(count));
}

ModelFileOptions some_options(bool velocities) {
  ModelFileOptions options;
  options.save_velocities = velocities;
  options.metadata.integers = {{"epoch", 7}, {"generator.position", 0xFFFFFFFFFFFFFFF0ULL}};
  options.metadata.reals = {{"learning_rate", 0.1}, {"best_valid_error", 0.0142}};
  return options;
}

}  // namespace

TEMPLATE_TEST_CASE("A model round-trips bit-exactly, with velocities and metadata", "[serialization]", float,
                   double) {
  using T = TestType;
  TempDir dir("roundtrip");
  Tiny<T> saved(1), loaded(100);
  // Values a text format would mangle: -0, NaN with a payload, infinity, a subnormal.
  saved.w.value(0, 0) = -T(0);
  saved.w.value(1, 0) = std::numeric_limits<T>::quiet_NaN();
  saved.w.value(2, 0) = -std::numeric_limits<T>::infinity();
  saved.b.value(0, 0) = std::numeric_limits<T>::denorm_min();
  const fs::path file = dir.path / "model.stoch";
  save_model(file, saved.list(), some_options(true));
  CHECK(dir.entries() == 1);  // no temporary left behind

  const ModelMetadata meta = load_model(file, loaded.list());
  CHECK(same_model(saved, loaded));
  CHECK(meta == some_options(true).metadata);
  CHECK(read_model_metadata(file) == meta);
  const ModelFileInfo info = read_model_info(file);
  CHECK(info.version == 1);
  CHECK(info.scalar_size == int(sizeof(T)));
  CHECK(info.has_velocities);
  REQUIRE(info.parameters.size() == 4);
  CHECK(info.parameters[0].name == "gater.W");
  CHECK(info.parameters[0].rows == 4);
  CHECK(info.parameters[0].cols == 3);

  // Saved without velocities: loading clears them, so the optimiser restarts them at zero.
  save_model(file, saved.list(), some_options(false));
  load_model(file, loaded.list());
  CHECK(same_bits(loaded.w.value, saved.w.value));
  CHECK(loaded.w.velocity.size() == 0);
}

TEST_CASE("A model file truncated at every byte offset is refused and the model left unchanged",
          "[serialization]") {
  TempDir dir("truncated");
  Tiny<float> saved(1), model(50);
  const Tiny<float> before = model;
  const fs::path good = dir.path / "good.stoch", cut = dir.path / "cut.stoch";
  save_model(good, saved.list(), some_options(true));
  const std::vector<std::uint8_t> bytes = read_bytes(good);
  REQUIRE(bytes.size() > 200);
  std::size_t offsets = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(cut, bytes, n);
    INFO("truncated to " << n << " of " << bytes.size() << " bytes");
    REQUIRE_THROWS_MESSAGE(load_model(cut, model.list()), n == 0 ? "empty file" : "truncated at byte " + std::to_string(n));
    REQUIRE_THROWS_MESSAGE(load_model(cut, model.list()), cut.string());
    REQUIRE(same_model(model, before));
    ++offsets;
  }
  std::printf("truncation: %zu offsets tried, every one refused\n", offsets);
  load_model(good, model.list());  // and the whole file still loads
  CHECK(same_model(model, saved));
}

TEST_CASE("Every flipped byte is refused; a flipped data byte is a checksum mismatch", "[serialization]") {
  Tiny<double> saved(1), model(50);
  const Tiny<double> before = model;
  const std::vector<std::uint8_t> bytes = serialize_model(saved.list(), some_options(true));
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    std::vector<std::uint8_t> bad = bytes;
    bad[k] ^= 0x5A;
    INFO("byte " << k << " of " << bytes.size());
    REQUIRE_THROWS(deserialize_model<double>(bad, model.list(), "flipped"));
    REQUIRE(same_model(model, before));
  }
  // Through a file: a byte in the middle (inside gater.W's velocity) and one in the checksum itself.
  TempDir dir("flipped");
  const fs::path file = dir.path / "model.stoch";
  std::vector<std::uint8_t> bad = bytes;
  bad[bytes.size() / 2] ^= 0x01;  // inside gater.W's data or velocity
  write_bytes(file, bad, bad.size());
  REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "checksum mismatch");
  bad = bytes;
  bad.back() ^= 0x80;
  write_bytes(file, bad, bad.size());
  REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "checksum mismatch");
  CHECK(same_model(model, before));
}

TEST_CASE("Foreign files are refused with a message naming the problem, the model unchanged", "[serialization]") {
  TempDir dir("foreign");
  const fs::path file = dir.path / "model.stoch";
  Tiny<float> model(50);
  const Tiny<float> before = model;
  auto unchanged = [&] { return same_model(model, before); };

  SECTION("another shape") {
    Tiny<float> other(1);
    other.w.value.resize(5, 3);
    other.w.velocity.resize(0, 0);
    save_model(file, other.list());
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()),
                           "parameter 'gater.W' is 5 x 3 in the file but 4 x 3 in the model");
  }
  SECTION("another architecture: names and counts") {
    Tiny<float> other(1);
    other.b.name = "expert.b";
    save_model(file, other.list());
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()),
                           "parameter 1 is 'expert.b' in the file but 'gater.b' in the model");
    save_model(file, ParameterList<float>{&other.w});
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "the file has 1 parameters but the model has 4");
  }
  SECTION("another scalar type") {
    Tiny<double> other(1);
    save_model(file, other.list());
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "scalar type double in file, float in model");
  }
  SECTION("another version") {
    Tiny<float> other(1);
    std::vector<std::uint8_t> bytes = serialize_model(other.list());
    bytes[8] = 7;  // the u32 version follows the 8-byte magic
    write_bytes(file, bytes, bytes.size());
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "unsupported version 7");
  }
  SECTION("not a model file") {
    const std::string text = "P5 28 28 255 -- some other file, long enough to have a header";
    write_bytes(file, std::vector<std::uint8_t>(text.begin(), text.end()), text.size());
    REQUIRE_THROWS_MESSAGE(load_model(file, model.list()), "not a stoch model file");
    REQUIRE_THROWS_MESSAGE(read_model_metadata(file), "not a stoch model file");
  }
  SECTION("a missing file") {
    REQUIRE_THROWS_MESSAGE(load_model(dir.path / "absent.stoch", model.list()), "absent.stoch: cannot open");
  }
  CHECK(unchanged());
}

TEST_CASE("Saving never leaves a partial file at the destination", "[serialization]") {
  TempDir dir("atomic");
  Tiny<float> model(1), old(2);

  // A directory that does not exist: nothing is created anywhere.
  const fs::path nowhere = dir.path / "missing" / "model.stoch";
  REQUIRE_THROWS_MESSAGE(save_model(nowhere, model.list()), "cannot create the temporary file");
  CHECK_FALSE(fs::exists(nowhere.parent_path()));
  CHECK(dir.entries() == 0);

  // A failed save (here: the rename over a directory) keeps what was at the destination and cleans up.
  const fs::path blocked = dir.path / "blocked";
  fs::create_directories(blocked / "inside");
  REQUIRE_THROWS_MESSAGE(save_model(blocked, model.list()), "cannot rename");
  CHECK(fs::is_directory(blocked / "inside"));
  CHECK(dir.entries() == 1);

  // A save that fails before writing (a null parameter) leaves the previous file whole.
  const fs::path file = dir.path / "model.stoch";
  save_model(file, old.list());
  const std::vector<std::uint8_t> previous = read_bytes(file);
  REQUIRE_THROWS_MESSAGE(save_model(file, ParameterList<float>{&model.w, nullptr}), "null pointer");
  CHECK(read_bytes(file) == previous);
  // A successful save replaces it whole.
  save_model(file, model.list());
  CHECK(read_bytes(file) == serialize_model(model.list()));
  CHECK(dir.entries() == 2);
}

// Training with momentum and noise, checkpointed half way (velocities + generator position), resumes into a
// differently initialised model with bit-identical results.
TEST_CASE("A checkpoint resumes training bit-exactly", "[serialization]") {
  TempDir dir("resume");
  const fs::path file = dir.path / "checkpoint.stoch";
  auto train = [](Tiny<double>& m, Sgd<double>& sgd, Generator& rng, int steps) {
    Matrix<double> noise(4, 3);
    for (int s = 0; s < steps; ++s) {
      fill_gaussian<double>(rng, noise);
      m.w.grad = m.w.value + noise;  // gradient of |W|^2 / 2, plus noise
      m.b.grad = m.b.value;
      m.threshold.value.array() += 0.01;  // some evolving layer state
      sgd.step();
    }
  };
  Tiny<double> a(1), b(77);
  Generator rng_a(42, 3);
  Sgd<double> sgd_a(a.list(), {.learning_rate = 0.05, .momentum = 0.9});
  train(a, sgd_a, rng_a, 10);
  ModelFileOptions options;
  options.save_velocities = true;
  options.metadata.integers = {{"step", 10}, {"generator.position", rng_a.position()}};
  save_model(file, a.list(), options);
  train(a, sgd_a, rng_a, 10);

  Sgd<double> sgd_b(b.list(), {.learning_rate = 0.05, .momentum = 0.9});
  const ModelMetadata meta = load_model(file, b.list());
  Generator rng_b(42, 3);
  rng_b.set_position(meta.integers.at("generator.position"));
  CHECK(meta.integers.at("step") == 10);
  train(b, sgd_b, rng_b, 10);
  CHECK(same_model(a, b));
  CHECK(a.w.velocity.cwiseAbs().maxCoeff() > 0);  // momentum was in play
}

TEST_CASE("Saving refuses duplicate parameter names, listing them, and writes nothing", "[serialization]") {
  TempDir dir("duplicates");
  const fs::path file = dir.path / "model.stoch";
  // Two Linear layers left with the default name "linear": both save "linear.W" and "linear.b".
  Generator rng(3);
  auto model = Sequential(Linear<float>(3, 4, rng), Tanh<float>(4), Linear<float>(4, 2, rng));
  REQUIRE_THROWS_MESSAGE(save_model(file, model.parameters()),
                         "save_model: duplicate parameter names 'linear.W' (parameters 0 2), 'linear.b' "
                         "(parameters 1 3); give every layer its own name");
  CHECK_FALSE(fs::exists(file));
  CHECK(dir.entries() == 0);  // no temporary file either
  REQUIRE_THROWS_MESSAGE(serialize_model(model.parameters()), "duplicate parameter names");
  // Named layers save.
  auto named = Sequential(Linear<float>(3, 4, rng, "hidden"), Tanh<float>(4), Linear<float>(4, 2, rng, "output"));
  save_model(file, named.parameters());
  CHECK(read_model_info(file).parameters.size() == 4);
}

TEST_CASE("Loading matches by position, checking each name and shape", "[serialization]") {
  TempDir dir("matching");
  const fs::path file = dir.path / "model.stoch";
  Tiny<float> saved(5);
  save_model(file, saved.list());
  // The same parameters in another order are refused by position and name, nothing is looked up by name.
  Tiny<float> model(6);
  const Tiny<float> before = model;
  REQUIRE_THROWS_MESSAGE(load_model(file, ParameterList<float>{&model.b, &model.w, &model.threshold, &model.lambda}),
                         "parameter 0 is 'gater.W' in the file but 'gater.b' in the model");
  CHECK(same_model(model, before));
  load_model(file, model.list());
  CHECK(same_bits(model.w.value, saved.w.value));
  CHECK(same_bits(model.lambda.value, saved.lambda.value));
}
