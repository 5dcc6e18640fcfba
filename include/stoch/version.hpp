// stoch — the library's version.
//
// This header is the one place the version is written: the top-level CMakeLists.txt reads the three numbers
// below for project(VERSION), so the installed package version and these macros cannot disagree, and a
// project that copies include/ without CMake still gets them.
#pragma once

#include <string_view>

#define STOCH_VERSION_MAJOR 0
#define STOCH_VERSION_MINOR 1
#define STOCH_VERSION_PATCH 0

// One comparable number, major * 10000 + minor * 100 + patch (0.1.0 -> 100), for `#if STOCH_VERSION >= ...`.
#define STOCH_VERSION (STOCH_VERSION_MAJOR * 10000 + STOCH_VERSION_MINOR * 100 + STOCH_VERSION_PATCH)

#define STOCH_VERSION_STRINGIFY_(x) #x
#define STOCH_VERSION_STRINGIFY(x) STOCH_VERSION_STRINGIFY_(x)

namespace stoch {

// "major.minor.patch", built from the macros above so that the two cannot drift apart.
inline constexpr std::string_view version = STOCH_VERSION_STRINGIFY(STOCH_VERSION_MAJOR) "." STOCH_VERSION_STRINGIFY(
    STOCH_VERSION_MINOR) "." STOCH_VERSION_STRINGIFY(STOCH_VERSION_PATCH);

}  // namespace stoch

#undef STOCH_VERSION_STRINGIFY
#undef STOCH_VERSION_STRINGIFY_
