// Values at the edges of every type, in strictly ascending Value order (the order tests
// check that it is). Shared by the Value, key codec and value codec tests.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "strata/value.h"

namespace strata::testing {

inline std::vector<Value> AscendingEdgeValues() {
  using namespace std::string_literals;
  using Int = std::numeric_limits<int64_t>;
  using Double = std::numeric_limits<double>;
  return {
      Value(),
      Value(false),
      Value(true),
      Value(Int::min()),
      Value(Int::min() + 1),
      Value(-256),
      Value(-1),
      Value(0),
      Value(1),
      Value(255),
      Value(256),
      Value(Int::max()),
      Value(-Double::quiet_NaN()),
      Value(-Double::infinity()),
      Value(-Double::max()),
      Value(-1.0),
      Value(-Double::min()),
      Value(-Double::denorm_min()),
      Value(-0.0),
      Value(0.0),
      Value(Double::denorm_min()),
      Value(Double::min()),
      Value(1.0),
      Value(Double::max()),
      Value(Double::infinity()),
      Value(Double::quiet_NaN()),
      Value(""),
      Value("\0"s),
      Value("\0\0"s),
      Value("\0\x01"s),
      Value("\0\xff"s),
      Value("\x01"),
      Value("a"),
      Value("a\0"s),
      Value("a\0\0"s),
      Value("a\x01"),
      Value("ab"),
      Value("a\xff"),
      Value("b"),
      Value("\xff"),
      Value("\xff\0"s),
      Value("\xff\xff"),
      Value::BytesOf(""),
      Value::BytesOf("\0"s),
      Value::BytesOf("a"),
      Value::BytesOf("\xff"),
      Value::ListOf({}),
      Value::ListOf({Value()}),
      Value::ListOf({Value(), Value()}),
      Value::ListOf({1}),
      Value::ListOf({1, "a"}),
      Value::ListOf({2}),
      Value::ListOf({""}),
      Value::ListOf({"", ""}),
      Value::ListOf({"\0"s}),
      Value::ListOf({"a"}),
      Value::ListOf({Value::ListOf({})}),
      Value::EmptyMap(),
      Value::MapOf({{Value(), Value()}}),
      Value::MapOf({{Value(), Value()}, {1, 1}}),
      Value::MapOf({{Value(), 1}}),
      Value::MapOf({{1, Value()}}),
      Value::MapOf({{1, 2}}),
      Value::MapOf({{1, 2}, {3, 4}}),
      Value::MapOf({{2, 0}}),
      Value::MapOf({{"a", 0}}),
      Value::MapOf({{"a", 1}}),
      Value::EmptySet(),
      Value::SetOf({Value()}),
      Value::SetOf({Value(), 1}),
      Value::SetOf({1}),
      Value::SetOf({1, 2}),
      Value::SetOf({2}),
  };
}

}  // namespace strata::testing
