// libFuzzer target for the JSON parser (strata/json.h): ParseJson on untrusted text.
//
// Asserted beyond "no crash": rejections are kInvalidArgument and name a byte offset
// within the input; an accepted value prints with ToJson (compact and pretty) and parses
// back to an equal value, printing is canonical, and the value also round-trips through
// the key and value encodings.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "fuzz_checks.h"

namespace strata::fuzz {
namespace {

// Length of the location path at the front of `s` ("$", then `.name`, `["quoted"]` or
// `[N]` steps), or npos when `s` does not start with one. Quoted member names may hold
// any text, "offset" included, so the path is skipped by its grammar.
size_t PathLength(std::string_view s) {
  if (s.empty() || s[0] != '$') return std::string_view::npos;
  size_t i = 1;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] != '.' && s[i] != '[' && s[i] != ' ') ++i;
    } else if (s[i] == '[' && i + 1 < s.size() && s[i + 1] == '"') {
      for (i += 2; i < s.size() && s[i] != '"'; ++i) {
        if (s[i] == '\\') ++i;
      }
      if (i + 2 > s.size() || s[i + 1] != ']') return std::string_view::npos;
      i += 2;
    } else if (s[i] == '[') {
      size_t close = s.find(']', i);
      if (close == std::string_view::npos) return std::string_view::npos;
      i = close + 1;
    } else {
      break;
    }
  }
  return i;
}

// The N of an error message, which reads "invalid JSON at offset N..." (syntax) or
// "invalid JSON value at PATH (offset N): ..." (content); npos when it does not.
size_t OffsetOf(std::string_view message) {
  constexpr std::string_view kSyntax = "invalid JSON at offset ";
  constexpr std::string_view kContent = "invalid JSON value at ";
  std::string_view rest;
  if (message.starts_with(kSyntax)) {
    rest = message.substr(kSyntax.size());
  } else if (message.starts_with(kContent)) {
    rest = message.substr(kContent.size());
    size_t path = PathLength(rest);
    if (path == std::string_view::npos || !rest.substr(path).starts_with(" (offset ")) {
      return std::string_view::npos;
    }
    rest.remove_prefix(path + 9);
  } else {
    return std::string_view::npos;
  }
  size_t offset = 0;
  auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), offset);
  return error == std::errc() && end != rest.data() ? offset : std::string_view::npos;
}

// Errors name the byte offset of the problem; it lies within the input (N == size is
// the end of the input).
void CheckErrorNamesOffset(const Status& status, size_t input_size) {
  size_t offset = OffsetOf(status.message());
  STRATA_FUZZ_CHECK(offset != std::string_view::npos, "ParseJson errors name a byte offset",
                    "message: " + Shorten(status.message()));
  STRATA_FUZZ_CHECK(
      offset <= input_size, "ParseJson error offsets lie within the input",
      "input size " + std::to_string(input_size) + ", message: " + Shorten(status.message()));
}

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  using namespace strata::fuzz;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  Result<Value> v = ParseJson(text);
  if (!v.ok()) {
    CheckRejectedWith(v, StatusCode::kInvalidArgument, "ParseJson");
    CheckErrorNamesOffset(v.status(), size);
    return 0;
  }
  CheckAllForms(*v);
  return 0;
}
