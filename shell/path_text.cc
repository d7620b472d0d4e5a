#include "path_text.h"

#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "strata/json.h"

namespace strata::shell {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool EndsScalar(char c) { return IsSpace(c) || c == ',' || c == ')' || c == ']' || c == '}'; }
bool IsIdentChar(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }

// ParseJson names the offset of its error inside the text it was given ("at offset N" or
// "(offset N)"). Returns N and removes the phrase, since the caller reports the offset in
// the whole command instead.
size_t TakeJsonOffset(std::string* message) {
  for (const std::string_view phrase :
       {std::string_view(" at offset "), std::string_view(" (offset ")}) {
    size_t at = message->find(phrase);
    if (at == std::string::npos) continue;
    size_t digits = at + phrase.size();
    size_t end = digits;
    size_t offset = 0;
    while (end < message->size() && std::isdigit(static_cast<unsigned char>((*message)[end]))) {
      offset = offset * 10 + static_cast<size_t>((*message)[end] - '0');
      ++end;
    }
    if (end == digits) continue;
    if (phrase[1] == '(' && end < message->size() && (*message)[end] == ')') ++end;
    message->erase(at, end - at);
    return offset;
  }
  return 0;
}

// Where the JSON value starting at text[start] ends (one past it), or nullopt with *error
// set when a string, array or object is not closed.
std::optional<size_t> JsonExtent(std::string_view text, size_t start, TextError* error) {
  const char first = text[start];
  if (first != '"' && first != '[' && first != '{') {
    size_t end = start;
    while (end < text.size() && !EndsScalar(text[end])) ++end;
    return end;
  }
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (--depth == 0) return i + 1;
    }
  }
  *error = {start, first == '"' ? "unterminated string: no closing \""
                                : std::string("unclosed '") + first + "': no matching '" +
                                      (first == '[' ? ']' : '}') + "'"};
  return std::nullopt;
}

constexpr std::string_view kPredicates[] = {"eq", "ne", "lt", "le", "gt", "ge", "exists"};
bool IsPredicate(std::string_view name) {
  for (std::string_view p : kPredicates) {
    if (p == name) return true;
  }
  return false;
}

// Recursive descent over the readable form. Each step is turned into its wire form
// (docs/paths.md), and Path::FromValue checks the arguments, so the shell accepts exactly
// what the server would.
class PathParser {
 public:
  explicit PathParser(std::string_view text) : text_(text) {}

  Parsed<Path> ParseWhole() {
    SkipSpace();
    std::optional<Value> wire;
    if (pos_ < text_.size() && text_[pos_] == '[') {
      wire = KeyPathFromArray();
    } else {
      wire = Steps(/*top=*/true);
    }
    if (!wire) return *error_;
    SkipSpace();
    if (pos_ < text_.size()) {
      return TextError{pos_, std::string("unexpected '") + text_[pos_] +
                                 "' after the path (steps are joined with '.')"};
    }
    Result<Path> path = Path::FromValue(*wire);
    if (!path.ok())
      return TextError{StepPosition(path.status().message()), path.status().message()};
    return std::move(*path);
  }

