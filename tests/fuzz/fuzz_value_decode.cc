// libFuzzer target for the value decoder (strata/value_codec.h): DecodeValue on untrusted
// FlexBuffers bytes.
//
// Asserted beyond "no crash": rejections are kCorruption; an accepted value re-encodes
// (EncodeValueChecked, within the depth limit) and decodes back to an equal value, the
// encoder is deterministic, and the value also round-trips through the key and JSON
// forms. The decoder accepts FlexBuffers that EncodeValue never writes (typed vectors,
// uints, indirect scalars, unsorted $set elements), so the input bytes themselves need
// not be canonical.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::fuzz;

  Result<Value> v = DecodeValue(data, size);
  if (!v.ok()) {
    CheckRejectedWith(v, StatusCode::kCorruption, "DecodeValue");
    return 0;
  }
  CheckAllForms(*v);
  return 0;
}
