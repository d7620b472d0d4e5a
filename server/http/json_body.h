// The fields of a REST request's JSON body and the parameters of its URL, read with errors
// that name the field (kInvalidArgument), for the REST API (rest_api.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "strata/status.h"
#include "strata/value.h"

namespace strata::server::http {

class JsonBody {
 public:
  // A JSON object in the JSON form of docs/values.md; an empty body reads as {}.
  static Result<JsonBody> Parse(std::string_view text);

  // The field, or nullptr when absent (null counts as present).
  const Value* Find(std::string_view name) const;
  // A field that must be there.
  Result<Value> Required(std::string_view name) const;
  // The field when present, else `fallback`; kInvalidArgument when of another type.
  Result<std::string> String(std::string_view name, std::string fallback) const;
  Result<int64_t> Int(std::string_view name, int64_t fallback) const;
  Result<bool> Bool(std::string_view name, bool fallback) const;
  Result<Value::List> List(std::string_view name) const;  // absent: empty
  // A list of non-empty strings (absent: empty).
  Result<std::vector<std::string>> Names(std::string_view name) const;

 private:
  explicit JsonBody(Value map) : map_(std::move(map)) {}
  Value map_;
};

// URL parameter `name` as an int64 in [min, max], `fallback` when absent. kInvalidArgument
// naming the parameter when it is not such a number. `text` is nullopt when absent.
Result<int64_t> IntParam(std::string_view name, const std::optional<std::string>& text,
                         int64_t fallback, int64_t min, int64_t max);

}  // namespace strata::server::http
