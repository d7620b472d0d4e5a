// Value encoding: FlexBuffers (docs/values.md, "Value encoding"). The wire and disk
// form of every value; any language with a FlexBuffers reader can decode it.
//
// Mapping: nil=Null, bool=Bool, int=Int, double=Float, string=String, bytes=Blob,
// list=Vector, map with only NUL-free string keys=Map (unless it is exactly one of the
// reserved single-key forms below), set={"$set": [elements...]},
// any other map={"$map": [k1, v1, k2, v2, ...]}.
#pragma once

#include <cstddef>
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

// Limits of DecodeValue, which make any input cost time linear in its size and bounded
// memory (docs/values.md, "Decoding"):
// - Work: every element of a vector and every key and value of a map that the decoder
//   visits counts 1, charged when it enters the vector or map. At most
//   kDecodeWorkPerInputByte x input size + kDecodeWorkFloor. Each element occupies at least
//   one byte of its own, so only a buffer that references one vector or map many times
//   (a "zip bomb"; honest writers share only strings, keys and key vectors) reaches it.
// - Decoded size: kDecodedValueCost per value plus 1 per byte of a string, bytes or key,
//   at most max(kMaxDecodedSize, kDecodedSizePerInputByte x input size). A buffer without
//   shared strings stays below the second term; with shared strings (npm's writer shares
//   them by default) the decoded form may be up to 64 MiB whatever the input size.
inline constexpr size_t kDecodeWorkPerInputByte = 2;
inline constexpr size_t kDecodeWorkFloor = 4096;
inline constexpr size_t kDecodedValueCost = 16;
inline constexpr size_t kMaxDecodedSize = size_t{64} << 20;
inline constexpr size_t kDecodedSizePerInputByte = 32;

// Encodes any value; never fails. Deterministic: equal values give equal bytes.
// Thread-safe: each thread reuses its own flexbuffers::Builder between calls.
// A value deeper than kMaxValueDepth is encoded too, but DecodeValue rejects the bytes;
// every value that came out of a decoder (key, value or JSON) is within the limit.
std::vector<uint8_t> EncodeValue(const Value& v);
// Same bytes, appended to a string (handy for storage). Same depth caveat.
void AppendValue(const Value& v, std::string* out);
// EncodeValue for values whose shape comes from user code (topologies, drivers): fails
// with kInvalidArgument, naming the limit, instead of writing bytes that cannot be read
// back when the value nests deeper than kMaxValueDepth.
Result<std::vector<uint8_t>> EncodeValueChecked(const Value& v);

// Decodes untrusted bytes, checking every offset, size, width and type byte against the
// buffer before reading it (no separate verifier pass). Errors (kCorruption) say what was
// wrong and at which byte; never crashes on any input. Thread-safe.
Result<Value> DecodeValue(std::string_view bytes);
Result<Value> DecodeValue(const uint8_t* data, size_t size);

// The work one DecodeValue did, for tests of the limits above: the elements charged to
// the work budget, and the bytes searched for key terminators.
struct DecodeWork {
  size_t elements_visited = 0;
  size_t key_bytes_scanned = 0;
};
// DecodeValue that also reports its work into *work (on success and on failure).
Result<Value> DecodeValue(const uint8_t* data, size_t size, DecodeWork* work);

}  // namespace strata
