#include "json_body.h"

#include <charconv>

#include "strata/json.h"

namespace strata::server::http {
namespace {

Status WrongType(std::string_view name, std::string_view expected, const Value& got) {
  return Status::InvalidArgument("field \"" + std::string(name) + "\" must be " +
                                 std::string(expected) + ", got " +
                                 std::string(TypeName(got.type())) + " " + ToJson(got));
}

}  // namespace

Result<JsonBody> JsonBody::Parse(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return JsonBody(Value::EmptyMap());
  }
  Result<Value> parsed = ParseJson(text);
  if (!parsed.ok()) {
    return Status::InvalidArgument("the request body is not JSON: " + parsed.status().message());
  }
  if (!parsed->is_map()) {
    return Status::InvalidArgument("the request body must be a JSON object, got " +
                                   std::string(TypeName(parsed->type())));
  }
  return JsonBody(std::move(parsed).value());
}

const Value* JsonBody::Find(std::string_view name) const { return map_.Find(Value(name)); }

Result<Value> JsonBody::Required(std::string_view name) const {
  const Value* v = Find(name);
  if (v == nullptr) {
    return Status::InvalidArgument("the request body has no field \"" + std::string(name) + "\"");
  }
  return *v;
}

Result<std::string> JsonBody::String(std::string_view name, std::string fallback) const {
  const Value* v = Find(name);
  if (v == nullptr) return fallback;
  if (!v->is_string()) return WrongType(name, "a string", *v);
  return v->as_string();
}

Result<int64_t> JsonBody::Int(std::string_view name, int64_t fallback) const {
  const Value* v = Find(name);
  if (v == nullptr) return fallback;
  if (!v->is_int()) return WrongType(name, "an integer", *v);
  return v->as_int();
}

Result<bool> JsonBody::Bool(std::string_view name, bool fallback) const {
  const Value* v = Find(name);
  if (v == nullptr) return fallback;
  if (!v->is_bool()) return WrongType(name, "true or false", *v);
  return v->as_bool();
}

Result<Value::List> JsonBody::List(std::string_view name) const {
  const Value* v = Find(name);
  if (v == nullptr) return Value::List{};
  if (!v->is_list()) return WrongType(name, "a list", *v);
  return v->as_list();
}

Result<std::vector<std::string>> JsonBody::Names(std::string_view name) const {
  STRATA_ASSIGN_OR_RETURN(Value::List list, List(name));
  std::vector<std::string> names;
  names.reserve(list.size());
  for (const Value& v : list) {
    if (!v.is_string() || v.as_string().empty()) {
      return WrongType(name, "a list of non-empty strings", v);
    }
    names.push_back(v.as_string());
  }
  return names;
}

Result<int64_t> IntParam(std::string_view name, const std::optional<std::string>& text,
                         int64_t fallback, int64_t min, int64_t max) {
  if (!text) return fallback;
  int64_t value = 0;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (text->empty() || ec != std::errc() || ptr != end || value < min || value > max) {
    return Status::InvalidArgument("parameter " + std::string(name) + "=" + *text +
                                   " is not an integer from " + std::to_string(min) + " to " +
                                   std::to_string(max));
  }
  return value;
}

}  // namespace strata::server::http
