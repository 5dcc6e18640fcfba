// stoch — saving and loading a model: every Parameter of a list (trainable weights and layer state such as
// running averages, thresholds and adaptive penalties), optionally the optimiser velocities, and named metadata,
// so that a training run can be resumed bit-exactly.
//
// File format, version 1. Every integer is little-endian; scalars are IEEE-754 binary32/binary64 stored as their
// little-endian bit patterns, whatever the host's byte order.
//
//   magic            8 bytes  "STOCHMDL"
//   version          u32      1
//   scalar size      u32      4 (float) or 8 (double)
//   flags            u32      bit 0: velocities present; other bits 0
//   integer count    u32      then per entry: name (u32 length + bytes), u64 value
//   real count       u32      then per entry: name (u32 length + bytes), f64 value
//   parameter count  u64      then per parameter:
//     name (u32 length + bytes), rows u64, cols u64, rows * cols scalars (column-major);
//     if velocities: velocity rows u64, cols u64 (0 x 0, or rows x cols), its scalars
//   checksum         u64      FNV-1a 64 of every byte before it
//
// FNV-1a changes its state bijectively with every byte, so any single corrupted byte is always detected.
// Loading reads the whole file, then validates everything (magic, version, scalar type, structure and sizes
// against the file size before allocating anything, checksum, then every name and shape against the in-memory
// list) before it writes a single value: a bad file throws stoch::Error naming the file and the problem, and
// leaves the model untouched. Saving writes a temporary file in the destination's directory, fsyncs it and
// renames it over the destination, so the destination is always either the old file or the whole new one.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define STOCH_POSIX_FILES 1
#endif

#include "stoch/core/error.hpp"
#include "stoch/core/matrix.hpp"
#include "stoch/core/parameter.hpp"
#include "stoch/io/checksum.hpp"

namespace stoch {

/// Named values saved next to the parameters: epoch, batch, generator position, learning rate...
struct ModelMetadata {
  std::map<std::string, std::uint64_t> integers;
  std::map<std::string, double> reals;
  bool operator==(const ModelMetadata&) const = default;
};

struct ModelFileOptions {
  ModelMetadata metadata;
  bool save_velocities = false;  ///< also save Parameter::velocity (momentum), for resuming training
};

/// What a file holds, without loading it into a model (read_model_info).
struct ModelFileInfo {
  struct Entry {
    std::string name;
    Index rows = 0, cols = 0;
  };
  int version = 0;
  int scalar_size = 0;  ///< 4 (float) or 8 (double)
  bool has_velocities = false;
  ModelMetadata metadata;
  std::vector<Entry> parameters;
};

inline constexpr char kModelMagic[8] = {'S', 'T', 'O', 'C', 'H', 'M', 'D', 'L'};
inline constexpr std::uint32_t kModelFormatVersion = 1;

namespace internal {

inline constexpr std::uint32_t kVelocityFlag = 1;

inline const char* scalar_name(std::uint32_t size) { return size == 4 ? "float" : size == 8 ? "double" : "?"; }

template <class T>
constexpr std::uint32_t scalar_size() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "models are float or double");
  static_assert(std::numeric_limits<T>::is_iec559, "the file format stores IEEE-754 scalars");
  return sizeof(T);
}