 private:
  std::optional<Value> Fail(size_t position, std::string message) {
    if (!error_) error_ = TextError{position, std::move(message)};
    return std::nullopt;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && IsSpace(text_[pos_])) ++pos_;
  }
  bool LookingAt(std::string_view s) const { return text_.substr(pos_).starts_with(s); }
  std::string_view Ident() {
    size_t start = pos_;
    while (pos_ < text_.size() && IsIdentChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  std::string Found() const {
    return pos_ < text_.size() ? std::string("'") + text_[pos_] + "'" : "the end of the path";
  }
  bool Expect(char c, std::string_view what) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    Fail(pos_, std::string("expected '") + c + "' " + std::string(what) + ", found " + Found());
    return false;
  }
  std::optional<Value> JsonValue() {
    Parsed<Value> v = ParseJsonAt(text_, &pos_);
    if (!v.ok()) return Fail(v.error().position, v.error().message);
    return std::move(*v);
  }

  // A JSON array of plain keys: key(k1, k2, …) (or the root when empty).
  std::optional<Value> KeyPathFromArray() {
    size_t start = pos_;
    std::optional<Value> keys = JsonValue();
    if (!keys) return std::nullopt;
    if (!keys->is_list()) return Fail(start, "a key path must be a JSON array of keys");
    step_starts_.push_back(start);
    if (keys->as_list().empty()) return Value(Value::List{});
    Value::List step{Value("key")};
    for (const Value& k : keys->as_list()) step.push_back(k);
    return Value(Value::List{Value(std::move(step))});
  }

  // Steps joined by '.'; `top` records each step's position for error messages.
  std::optional<Value> Steps(bool top) {
    SkipSpace();
    Value::List steps;
    if (LookingAt("(root)")) {
      pos_ += 6;
      return Value(std::move(steps));
    }
    if (top && pos_ == text_.size()) return Value(std::move(steps));
    while (true) {
      SkipSpace();
      if (top) step_starts_.push_back(pos_);
      std::optional<Value> step = Step();
      if (!step) return std::nullopt;
      steps.push_back(std::move(*step));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == '.') {
        ++pos_;
        continue;
      }
      return Value(std::move(steps));
    }
  }

  // "(" value, value, … ")" appended to `step`; at least one value.
  bool Args(Value::List* step, std::string_view name) {
    if (!Expect('(', "after " + std::string(name))) return false;
    while (true) {
      std::optional<Value> v = JsonValue();
      if (!v) return false;
      step->push_back(std::move(*v));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      return Expect(')', "to close " + std::string(name) + "(…)");
    }
  }

  std::optional<Value> Step() {
    const size_t start = pos_;
    const std::string name(Ident());
    if (name.empty()) {
      return Fail(pos_,
                  "expected a path step (key, must, nth, first, last, all, map_keys, "
                  "map_vals, range, size, filter, null_to), found " +
                      Found());
    }
    Value::List step{Value(name)};
    if (name == "key" || name == "must" || name == "append" || name == "add_to_set") {
      if (!Args(&step, name)) return std::nullopt;
    } else if (name == "nth" || name == "null_to" || name == "set" || name == "add" ||
               name == "set_if_absent") {
      if (!Args(&step, name)) return std::nullopt;
      if (step.size() != 2) return Fail(start, name + " takes exactly one value");
    } else if (name == "first" || name == "last" || name == "all" || name == "map_keys" ||
               name == "map_vals" || name == "size" || name == "inc" || name == "remove") {
      SkipSpace();
      if (LookingAt("()")) pos_ += 2;
    } else if (name == "range") {
      std::optional<Value> options = RangeOptions();
      if (!options) return std::nullopt;
      step.push_back(std::move(*options));
    } else if (name == "filter") {
      if (!Filter(&step)) return std::nullopt;
    } else {
      return Fail(start, "unknown path step \"" + name + "\"");
    }
    return Value(std::move(step));
  }

  // range(FROM, TO[, limit N][, reverse]) with FROM "[v" "(v" or "(-inf" and TO "v]" "v)"
  // or "+inf)", as Path::ToString prints it; or range({JSON object}) in the wire form.
  std::optional<Value> RangeOptions() {
    if (!Expect('(', "after range")) return std::nullopt;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '{') {
      std::optional<Value> options = JsonValue();
      if (!options || !Expect(')', "to close range(…)")) return std::nullopt;
      return options;
    }
    Value::Map m;
    if (pos_ >= text_.size() || (text_[pos_] != '[' && text_[pos_] != '(')) {
      return Fail(pos_,
                  "range takes an interval such as [\"a\", \"m\") or (-inf, +inf), or a "
                  "JSON object of options, found " +
                      Found());
    }
    const bool from_inclusive = text_[pos_++] == '[';
    SkipSpace();
    if (LookingAt("-inf")) {
      pos_ += 4;
    } else {
      std::optional<Value> from = JsonValue();
      if (!from) return std::nullopt;
      m.emplace_back("from", std::move(*from));
      if (!from_inclusive) m.emplace_back("from_inclusive", false);
    }
    if (!Expect(',', "between the bounds of the range")) return std::nullopt;
    SkipSpace();
    if (LookingAt("+inf")) {
      pos_ += 4;
      SkipSpace();
      if (pos_ < text_.size() && (text_[pos_] == ')' || text_[pos_] == ']')) {
        ++pos_;
      } else {
        return Fail(pos_, "expected ')' after +inf, found " + Found());
      }
    } else {
      std::optional<Value> to = JsonValue();
      if (!to) return std::nullopt;
      SkipSpace();
      if (pos_ < text_.size() && (text_[pos_] == ')' || text_[pos_] == ']')) {
        if (text_[pos_] == ']') m.emplace_back("to_inclusive", true);
        ++pos_;
      } else {
        return Fail(pos_,
                    "expected ']' (inclusive) or ')' (exclusive) after the upper bound, "
                    "found " +
                        Found());
      }
      m.emplace_back("to", std::move(*to));
    }
    while (true) {
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ')') {
        ++pos_;
        return Value::MapOf(std::move(m));
      }
      if (!Expect(',', "or ')' after the range bounds")) return std::nullopt;
      SkipSpace();
      const size_t option_start = pos_;
      std::string_view option = Ident();
      if (option == "limit") {
        std::optional<Value> n = JsonValue();
        if (!n) return std::nullopt;
        m.emplace_back("limit", std::move(*n));
      } else if (option == "reverse") {
        m.emplace_back("reverse", true);
      } else {
        return Fail(option_start, "expected 'limit N' or 'reverse' in range(…), found " +
                                      (option.empty() ? Found() : "'" + std::string(option) + "'"));
      }
    }
  }

  // filter(OP [ARG]) or filter(PATH OP [ARG]).
  bool Filter(Value::List* step) {
    if (!Expect('(', "after filter")) return false;
    SkipSpace();
    const size_t save = pos_;
    std::string_view word = Ident();
    const bool bare_op =
        IsPredicate(word) && (pos_ == text_.size() || IsSpace(text_[pos_]) || text_[pos_] == ')');
    pos_ = save;
    std::optional<Value> subpath;
    if (!bare_op) {
      subpath = Steps(/*top=*/false);
      if (!subpath) return false;
    }
    SkipSpace();
    const size_t op_start = pos_;
    std::string op(Ident());
    if (!IsPredicate(op)) {
      Fail(op_start, "expected a predicate (eq, ne, lt, le, gt, ge, exists) in filter(…), found " +
                         (op.empty() ? Found() : "'" + op + "'"));
      return false;
    }
    step->emplace_back(op);
    Value arg;
    if (op != "exists") {
      std::optional<Value> v = JsonValue();
      if (!v) return false;
      arg = std::move(*v);
    }
    if (op != "exists" || subpath) step->push_back(std::move(arg));
    if (subpath) step->push_back(std::move(*subpath));
    return Expect(')', "to close filter(…)");
  }

  // "path step N: …" from Path::FromValue → the offset of top-level step N.
  size_t StepPosition(const std::string& message) const {
    constexpr std::string_view kPrefix = "path step ";
    if (!message.starts_with(kPrefix)) return 0;
    size_t n = 0;
    for (size_t i = kPrefix.size();
         i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])); ++i) {
      n = n * 10 + static_cast<size_t>(message[i] - '0');
    }
    return n < step_starts_.size() ? step_starts_[n] : 0;
  }

  std::string_view text_;
  size_t pos_ = 0;
  std::vector<size_t> step_starts_;
  std::optional<TextError> error_;
};

}  // namespace

Parsed<Value> ParseJsonAt(std::string_view text, size_t* pos) {
  while (*pos < text.size() && IsSpace(text[*pos])) ++*pos;
  const size_t start = *pos;
  if (start >= text.size())
    return TextError{start, "expected a JSON value, found the end of the text"};
  TextError error;
  std::optional<size_t> end = JsonExtent(text, start, &error);
  if (!end) return error;
  if (*end == start) {
    return TextError{start, std::string("expected a JSON value, found '") + text[start] + "'"};
  }
  Result<Value> v = ParseJson(text.substr(start, *end - start));
  if (!v.ok()) {
    std::string message = v.status().message();
    size_t offset = TakeJsonOffset(&message);
    return TextError{start + offset, message};
  }
  *pos = *end;
  return std::move(*v);
}

Parsed<Path> ParsePathText(std::string_view text) { return PathParser(text).ParseWhole(); }

}  // namespace strata::shell
