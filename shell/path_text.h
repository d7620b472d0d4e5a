// The text forms the shell reads (docs/shell.md, "Paths" and "Values"): JSON values found
// inside a longer command line, and paths in their readable form
//
//   key("alice").all.filter(nth(1) gt 75).nth(0)      the form Path::ToString prints
//   ["alice", "follows"]                              a JSON array of plain keys
//
// so that ParsePathText(p.ToString()) == p for every path p whose filters on `exists`
// carry no operand (ToString does not print one). Errors carry the byte offset in the text
// where the problem is, for the shell's caret line. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "strata/path.h"
#include "strata/value.h"

namespace strata::shell {

// What was wrong, and where: `position` is a byte offset into the text that was parsed.
struct TextError {
  size_t position = 0;
  std::string message;
};

// Either a T or a TextError.
template <typename T>
class [[nodiscard]] Parsed {
 public:
  Parsed(T value) : rep_(std::in_place_index<0>, std::move(value)) {}
  Parsed(TextError error) : rep_(std::in_place_index<1>, std::move(error)) {}
  bool ok() const { return rep_.index() == 0; }
  T& value() { return std::get<0>(rep_); }
  const T& value() const { return std::get<0>(rep_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const TextError& error() const { return std::get<1>(rep_); }

 private:
  std::variant<T, TextError> rep_;
};

// One JSON value (docs/values.md) that starts at text[*pos] (after optional white space)
// and ends where a string, array or object closes, or a scalar meets white space or one of
// , ) ] }. On success *pos is just past the value; positions of errors are offsets in
// `text`.
Parsed<Value> ParseJsonAt(std::string_view text, size_t* pos);

// A whole path: the readable form, "(root)" or "" for the root, or a JSON array of keys.
// Terminals (set, inc, …) are parsed too; whether they are allowed is the caller's call.
Parsed<Path> ParsePathText(std::string_view text);

}  // namespace strata::shell