/// Appends little-endian encodings to a byte buffer.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<std::uint8_t>& out) : out_(out) {}

  template <class U>
  void integer(U value) {
    static_assert(std::is_unsigned_v<U>);
    for (std::size_t i = 0; i < sizeof(U); ++i) out_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
  }
  void real(double value) { integer(std::bit_cast<std::uint64_t>(value)); }
  void name(const std::string& s) {
    if (s.size() > std::numeric_limits<std::uint32_t>::max()) fail("save_model: name too long");
    integer(static_cast<std::uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  template <class T>
  void matrix(const Matrix<T>& m) {
    integer(static_cast<std::uint64_t>(m.rows()));
    integer(static_cast<std::uint64_t>(m.cols()));
    const std::size_t n = static_cast<std::size_t>(m.size());
    if (n == 0) return;
    if constexpr (std::endian::native == std::endian::little) {
      const auto* p = reinterpret_cast<const std::uint8_t*>(m.data());
      out_.insert(out_.end(), p, p + n * sizeof(T));
    } else {
      using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
      for (std::size_t k = 0; k < n; ++k) integer(std::bit_cast<Bits>(m.data()[k]));
    }
  }

 private:
  std::vector<std::uint8_t>& out_;
};

/// Bounds-checked little-endian reads; every failure names the source and the byte offset.
class ByteReader {
 public:
  ByteReader(std::span<const std::uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  [[noreturn]] void error(const std::string& problem) const { fail(source_ + ": " + problem); }

  std::size_t position() const { return pos_; }
  std::size_t remaining() const { return bytes_.size() - pos_; }

  /// Throws "truncated at byte N" unless `n` more bytes are there.
  void need(std::uint64_t n, const std::string& what) const {
    if (n > remaining())
      error("truncated at byte " + std::to_string(bytes_.size()) + " (" + what + " needs " + std::to_string(n) +
            " bytes at offset " + std::to_string(pos_) + ")");
  }

  void skip(std::size_t n, const char* what) {
    need(n, what);
    pos_ += n;
  }

  template <class U>
  U integer(const char* what) {
    need(sizeof(U), what);
    U value = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) value |= static_cast<U>(static_cast<U>(bytes_[pos_ + i]) << (8 * i));
    pos_ += sizeof(U);
    return value;
  }

  std::string name(const std::string& what) {
    const auto length = integer<std::uint32_t>("a name's length");
    need(length, what);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  /// Skips a `rows x cols` block of `scalar_size`-byte scalars after checking that it fits; returns its offset.
  std::size_t skip_block(std::uint64_t rows, std::uint64_t cols, std::uint32_t scalar_size, const std::string& what) {
    constexpr auto max_index = static_cast<std::uint64_t>(std::numeric_limits<Index>::max());
    if (rows > max_index || cols > max_index) error(what + " has an impossible shape");
    const std::uint64_t capacity = remaining() / scalar_size;
    if (rows != 0 && cols > capacity / rows)
      error("truncated at byte " + std::to_string(bytes_.size()) + " (" + what + ", " + std::to_string(rows) +
            " x " + std::to_string(cols) + ", needs more bytes than the " + std::to_string(remaining()) +
            " left at offset " + std::to_string(pos_) + ")");
    const std::size_t offset = pos_;
    pos_ += static_cast<std::size_t>(rows * cols * scalar_size);
    return offset;
  }

  std::span<const std::uint8_t> bytes() const { return bytes_; }

 private:
  std::span<const std::uint8_t> bytes_;
  const std::string& source_;
  std::size_t pos_ = 0;
};

/// Where a parameter's numbers are in a validated file.
struct ParsedEntry {
  std::string name;
  std::uint64_t rows = 0, cols = 0, velocity_rows = 0, velocity_cols = 0;
  std::size_t data = 0, velocity_data = 0;
};

struct ParsedModel {
  std::uint32_t version = 0, scalar_size = 0, flags = 0;
  ModelMetadata metadata;
  std::vector<ParsedEntry> entries;
};

/// Validates the whole byte image (structure, sizes, checksum) without touching any model.
inline ParsedModel parse_model(std::span<const std::uint8_t> bytes, const std::string& source) {
  ByteReader in(bytes, source);
  if (bytes.empty()) in.error("empty file, not a stoch model file");
  // A prefix of the magic is a truncated model file; anything else is another kind of file.
  if (std::memcmp(bytes.data(), kModelMagic, std::min(bytes.size(), sizeof(kModelMagic))) != 0)
    in.error("not a stoch model file (bad magic)");
  in.skip(sizeof(kModelMagic), "the magic");

  ParsedModel model;
  model.version = in.integer<std::uint32_t>("the format version");
  if (model.version != kModelFormatVersion)
    in.error("unsupported version " + std::to_string(model.version) + " (this build reads version " +
             std::to_string(kModelFormatVersion) + ")");
  model.scalar_size = in.integer<std::uint32_t>("the scalar type");
  if (model.scalar_size != 4 && model.scalar_size != 8)
    in.error("unknown scalar type tag " + std::to_string(model.scalar_size));
  model.flags = in.integer<std::uint32_t>("the flags");
  if ((model.flags & ~kVelocityFlag) != 0) in.error("unsupported flags " + std::to_string(model.flags));

  const auto integers = in.integer<std::uint32_t>("the integer metadata count");
  for (std::uint32_t k = 0; k < integers; ++k) {
    std::string name = in.name("an integer metadata name");
    const auto value = in.integer<std::uint64_t>("an integer metadata value");
    if (!model.metadata.integers.emplace(std::move(name), value).second) in.error("duplicate metadata name");
  }
  const auto reals = in.integer<std::uint32_t>("the real metadata count");
  for (std::uint32_t k = 0; k < reals; ++k) {
    std::string name = in.name("a real metadata name");
    const double value = std::bit_cast<double>(in.integer<std::uint64_t>("a real metadata value"));
    if (!model.metadata.reals.emplace(std::move(name), value).second) in.error("duplicate metadata name");
  }

  const auto count = in.integer<std::uint64_t>("the parameter count");
  for (std::uint64_t k = 0; k < count; ++k) {  // each entry takes >= 20 bytes: a huge count is truncated early
    ParsedEntry e;
    e.name = in.name("parameter " + std::to_string(k) + "'s name");
    const std::string what = "parameter '" + e.name + "'";
    e.rows = in.integer<std::uint64_t>("a parameter's rows");
    e.cols = in.integer<std::uint64_t>("a parameter's columns");
    e.data = in.skip_block(e.rows, e.cols, model.scalar_size, what);
    if (model.flags & kVelocityFlag) {
      e.velocity_rows = in.integer<std::uint64_t>("a velocity's rows");
      e.velocity_cols = in.integer<std::uint64_t>("a velocity's columns");
      if ((e.velocity_rows != 0 || e.velocity_cols != 0) && (e.velocity_rows != e.rows || e.velocity_cols != e.cols))
        in.error("the velocity of " + what + " is " + std::to_string(e.velocity_rows) + " x " +
                 std::to_string(e.velocity_cols) + " but the parameter is " + std::to_string(e.rows) + " x " +
                 std::to_string(e.cols));
      e.velocity_data = in.skip_block(e.velocity_rows, e.velocity_cols, model.scalar_size, what + "'s velocity");
    }
    model.entries.push_back(std::move(e));
  }

  const std::size_t body = in.position();
  const auto stored = in.integer<std::uint64_t>("the checksum");
  if (in.remaining() != 0)
    in.error(std::to_string(in.remaining()) + " unexpected bytes after the checksum at offset " +
             std::to_string(in.position()));
  if (fnv1a64(bytes.first(body)) != stored) in.error("checksum mismatch (the file is corrupted)");
  return model;
}

template <class T>
void read_block(std::span<const std::uint8_t> bytes, std::size_t offset, Matrix<T>& out) {
  const std::size_t n = static_cast<std::size_t>(out.size());
  if constexpr (std::endian::native == std::endian::little) {
    if (n != 0) std::memcpy(out.data(), bytes.data() + offset, n * sizeof(T));
  } else {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    for (std::size_t k = 0; k < n; ++k) {
      Bits bits = 0;
      for (std::size_t i = 0; i < sizeof(T); ++i)
        bits |= static_cast<Bits>(static_cast<Bits>(bytes[offset + k * sizeof(T) + i]) << (8 * i));
      out.data()[k] = std::bit_cast<T>(bits);
    }
  }
}

inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) fail(path.string() + ": cannot open: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string() + ": cannot open for reading");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size)
    fail(path.string() + ": read " + std::to_string(in.gcount()) + " of " + std::to_string(size) + " bytes");
  return bytes;
}

/// Temporary file in the destination's directory, flushed to disk, renamed over the destination.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  static std::atomic<unsigned> counter{0};
  const std::string target = path.string();
#ifdef STOCH_POSIX_FILES
  const std::string temporary =
      target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  auto system_error = [](const std::string& what) {
    return what + ": " + std::generic_category().message(errno);
  };
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail(system_error(target + ": cannot create the temporary file '" + temporary + "'"));
  auto abandon = [&](const std::string& what) {
    const std::string message = system_error(what);
    ::close(fd);
    ::unlink(temporary.c_str());
    fail(message);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) abandon(target + ": cannot write the temporary file '" + temporary + "'");
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) abandon(target + ": cannot flush the temporary file '" + temporary + "'");
  if (::close(fd) != 0) {
    const std::string message = system_error(target + ": cannot close the temporary file '" + temporary + "'");
    ::unlink(temporary.c_str());
    fail(message);
  }
  if (::rename(temporary.c_str(), target.c_str()) != 0) {
    const std::string message = system_error(target + ": cannot rename the temporary file over it");
    ::unlink(temporary.c_str());
    fail(message);
  }
  // Make the rename itself durable (best effort: some file systems refuse to fsync a directory).
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
#else
  const std::filesystem::path temporary = target + ".tmp." + std::to_string(counter.fetch_add(1));
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) fail(target + ": cannot create the temporary file '" + temporary.string() + "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::filesystem::remove(temporary);
      fail(target + ": cannot write the temporary file '" + temporary.string() + "'");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::filesystem::remove(temporary);
    fail(target + ": cannot rename the temporary file over it: " + ec.message());
  }
