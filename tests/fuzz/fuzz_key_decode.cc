// libFuzzer target for the key decoders (strata/key_codec.h): DecodeKey, DecodeKeyTuple
// and DecodeKeyPrefix on untrusted bytes.
//
// Asserted beyond "no crash": the key decoder is strict, so an accepted input is the
// canonical encoding of what it decodes to (re-encoding gives the identical bytes);
// the three decoders agree; adjacent parts of a tuple compare like their encodings
// (memcmp order == Value order); and every decoded value round-trips through the key,
// value and JSON forms.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_checks.h"

namespace strata::fuzz {
namespace {

int Sign(int x) { return (x > 0) - (x < 0); }

int Sign(std::strong_ordering o) { return o < 0 ? -1 : o > 0 ? 1 : 0; }

void CheckOrderMatchesEncoding(const Value& a, const Value& b) {
  std::string ka = EncodeKey(a);
  std::string kb = EncodeKey(b);
  // std::string_view compares chars as unsigned bytes, a proper prefix first: memcmp order.
  STRATA_FUZZ_CHECK(Sign(std::string_view(ka).compare(kb)) == Sign(Value::Compare(a, b)),
                    "sign(memcmp(EncodeKey(a), EncodeKey(b))) == sign(Compare(a, b))",
                    "a: " + Hex(ka) + "\nb: " + Hex(kb));
}

void CheckTuple(std::string_view in, const std::vector<Value>& parts) {
  std::string reencoded;
  for (const Value& part : parts) AppendKey(part, &reencoded);
  STRATA_FUZZ_CHECK(reencoded == in, "an accepted key tuple re-encodes to the identical bytes",
                    "input:      " + Hex(in) + "\nre-encoded: " + Hex(reencoded));

  std::string_view rest = in;
  for (const Value& part : parts) {
    Result<Value> prefix = DecodeKeyPrefix(&rest);
    STRATA_FUZZ_CHECK(prefix.ok() && *prefix == part,
                      "DecodeKeyPrefix walks the same parts as DecodeKeyTuple",
                      "input: " + Hex(in) + "\nprefix: " + ShowResult(prefix));
  }
  STRATA_FUZZ_CHECK(rest.empty(), "DecodeKeyPrefix consumes the whole tuple",
                    "left over: " + Hex(rest));

  for (size_t i = 0; i + 1 < parts.size(); ++i) CheckOrderMatchesEncoding(parts[i], parts[i + 1]);
  for (const Value& part : parts) CheckAllForms(part);
}

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::fuzz;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  Result<Value> one = DecodeKey(in);
  Result<std::vector<Value>> parts = DecodeKeyTuple(in);
  if (one.ok()) {
    STRATA_FUZZ_CHECK(EncodeKey(*one) == in, "an accepted key re-encodes to the identical bytes",
                      "input:      " + Hex(in) + "\nre-encoded: " + Hex(EncodeKey(*one)));
    STRATA_FUZZ_CHECK(parts.ok() && parts->size() == 1 && (*parts)[0] == *one,
                      "DecodeKeyTuple of one encoded value gives that value",
                      "input: " + Hex(in) + "\ntuple: " + ShowResult(parts));
  } else {
    CheckRejectedWith(one, StatusCode::kCorruption, "DecodeKey");
  }
  if (parts.ok()) {
    CheckTuple(in, *parts);
  } else {
    CheckRejectedWith(parts, StatusCode::kCorruption, "DecodeKeyTuple");
  }
  return 0;
}
