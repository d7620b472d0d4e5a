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

// Nesting limit: a scalar has depth 0, a list, map or set 1 + the largest depth of its
// elements (and map keys). Decoders reject deeper values; see EncodeValueChecked.
inline constexpr int kMaxValueDepth = 64;

// Encodes any value; never fails. Deterministic: equal values give equal bytes.
// A value deeper than kMaxValueDepth is encoded too, but DecodeValue rejects the bytes;
// every value that came out of a decoder (key, value or JSON) is within the limit.
std::vector<uint8_t> EncodeValue(const Value& v);
// Same bytes, appended to a string (handy for storage). Same depth caveat.
void AppendValue(const Value& v, std::string* out);
// EncodeValue for values whose shape comes from user code (topologies, drivers): fails
// with kInvalidArgument, naming the limit, instead of writing bytes that cannot be read
// back when the value nests deeper than kMaxValueDepth.
Result<std::vector<uint8_t>> EncodeValueChecked(const Value& v);

// Verifies then decodes untrusted bytes. Errors (kCorruption) say what was wrong;
// never crashes on any input.
Result<Value> DecodeValue(std::string_view bytes);
Result<Value> DecodeValue(const uint8_t* data, size_t size);

}  // namespace strata
