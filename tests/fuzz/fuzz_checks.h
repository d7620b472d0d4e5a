// Invariants shared by the fuzz targets of tests/fuzz (README.md, "Fuzzing").
//
// A violated invariant prints what failed and aborts; libFuzzer then records the input
// as a crash. Each check re-runs encoders and decoders on a value that a decoder has
// accepted, so the fuzzers test the promises of docs/values.md, not only "no crash".
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/status.h"
#include "strata/value.h"
#include "strata/value_codec.h"

namespace strata::fuzz {

// Longest text a failure message quotes: inputs are at most a few KB, messages should
// stay readable.
inline constexpr size_t kMaxShownChars = 400;

inline std::string Shorten(std::string_view s) {
  if (s.size() <= kMaxShownChars) return std::string(s);
  return std::string(s.substr(0, kMaxShownChars)) + "... (" + std::to_string(s.size()) + " bytes)";
}

inline std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return Shorten(out);
}

inline std::string Hex(const std::vector<uint8_t>& bytes) {
  return Hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

[[noreturn]] inline void Fail(std::string_view invariant, std::string_view detail) {
  std::fprintf(stderr, "\n*** strata fuzz invariant violated: %.*s\n%.*s\n",
               static_cast<int>(invariant.size()), invariant.data(),
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// Aborts with `invariant` and the lazily built `detail` when `condition` is false.
#define STRATA_FUZZ_CHECK(condition, invariant, detail)            \
  do {                                                             \
    if (!(condition)) ::strata::fuzz::Fail((invariant), (detail)); \
  } while (0)

inline std::string Show(const Value& v) { return "value: " + Shorten(ToJson(v)); }

template <typename T>
std::string ShowResult(const Result<T>& r) {
  return r.ok() ? std::string("ok") : r.status().ToString();
}

// Key encoding: decodes back to `v`, and the decoder accepts exactly those bytes.
inline void CheckKeyRoundTrip(const Value& v) {
  std::string key = EncodeKey(v);
  Result<Value> back = DecodeKey(key);
  STRATA_FUZZ_CHECK(back.ok() && *back == v, "DecodeKey(EncodeKey(v)) == v",
                    Show(v) + "\nkey: " + Hex(key) +
                        "\ndecoded: " + (back.ok() ? Show(*back) : ShowResult(back)));
  STRATA_FUZZ_CHECK(HashKey(v) == HashKeyBytes(key), "HashKey(v) == HashKeyBytes(EncodeKey(v))",
                    Show(v));
}

// Value encoding: every decoded value is within the depth limit, so the checked encoder
// accepts it, the bytes decode back to an equal value and encoding is deterministic.
inline void CheckValueRoundTrip(const Value& v) {
  Result<std::vector<uint8_t>> encoded = EncodeValueChecked(v);
  STRATA_FUZZ_CHECK(encoded.ok(), "EncodeValueChecked accepts every decoded value",
                    Show(v) + "\nerror: " + ShowResult(encoded));
  Result<Value> back = DecodeValue(encoded->data(), encoded->size());
  STRATA_FUZZ_CHECK(back.ok() && *back == v, "DecodeValue(EncodeValue(v)) == v",
                    Show(v) + "\nencoding: " + Hex(*encoded) +
                        "\ndecoded: " + (back.ok() ? Show(*back) : ShowResult(back)));
  STRATA_FUZZ_CHECK(EncodeValue(*back) == *encoded, "EncodeValue is deterministic",
                    Show(v) + "\nfirst: " + Hex(*encoded) + "\nagain: " + Hex(EncodeValue(*back)));
}

// JSON form: compact and pretty text both parse back to `v`, and printing the parsed
// value gives the same compact text again.
inline void CheckJsonRoundTrip(const Value& v) {
  std::string compact = ToJson(v);
  Result<Value> back = ParseJson(compact);
  STRATA_FUZZ_CHECK(
      back.ok() && *back == v, "ParseJson(ToJson(v)) == v",
      "json: " + Shorten(compact) + "\nparsed: " + (back.ok() ? Show(*back) : ShowResult(back)));
  STRATA_FUZZ_CHECK(ToJson(*back) == compact, "ToJson(ParseJson(ToJson(v))) == ToJson(v)",
                    "first: " + Shorten(compact) + "\nagain: " + Shorten(ToJson(*back)));
  std::string pretty = ToJson(v, 2);
  Result<Value> pretty_back = ParseJson(pretty);
  STRATA_FUZZ_CHECK(pretty_back.ok() && *pretty_back == v, "ParseJson(ToJson(v, 2)) == v",
                    "json: " + Shorten(pretty) + "\nparsed: " +
                        (pretty_back.ok() ? Show(*pretty_back) : ShowResult(pretty_back)));
}

// A value accepted by any decoder round-trips through all three forms (docs/values.md:
// "All three are lossless").
inline void CheckAllForms(const Value& v) {
  CheckKeyRoundTrip(v);
  CheckValueRoundTrip(v);
  CheckJsonRoundTrip(v);
}

// Rejections carry the documented status code.
template <typename T>
void CheckRejectedWith(const Result<T>& r, StatusCode expected, std::string_view decoder) {
  STRATA_FUZZ_CHECK(
      r.status().code() == expected,
      std::string(decoder) + " rejects bad input with " + std::string(StatusCodeName(expected)),
      "got: " + r.status().ToString());
}

}  // namespace strata::fuzz
