// libFuzzer target for the path decoder (strata/path.h): DecodeValue on untrusted
// FlexBuffers bytes, then Path::FromValue — what the server does with a path off the wire.
//
// Asserted beyond "no crash": DecodeValue rejects with kCorruption and FromValue with
// kInvalidArgument and a message; an accepted path passes Validate(), its wire form
// ToValue() parses back to an equal path, reaches a fixed point (the re-parsed path has
// the same wire form) and survives EncodeValue/DecodeValue; ToString() does not crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_checks.h"
#include "strata/path.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::fuzz;

  Result<Value> v = DecodeValue(data, size);
  if (!v.ok()) {
    CheckRejectedWith(v, StatusCode::kCorruption, "DecodeValue");
    return 0;
  }
  Result<Path> path = Path::FromValue(*v);
  if (!path.ok()) {
    CheckRejectedWith(path, StatusCode::kInvalidArgument, "Path::FromValue");
    return 0;
  }
  const std::string shown = path->ToString();
  Status valid = path->Validate();
  STRATA_FUZZ_CHECK(valid.ok(), "a path FromValue accepts passes Validate()",
                    Show(*v) + "\npath: " + Shorten(shown) + "\nValidate: " + valid.ToString());

  const Value wire = path->ToValue();
  Result<Path> back = Path::FromValue(wire);
  STRATA_FUZZ_CHECK(
      back.ok() && *back == *path, "Path::FromValue(p.ToValue()) == p",
      Show(*v) + "\npath: " + Shorten(shown) + "\nwire: " + Show(wire) +
          "\nre-parsed: " + (back.ok() ? Shorten(back->ToString()) : ShowResult(back)));
  STRATA_FUZZ_CHECK(back->ToValue() == wire, "the wire form is a fixed point",
                    Show(wire) + "\nthen: " + Show(back->ToValue()));

  Result<std::vector<uint8_t>> bytes = EncodeValueChecked(wire);
  STRATA_FUZZ_CHECK(bytes.ok(), "a path's wire form encodes",
                    Show(wire) + "\n" + ShowResult(bytes));
  Result<Value> decoded = DecodeValue(bytes->data(), bytes->size());
  Result<Path> from_bytes =
      decoded.ok() ? Path::FromValue(*decoded) : Result<Path>(decoded.status());
  STRATA_FUZZ_CHECK(
      from_bytes.ok() && *from_bytes == *path,
      "a path's wire form survives EncodeValue/DecodeValue",
      Show(wire) + "\n" +
          (from_bytes.ok() ? Shorten(from_bytes->ToString()) : ShowResult(from_bytes)));
  return 0;
}
