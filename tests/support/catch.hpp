// Catch2 v2 (Debian 12) / v3 compatibility: include this, never Catch2 directly.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
using Catch::Approx;
#define STOCH_CONTAINS(text) Catch::Matchers::ContainsSubstring(text)
#else
#include <catch2/catch.hpp>
#define STOCH_CONTAINS(text) Catch::Matchers::Contains(text)
#endif

/// REQUIRE that `expr` throws stoch::Error (or another std::exception) whose message contains `text`.
#define REQUIRE_THROWS_MESSAGE(expr, text) REQUIRE_THROWS_WITH(expr, STOCH_CONTAINS(text))
