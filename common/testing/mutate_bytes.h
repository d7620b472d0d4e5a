// Random small corruptions of an encoding, for decoder robustness property tests:
// 1 to 3 edits, each a bit flip, a byte overwrite, a truncation, an inserted byte (a
// quarter of them 0x00, the byte that ends strings, keys and containers) or a deletion.
#pragma once

#include <cstddef>
#include <string>

#include "random_value.h"

namespace strata::testing {

inline std::string MutateBytes(std::string bytes, RandomValueGenerator& gen) {
  for (int n = static_cast<int>(gen.Uniform(1, 3)); n > 0; --n) {
    size_t size = bytes.size();
    size_t at = static_cast<size_t>(gen.Uniform(0, static_cast<int64_t>(size)));
    char byte = static_cast<char>(gen.Uniform(0, 3) == 0 ? 0x00 : gen.Uniform(0, 255));
    switch (gen.Uniform(0, 4)) {
      case 0:
        if (at < size) bytes[at] = static_cast<char>(bytes[at] ^ (1 << gen.Uniform(0, 7)));
        break;
      case 1:
        if (at < size) bytes[at] = byte;
        break;
      case 2:
        bytes.resize(at);
        break;
      case 3:
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), byte);
        break;
      default:
        if (at < size) bytes.erase(at, 1);
        break;
    }
  }
  return bytes;
}

}  // namespace strata::testing