#endif
}

}  // namespace internal

namespace internal {

/// Throws unless every parameter name of `params` is unique, listing each duplicated name with the positions
/// that hold it. A file is matched to a model by position and name (deserialize_model), so two parameters
/// of one name would make a file whose entries cannot be told apart: this is what every Linear left with its
/// default name "linear" gives.
template <class T>
void check_unique_names(const ParameterList<T>& params) {
  std::map<std::string, std::vector<std::size_t>> positions;
  for (std::size_t k = 0; k < params.size(); ++k) {
    if (params[k] == nullptr) fail("save_model: parameter " + std::to_string(k) + " is a null pointer");
    positions[params[k]->name].push_back(k);
  }
  std::string duplicates;
  for (const auto& [name, where] : positions) {
    if (where.size() < 2) continue;
    duplicates += duplicates.empty() ? "'" : ", '";
    duplicates += name;
    duplicates += "' (parameters";
    for (const std::size_t k : where) {  // appended piece by piece: gcc 12's -Wrestrict misfires on " " + s
      duplicates += ' ';
      duplicates += std::to_string(k);
    }
    duplicates += ")";
  }
  if (!duplicates.empty())
    fail("save_model: duplicate parameter names " + duplicates +
         "; give every layer its own name (e.g. Linear(in, out, rng, \"hidden\"), GatedLayer(gater, expert, "
         "\"layer1\")): loading matches parameters by position and name");
}

}  // namespace internal

