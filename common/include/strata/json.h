// JSON text form of values (docs/values.md, "JSON form"), used by the shell and the
// REST API. Lossless for every type: ParseJson(ToJson(v)) == v.
#pragma once

#include <string>
#include <string_view>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// Compact JSON: no spaces. `indent` >= 0 pretty-prints with that many spaces.
std::string ToJson(const Value& v, int indent = -1);

// Parses one JSON document (surrounding white space allowed). Errors are
// kInvalidArgument and name the byte offset ("at offset N") and what was expected.
// Nesting is limited to kMaxValueDepth.
Result<Value> ParseJson(std::string_view text);

// `text` with each byte that is not part of well-formed UTF-8 (RFC 3629) written as "\xNN",
// so that it prints as a JSON string: for messages that quote a client's bytes.
std::string EscapeInvalidUtf8(std::string_view text);

}  // namespace strata
