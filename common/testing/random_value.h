// Random nested values for property tests. Deterministic for a given generator state,
// so a failing case is reproduced from the seed the test prints.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "strata/value.h"

namespace strata::testing {

class RandomValueGenerator {
 public:
  explicit RandomValueGenerator(uint64_t seed) : rng_(seed) {}

  // A value of any type, nested at most `max_depth` levels (0 = scalars only).
  Value Any(int max_depth = 4) {
    int types = max_depth > 0 ? 9 : 6;
    switch (Uniform(0, types - 1)) {
      case 0:
        return Value();
      case 1:
        return Value(Uniform(0, 1) == 1);
      case 2:
        return Value(Int());
      case 3:
        return Value(Double());
      case 4:
        return Value(String());
      case 5:
        return Value::BytesOf(String());
      case 6:
        return List(max_depth - 1);
      case 7:
        return Map(max_depth - 1);
      default:
        return Set(max_depth - 1);
    }
  }

  // Scalars only: what keys of maps usually are.
  Value Scalar() { return Any(0); }

  int64_t Int() {
    switch (Uniform(0, 5)) {
      case 0:
        return std::numeric_limits<int64_t>::min() + Uniform(0, 2);
      case 1:
        return std::numeric_limits<int64_t>::max() - Uniform(0, 2);
      case 2:
        return Uniform(-3, 3);
      case 3:
        return static_cast<int64_t>(rng_());
      default:
        return Uniform(-1000000, 1000000);
    }
  }

  double Double() {
    switch (Uniform(0, 9)) {
      case 0:
        return 0.0;
      case 1:
        return -0.0;
      case 2:
        return std::numeric_limits<double>::quiet_NaN();
      case 3:
        return -std::numeric_limits<double>::quiet_NaN();
      case 4:
        return Uniform(0, 1) ? std::numeric_limits<double>::infinity()
                             : -std::numeric_limits<double>::infinity();
      case 5:
        return std::numeric_limits<double>::denorm_min() * Uniform(-3, 3);
      case 6:
        return std::bit_cast<double>(static_cast<uint64_t>(rng_()));  // any bits
      default:
        return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
    }
  }

  // Bytes biased towards the awkward ones: 0x00, 0xFF, 0x01, and short strings.
  std::string String() {
    std::string s(static_cast<size_t>(Uniform(0, Uniform(0, 3) == 0 ? 40 : 6)), '\0');
    for (char& c : s) {
      switch (Uniform(0, 5)) {
        case 0:
          c = '\0';
          break;
        case 1:
          c = static_cast<char>(0xFF);
          break;
        case 2:
          c = static_cast<char>(Uniform(0, 255));
          break;
        default:
          c = static_cast<char>('a' + Uniform(0, 3));
          break;
      }
    }
    return s;
  }

  Value List(int max_depth) {
    Value::List l;
    for (int i = Uniform(0, 4); i > 0; --i) l.push_back(Any(max_depth));
    return Value(std::move(l));
  }

  Value Map(int max_depth) {
    Value::Map m;
    bool string_keys = Uniform(0, 1) == 0;
    for (int i = Uniform(0, 4); i > 0; --i) {
      Value key = string_keys ? Value(String()) : (Uniform(0, 3) == 0 ? Any(max_depth) : Scalar());
      m.emplace_back(std::move(key), Any(max_depth));
    }
    return Value::MapOf(std::move(m));
  }

  Value Set(int max_depth) {
    Value::Set s;
    for (int i = Uniform(0, 4); i > 0; --i)
      s.push_back(Uniform(0, 2) == 0 ? Any(max_depth) : Scalar());
    return Value::SetOf(std::move(s));
  }

  int64_t Uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }

  std::mt19937_64& rng() { return rng_; }

 private:
  std::mt19937_64 rng_;
};

}  // namespace strata::testing