/// The file image of `params` (see the format above); `save_model` writes it atomically. Throws stoch::Error
/// when two parameters share a name (listing them), or on a null pointer.
template <class T>
std::vector<std::uint8_t> serialize_model(const ParameterList<T>& params, const ModelFileOptions& options = {}) {
  internal::check_unique_names(params);
  std::vector<std::uint8_t> bytes(std::begin(kModelMagic), std::end(kModelMagic));
  internal::ByteWriter out(bytes);
  out.integer(kModelFormatVersion);
  out.integer(internal::scalar_size<T>());
  out.integer(options.save_velocities ? internal::kVelocityFlag : std::uint32_t{0});
  const ModelMetadata& meta = options.metadata;
  if (meta.integers.size() > std::numeric_limits<std::uint32_t>::max() ||
      meta.reals.size() > std::numeric_limits<std::uint32_t>::max())
    internal::fail("save_model: too many metadata entries");
  out.integer(static_cast<std::uint32_t>(meta.integers.size()));
  for (const auto& [name, value] : meta.integers) {
    out.name(name);
    out.integer(value);
  }
  out.integer(static_cast<std::uint32_t>(meta.reals.size()));
  for (const auto& [name, value] : meta.reals) {
    out.name(name);
    out.real(value);
  }
  out.integer(static_cast<std::uint64_t>(params.size()));
  for (std::size_t k = 0; k < params.size(); ++k) {
    const Parameter<T>* p = params[k];
    if (p == nullptr) internal::fail("save_model: parameter " + std::to_string(k) + " is a null pointer");
    out.name(p->name);
    out.matrix(p->value);
    if (options.save_velocities) {
      const bool sized = p->velocity.rows() == p->value.rows() && p->velocity.cols() == p->value.cols();
      out.matrix(sized ? p->velocity : Matrix<T>());  // never-stepped (or non-trainable): 0 x 0
    }
  }
  out.integer(fnv1a64(bytes));
  return bytes;
}

