// Value encoding: FlexBuffers (docs/values.md, "Value encoding"). The wire and disk
// form of every value; any language with a FlexBuffers reader can decode it.
//
// Mapping: nil=Null, bool=Bool, int=Int, double=Float, string=String, bytes=Blob,
// list=Vector, map with only NUL-free string keys=Map (unless it is exactly one of the
// reserved single-key forms below), set={"$set": [elements...]},
// any other map={"$map": [k1, v1, k2, v2, ...]}.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// Nesting limit for decoding untrusted bytes and for encoding (deeper values are
// rejected with kInvalidArgument).
inline constexpr int kMaxValueDepth = 64;

std::vector<uint8_t> EncodeValue(const Value& v);
// Same bytes, appended to a string (handy for storage).
void AppendValue(const Value& v, std::string* out);

// Verifies then decodes untrusted bytes. Errors (kCorruption) say what was wrong;
// never crashes on any input.
Result<Value> DecodeValue(std::string_view bytes);
Result<Value> DecodeValue(const uint8_t* data, size_t size);

}  // namespace strata
