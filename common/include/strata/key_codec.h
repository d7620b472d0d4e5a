// Order-preserving key encoding (docs/values.md, "Key encoding").
//
// For all values a, b: sign(memcmp(EncodeKey(a), EncodeKey(b))) == sign(Compare(a, b)),
// where memcmp compares unsigned bytes and a proper prefix sorts first. Every encoding
// is self-delimiting, so a composite key is the concatenation of its parts' encodings
// and sorts like the tuple of its parts. No encoding starts with 0x00 or 0xFF.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// Appends the key encoding of `v` to `*out`.
void AppendKey(const Value& v, std::string* out);
std::string EncodeKey(const Value& v);

// Decodes exactly one value from the front of `*in` and advances `*in` past it.
// Untrusted input is safe: errors are kCorruption; nesting is limited to kMaxKeyDepth.
Result<Value> DecodeKeyPrefix(std::string_view* in);
// Decodes `in`, which must hold exactly one encoded value.
Result<Value> DecodeKey(std::string_view in);
// Decodes a concatenation of encodings into its parts.
Result<std::vector<Value>> DecodeKeyTuple(std::string_view in);

// The smallest byte string greater than every string that starts with `prefix`
// (the exclusive end of the range [prefix, PrefixEnd(prefix))). Empty when there is
// none (prefix empty or all 0xFF).
std::string PrefixEnd(std::string_view prefix);

// Stable 64-bit hash of the key encoding of `v` (XXH3-64, seed 0). Used to choose a
// partition: HashKey(v) % partitions. Never changes between versions.
uint64_t HashKey(const Value& v);
uint64_t HashKeyBytes(std::string_view key_encoding);

inline constexpr int kMaxKeyDepth = 64;

}  // namespace strata