/// Checks `bytes` completely, then copies it into `params` (values, and velocities if the file has them; a
/// file without velocities clears them to 0 x 0, so the optimiser restarts them at zero). `source` names the
/// file in error messages. Returns the metadata. On any error the parameters are unchanged.
///
/// Matching: by position. The file must hold exactly as many parameters as `params`, and the k-th entry of
/// the file is loaded into params[k] only if it has params[k]'s name and shape; a renamed, reordered, added
/// or removed parameter is reported by position and name (nothing is looked up by name, so the model's
/// parameters() must list them in the order they had when saved).
template <class T>
ModelMetadata deserialize_model(std::span<const std::uint8_t> bytes, const ParameterList<T>& params,
                                const std::string& source = "model") {
  const internal::ParsedModel file = internal::parse_model(bytes, source);
  auto error = [&](const std::string& problem) { internal::fail(source + ": " + problem); };
  if (file.scalar_size != internal::scalar_size<T>())
    error(std::string("scalar type ") + internal::scalar_name(file.scalar_size) + " in file, " +
          internal::scalar_name(internal::scalar_size<T>()) + " in model");
  if (file.entries.size() != params.size())
    error("the file has " + std::to_string(file.entries.size()) + " parameters but the model has " +
          std::to_string(params.size()));
  for (std::size_t k = 0; k < params.size(); ++k) {
    const internal::ParsedEntry& e = file.entries[k];
    const Parameter<T>* p = params[k];
    if (p == nullptr) error("model parameter " + std::to_string(k) + " is a null pointer");
    if (e.name != p->name)
      error("parameter " + std::to_string(k) + " is '" + e.name + "' in the file but '" + p->name + "' in the model");
    if (e.rows != static_cast<std::uint64_t>(p->value.rows()) || e.cols != static_cast<std::uint64_t>(p->value.cols()))
      error("parameter '" + p->name + "' is " + std::to_string(e.rows) + " x " + std::to_string(e.cols) +
            " in the file but " + internal::shape_string(p->value.rows(), p->value.cols()) + " in the model");
  }
  // Everything checked: now write.
  const bool velocities = (file.flags & internal::kVelocityFlag) != 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    const internal::ParsedEntry& e = file.entries[k];
    Parameter<T>& p = *params[k];
    internal::read_block(bytes, e.data, p.value);
    p.velocity.resize(static_cast<Index>(e.velocity_rows), static_cast<Index>(e.velocity_cols));
    if (velocities) internal::read_block(bytes, e.velocity_data, p.velocity);
  }
  return file.metadata;
}

/// Writes every parameter of `params` (trainable or not), the metadata and optionally the velocities to `path`,
/// atomically. Throws stoch::Error naming the file on failure, and before writing anything when two parameters
/// share a name (e.g. two Linear layers left with the default name "linear"; the message lists them); the
/// destination is then unchanged.
template <class T>
void save_model(const std::filesystem::path& path, const ParameterList<T>& params,
                const ModelFileOptions& options = {}) {
  const std::vector<std::uint8_t> bytes = serialize_model(params, options);
  internal::write_file_atomically(path, bytes);
}

/// Loads `path` into `params` and returns the saved metadata. Matches by position, checking each name and
/// shape (see deserialize_model): `params` must list the same parameters, in the same order, as when saved.
/// Throws stoch::Error naming the file and the problem; on any error `params` are unchanged.
template <class T>
ModelMetadata load_model(const std::filesystem::path& path, const ParameterList<T>& params) {
  const std::vector<std::uint8_t> bytes = internal::read_file(path);
  return deserialize_model<T>(bytes, params, path.string());
}

/// Validates `path` completely (including the checksum) and describes it, without a model.
inline ModelFileInfo read_model_info(const std::filesystem::path& path) {
  const std::vector<std::uint8_t> bytes = internal::read_file(path);
  const internal::ParsedModel file = internal::parse_model(bytes, path.string());
  ModelFileInfo info;
  info.version = static_cast<int>(file.version);
  info.scalar_size = static_cast<int>(file.scalar_size);
  info.has_velocities = (file.flags & internal::kVelocityFlag) != 0;
  info.metadata = file.metadata;
  for (const internal::ParsedEntry& e : file.entries)
    info.parameters.push_back({e.name, static_cast<Index>(e.rows), static_cast<Index>(e.cols)});
  return info;
}

/// The metadata of a valid model file (e.g. the epoch to resume from), without a model.
inline ModelMetadata read_model_metadata(const std::filesystem::path& path) { return read_model_info(path).metadata; }

}  // namespace stoch
