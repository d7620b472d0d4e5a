// JSON text form of values (docs/values.md, "JSON form").
//
// Printing walks the Value recursively (a Value's own destructor and comparison do
// the same, so this adds no new limit). Parsing uses nlohmann-json's SAX parser, which
// is iterative; ValueBuilder keeps its own explicit stack of open containers and
// rejects nesting beyond kMaxValueDepth as soon as it is certain, so no input can make
// either one recurse or allocate without bound.

#include "strata/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "strata/value_codec.h"

namespace strata {

namespace {

// ---------------------------------------------------------------------------
// Shared pieces: reserved tags, UTF-8 validity, base64.

enum class Tag { kNone, kBytes, kDouble, kString, kMap, kSet };

constexpr std::string_view kBytesTag = "$bytes";
constexpr std::string_view kDoubleTag = "$double";
constexpr std::string_view kStringTag = "$string";
constexpr std::string_view kMapTag = "$map";
constexpr std::string_view kSetTag = "$set";

Tag TagOf(std::string_view name) {
  if (name == kBytesTag) return Tag::kBytes;
  if (name == kDoubleTag) return Tag::kDouble;
  if (name == kStringTag) return Tag::kString;
  if (name == kMapTag) return Tag::kMap;
  if (name == kSetTag) return Tag::kSet;
  return Tag::kNone;
}

// The length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF) at the start of non-empty `s`, or 0 when there is
// none. This is exactly what nlohmann's parser accepts inside a JSON string, so every
// string printed as a JSON string parses back.
size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = byte(0);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || byte(1) < lo || byte(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return n;
}

bool IsValidUtf8(std::string_view s) {
  while (!s.empty()) {
    const size_t n = Utf8SequenceLength(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void AppendBase64(std::string_view data, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out->push_back(kBase64Alphabet[(v >> 18) & 63]);
    out->push_back(kBase64Alphabet[(v >> 12) & 63]);
    out->push_back(kBase64Alphabet[(v >> 6) & 63]);
    out->push_back(kBase64Alphabet[v & 63]);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out->push_back(kBase64Alphabet[(v >> 18) & 63]);
    out->push_back(kBase64Alphabet[(v >> 12) & 63]);
    out->append("==");
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out->push_back(kBase64Alphabet[(v >> 18) & 63]);
    out->push_back(kBase64Alphabet[(v >> 12) & 63]);
    out->push_back(kBase64Alphabet[(v >> 6) & 63]);
    out->push_back('=');
  }
}

int Base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// 'c' when printable ASCII, else 0xNN.
std::string ShowByte(char c) {
  if (c >= 0x20 && c < 0x7F) return std::string("'") + c + "'";
  constexpr char kHex[] = "0123456789abcdef";
  auto b = static_cast<unsigned char>(c);
  return std::string("0x") + kHex[b >> 4] + kHex[b & 15];
}

// Strict decoding of what AppendBase64 writes: standard alphabet, padded, no white
// space, unused bits zero (so every byte string has exactly one text). Returns the
// problem, or nullopt with the bytes in *out.
std::optional<std::string> DecodeBase64(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) {
    return "base64 text length " + std::to_string(text.size()) + " is not a multiple of 4";
  }
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  out->clear();
  out->reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    for (size_t j = 0; j < 4; ++j) {
      size_t pos = i + j;
      char c = text[pos];
      int d = Base64Digit(c);
      if (d < 0 && !(c == '=' && pos >= text.size() - padding)) {
        return "invalid base64 character " + ShowByte(c) + " at position " + std::to_string(pos);
      }
      v = (v << 6) | static_cast<uint32_t>(d < 0 ? 0 : d);
    }
    bool last = i + 4 == text.size();
    size_t bytes = last ? 3 - padding : 3;
    if (last && (padding == 2 ? (v & 0xFFFF) : padding == 1 ? (v & 0xFF) : 0) != 0) {
      return std::string("base64 text has non-zero bits in its padding (not canonical)");
    }
    out->push_back(static_cast<char>(v >> 16));
    if (bytes > 1) out->push_back(static_cast<char>(v >> 8));
    if (bytes > 2) out->push_back(static_cast<char>(v));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Printing.

class Printer {
 public:
  Printer(int indent, std::string* out) : indent_(indent), out_(out) {}

  void Print(const Value& v, int level) {
    switch (v.type()) {
      case Type::kNil:
        out_->append("null");
        return;
      case Type::kBool:
        out_->append(v.as_bool() ? "true" : "false");
        return;
      case Type::kInt:
        AppendNumber(v.as_int());
        return;
      case Type::kDouble:
        PrintDouble(v.as_double());
        return;
      case Type::kString:
        PrintStringValue(v.as_string());
        return;
      case Type::kBytes:
        PrintBase64Tag(kBytesTag, v.as_bytes());
        return;
      case Type::kList:
        PrintList(v.as_list(), level);
        return;
      case Type::kMap:
        PrintMap(v.as_map(), level);
        return;
      case Type::kSet:
        PrintTagged(kSetTag, level, [&] { PrintList(v.as_set(), level + 1); });
        return;
    }
  }

 private:
  bool pretty() const { return indent_ >= 0; }

  void Newline(int level) {
    if (!pretty()) return;
    out_->push_back('\n');
    out_->append(static_cast<size_t>(indent_) * static_cast<size_t>(level), ' ');
  }

  void Colon() { out_->append(pretty() ? ": " : ":"); }

  template <typename T>
  void AppendNumber(T number) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, number);
    out_->append(buf, end);
  }

  void PrintDouble(double d) {
    if (std::isnan(d)) return PrintScalarTag(kDoubleTag, std::signbit(d) ? "\"-NaN\"" : "\"NaN\"");
    if (std::isinf(d)) return PrintScalarTag(kDoubleTag, d < 0 ? "\"-Infinity\"" : "\"Infinity\"");
    size_t start = out_->size();
    AppendNumber(d);  // shortest text that reads back as the same double
    if (out_->find_first_of(".e", start) == std::string::npos) out_->append(".0");
  }

  // Escaping is nlohmann's: '"' and '\\', \b \f \n \r \t, other control characters as
  // \u00xx; everything else, including non-ASCII UTF-8, verbatim.
  void PrintJsonString(std::string_view s) { out_->append(nlohmann::json(std::string(s)).dump()); }

  void PrintStringValue(std::string_view s) {
    if (IsValidUtf8(s)) return PrintJsonString(s);
    PrintBase64Tag(kStringTag, s);
  }

  void PrintBase64Tag(std::string_view tag, std::string_view data) {
    std::string text = "\"";
    AppendBase64(data, &text);
    text.push_back('"');
    PrintScalarTag(tag, text);
  }

  // Tagged scalars stay on one line even when pretty-printing.
  void PrintScalarTag(std::string_view tag, std::string_view json_text) {
    out_->push_back('{');
    PrintJsonString(tag);
    Colon();
    out_->append(json_text);
    out_->push_back('}');
  }

  // {"<tag>": <content>} laid out like any object.
  template <typename PrintContent>
  void PrintTagged(std::string_view tag, int level, PrintContent print_content) {
    out_->push_back('{');
    Newline(level + 1);
    PrintJsonString(tag);
    Colon();
    print_content();
    Newline(level);
    out_->push_back('}');
  }

  template <typename PrintElement>
  void PrintSequence(char open, char close, size_t n, int level, PrintElement print_element) {
    out_->push_back(open);
    if (n == 0) {
      out_->push_back(close);
      return;
    }
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) out_->push_back(',');
      Newline(level + 1);
      print_element(i);
    }
    Newline(level);
    out_->push_back(close);
  }

  void PrintList(const std::vector<Value>& items, int level) {
    PrintSequence('[', ']', items.size(), level, [&](size_t i) { Print(items[i], level + 1); });
  }

  // A map prints as a plain object only when that object would read back as this
  // map: every key is a valid UTF-8 string, and it is not a lone reserved tag.
  static bool PrintsAsObject(const Value::Map& map) {
    for (const auto& [key, value] : map) {
      if (!key.is_string() || !IsValidUtf8(key.as_string())) return false;
    }
    return !(map.size() == 1 && TagOf(map[0].first.as_string()) != Tag::kNone);
  }

  void PrintMap(const Value::Map& map, int level) {
    if (PrintsAsObject(map)) {
      PrintSequence('{', '}', map.size(), level, [&](size_t i) {
        PrintJsonString(map[i].first.as_string());
        Colon();
        Print(map[i].second, level + 1);
      });
      return;
    }
    PrintTagged(kMapTag, level, [&] {
      PrintSequence('[', ']', map.size(), level + 1, [&](size_t i) {
        PrintSequence('[', ']', 2, level + 2,
                      [&](size_t j) { Print(j == 0 ? map[i].first : map[i].second, level + 3); });
      });
    });
  }

  const int indent_;
  std::string* const out_;
};

// ---------------------------------------------------------------------------
// Parsing.

// Passes the text to nlohmann one byte at a time and records how far it has read, so
// the handler can find the byte offset of the token it is being told about.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, const char** read_end) : p_(p), read_end_(read_end) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    *read_end_ = ++p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& o) const { return p_ == o.p_; }

 private:
  const char* p_;
  const char** read_end_;
};

constexpr size_t kMaxQuotedChars = 40;

// `s` cut to about kMaxQuotedChars bytes (at a UTF-8 character boundary) for a message.
std::string Abbreviate(std::string_view s) {
  if (s.size() <= kMaxQuotedChars) return std::string(s);
  size_t cut = kMaxQuotedChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

std::string Describe(const Value& v) { return Abbreviate(ToJson(v)); }

// One path step for a member name: `.name` when it reads unambiguously, else `["..."]`.
std::string KeyStep(std::string_view key) {
  bool plain = !key.empty() && key.size() <= kMaxQuotedChars;
  for (size_t i = 0; plain && i < key.size(); ++i) {
    char c = key[i];
    plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
            (i > 0 && c >= '0' && c <= '9');
  }
  std::string step = plain ? "." : "[";
  step += plain ? std::string(key) : nlohmann::json(Abbreviate(key)).dump();
  if (!plain) step += ']';
  return step;
}

std::string IndexStep(size_t i) {
  std::string step = "[";
  step += std::to_string(i);
  step += ']';
  return step;
}

// Builds a Value from nlohmann's SAX events (the handler interface of
// nlohmann::json::sax_parse). Single use, one thread.
//
// Nesting depth is counted in Value levels (a scalar is 0, a container one more than
// its deepest element or key), not in JSON brackets: {"$set": [...]} is one level and
// the [key, value] pairs of a $map are none. Whether {"$set": ...} is a tagged form is
// only known at its end (a second member makes it a plain map), so while its content
// is open the handler assumes the tagged form, which gives the fewest levels. Levels
// so counted are a lower bound: exceeding the limit is certain and is rejected at
// once, which bounds the stack to about 3 * kMaxValueDepth frames. The exact height
// of every finished value is checked too, which catches the rest.
class ValueBuilder {
 public:
  using Json = nlohmann::json;

  ValueBuilder(std::string_view text, const char* const* read_end)
      : text_(text), read_end_(read_end) {}

  bool null() { return AddValue(Value(), BeginToken(), 0); }
  bool boolean(bool b) { return AddValue(Value(b), BeginToken(), 0); }
  bool number_integer(Json::number_integer_t i) {
    return AddValue(Value(int64_t{i}), BeginToken(), 0);
  }
  bool number_unsigned(Json::number_unsigned_t u) {
    size_t start = BeginToken();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return IntOutOfRange(std::to_string(u), start);
    }
    return AddValue(Value(static_cast<int64_t>(u)), start, 0);
  }
  // nlohmann also reports integer literals outside int64/uint64 here.
  bool number_float(Json::number_float_t d, const Json::string_t& token) {
    size_t start = BeginToken();
    if (!IsFloatLiteral(token)) return IntOutOfRange(token, start);
    return AddValue(Value(d), start, 0);
  }
  bool string(Json::string_t& s) { return AddValue(Value(std::move(s)), BeginToken(), 0); }
  bool binary(Json::binary_t&) {
    error_ = Status::Internal("JSON parser reported a binary value, which JSON text cannot hold");
    return false;
  }

  bool start_array(std::size_t) { return Open(/*is_object=*/false); }
  bool start_object(std::size_t) { return Open(/*is_object=*/true); }

  bool key(Json::string_t& name) {
    size_t start = BeginToken();
    Frame& object = frames_.back();
    if (IsProvisional(object)) {
      // A second member: the object is a plain map after all, and its first member sits
      // one level deeper than the tagged form assumed.
      if (object.level + object.max_child_height > kMaxValueDepth) {
        return TooDeep(PathTo(frames_.size() - 1) + KeyStep(object.keys[0]),
                       object.value_offsets[0]);
      }
    }
    object.keys.push_back(std::move(name));
    object.key_offsets.push_back(start);
    return true;
  }

  bool end_array() {
    BeginToken();
    Frame array = std::move(frames_.back());
    frames_.pop_back();
    if (!frames_.empty() && IsProvisional(frames_.back())) {
      frames_.back().content_offsets = std::move(array.value_offsets);
    }
    return AddValue(Value(std::move(array.values)), array.offset, 1 + array.max_child_height);
  }

  bool end_object() {
    BeginToken();
    Frame object = std::move(frames_.back());
    frames_.pop_back();
    if (IsProvisional(object)) return FinishTagged(object);
    return FinishMap(object);
  }

  bool parse_error(std::size_t position, const std::string& last_token, const Json::exception& ex) {
    if (ex.id == 406) {  // a number literal too large for a double
      size_t start = BeginToken();
      if (!IsFloatLiteral(last_token)) return IntOutOfRange(last_token, start);
      return Fail(CurrentPath(), start,
                  "number " + Abbreviate(last_token) +
                      " is out of the double range; write {\"$double\": \"Infinity\"} or "
                      "{\"$double\": \"-Infinity\"} for an infinite double");
    }
    // nlohmann's position counts bytes read, the offending one included.
    size_t offset = position > 0 ? position - 1 : 0;
    std::string detail = ex.what();
    // Drop nlohmann's "[json.exception...] parse error at line L, column C: " prefix.
    if (size_t colon = detail.find(": "); colon != std::string::npos) detail.erase(0, colon + 2);
    if (last_token.size() > kMaxQuotedChars) {
      if (size_t at = detail.find(last_token); at != std::string::npos) {
        detail.replace(at, last_token.size(), Abbreviate(last_token));
      }
    }
    std::string where = "at offset " + std::to_string(offset);
    if (offset >= text_.size()) where += " (end of input)";
    error_ = Status::InvalidArgument("invalid JSON " + where + ": " + detail);
    return false;
  }

  Result<Value> Finish(bool parsed) && {
    if (!parsed) {
      if (error_.ok()) return Status::Internal("JSON parser failed without reporting an error");
      return std::move(error_);
    }
    return std::move(root_);
  }

 private:
  // An open JSON array or object.
  struct Frame {
    bool is_object = false;
    // For an array that is the content of a provisional {"$set": ...} or {"$map": ...}:
    // which one (Tag::kNone otherwise).
    Tag content_of = Tag::kNone;
    // Lower bound of the Value level this container occupies (the outermost is 1).
    int level = 0;
    size_t offset = 0;  // of its '[' or '{'
    int max_child_height = 0;
    std::vector<Value> values;
    std::vector<size_t> value_offsets;
    std::vector<std::string> keys;  // objects: member names, in text order
    std::vector<size_t> key_offsets;
    // Provisional objects: offsets of the elements of their (array) content.
    std::vector<size_t> content_offsets;
  };

  static bool IsFloatLiteral(std::string_view token) {
    return token.find_first_of(".eE") != std::string_view::npos;
  }

  // An object whose only member so far is a reserved tag: a tagged form unless a
  // second member follows.
  static bool IsProvisional(const Frame& f) {
    return f.is_object && f.keys.size() == 1 && TagOf(f.keys[0]) != Tag::kNone;
  }

  static constexpr int kUnchecked = std::numeric_limits<int>::min() / 2;

  // A finished child of `f` with height h is too deep when base + h > kMaxValueDepth.
  // The first member of a provisional object is checked when the object is resolved.
  static int ChildBase(const Frame& f) {
    if (IsProvisional(f)) return kUnchecked;
    // $map content holds [key, value] pairs, which add no level of their own.
    if (f.content_of == Tag::kMap) return f.level - 1;
    return f.level;
  }

  int NewContainerLevel(bool is_object) const {
    if (frames_.empty()) return 1;
    const Frame& parent = frames_.back();
    if (IsProvisional(parent)) {
      Tag tag = TagOf(parent.keys[0]);
      bool tagged_content = !is_object && (tag == Tag::kSet || tag == Tag::kMap);
      return tagged_content ? parent.level : parent.level + 1;
    }
    return ChildBase(parent) + 1;
  }

  // Start offset of the token the parser has just reported. Between the previous
  // reported token and this one there can only be white space, ',' and ':' (the parser
  // reports every other token), and a leading byte order mark.
  size_t BeginToken() {
    size_t i = resume_;
    if (i == 0 && text_.substr(0, 3) == "\xEF\xBB\xBF") i = 3;
    while (i < text_.size()) {
      char c = text_[i];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ',' && c != ':') break;
      ++i;
    }
    resume_ = static_cast<size_t>(*read_end_ - text_.data());
    return i;
  }

  // The location of the value being parsed in the innermost `depth` frames.
  std::string PathTo(size_t depth) const {
    std::string path = "$";
    for (size_t i = 0; i < depth; ++i) {
      const Frame& f = frames_[i];
      path += f.is_object ? KeyStep(f.keys.back()) : IndexStep(f.values.size());
    }
    return path;
  }
  std::string CurrentPath() const { return PathTo(frames_.size()); }

  bool Fail(const std::string& path, size_t offset, const std::string& what) {
    error_ = Status::InvalidArgument("invalid JSON value at " + path + " (offset " +
                                     std::to_string(offset) + "): " + what);
    return false;
  }

  bool TooDeep(const std::string& path, size_t offset) {
    return Fail(
        path, offset,
        "values nest deeper than the limit of " + std::to_string(kMaxValueDepth) + " levels");
  }

  bool IntOutOfRange(const std::string& token, size_t offset) {
    return Fail(CurrentPath(), offset,
                "integer " + Abbreviate(token) +
                    " is out of the int64 range [-9223372036854775808, 9223372036854775807]; "
                    "write it as a double (e.g. 1.0e20) if a floating-point number is meant");
  }

  bool Open(bool is_object) {
    size_t start = BeginToken();
    int level = NewContainerLevel(is_object);
    if (level > kMaxValueDepth) return TooDeep(CurrentPath(), start);
    Frame f;
    f.is_object = is_object;
    f.level = level;
    f.offset = start;
    if (!is_object && !frames_.empty() && IsProvisional(frames_.back())) {
      f.content_of = TagOf(frames_.back().keys[0]);
    }
    frames_.push_back(std::move(f));
    return true;
  }

  // Appends a finished value (with its height, see the class comment) to the innermost
  // open container, or makes it the document.
  bool AddValue(Value v, size_t offset, int height) {
    int base = frames_.empty() ? 0 : ChildBase(frames_.back());
    if (base != kUnchecked && base + height > kMaxValueDepth) return TooDeep(CurrentPath(), offset);
    if (frames_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& parent = frames_.back();
    parent.max_child_height = std::max(parent.max_child_height, height);
    parent.values.push_back(std::move(v));
    parent.value_offsets.push_back(offset);
    return true;
  }

  // Indexes of `items` whose value equals an earlier one: returns the first such index
  // in text order, or nullopt.
  template <typename GetKey>
  static std::optional<size_t> FirstDuplicate(size_t n, GetKey key) {
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return key(a) < key(b); });
    std::optional<size_t> first;
    for (size_t i = 1; i < n; ++i) {
      if (key(order[i]) == key(order[i - 1]) && (!first || order[i] < *first)) first = order[i];
    }
    return first;
  }

  bool FinishMap(Frame& object) {
    size_t n = object.keys.size();
    if (auto dup =
            FirstDuplicate(n, [&](size_t i) -> std::string_view { return object.keys[i]; })) {
      return Fail(CurrentPath() + KeyStep(object.keys[*dup]), object.key_offsets[*dup],
                  "duplicate object key " + nlohmann::json(Abbreviate(object.keys[*dup])).dump());
    }
    Value::Map entries;
    entries.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      entries.emplace_back(Value(std::move(object.keys[i])), std::move(object.values[i]));
    }
    return AddValue(Value::MapOf(std::move(entries)), object.offset, 1 + object.max_child_height);
  }

  // {"<tag>": content} with exactly one member.
  bool FinishTagged(Frame& object) {
    const std::string& tag = object.keys[0];
    Value& content = object.values[0];
    size_t content_offset = object.value_offsets[0];
    std::string path = CurrentPath() + KeyStep(tag);
    auto wrong_shape = [&](std::string_view expected) {
      return Fail(path, content_offset,
                  tag + " must be " + std::string(expected) + ", not " +
                      std::string(TypeName(content.type())) + " " + Describe(content));
    };
    switch (TagOf(tag)) {
      case Tag::kBytes:
      case Tag::kString: {
        if (!content.is_string()) return wrong_shape("a base64 string");
        std::string bytes;
        if (auto problem = DecodeBase64(content.as_string(), &bytes)) {
          return Fail(path, content_offset, "bad " + tag + " content: " + *problem);
        }
        Value v = TagOf(tag) == Tag::kBytes ? Value::BytesOf(bytes) : Value(std::move(bytes));
        return AddValue(std::move(v), object.offset, 0);
      }
      case Tag::kDouble: {
        constexpr double kInf = std::numeric_limits<double>::infinity();
        constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
        const std::string* text = content.is_string() ? &content.as_string() : nullptr;
        std::optional<double> d;
        if (text && *text == "NaN") d = kNaN;
        if (text && *text == "-NaN") d = -kNaN;
        if (text && *text == "Infinity") d = kInf;
        if (text && *text == "-Infinity") d = -kInf;
        if (!d) return wrong_shape(R"(one of "NaN", "-NaN", "Infinity", "-Infinity")");
        return AddValue(Value(*d), object.offset, 0);
      }
      case Tag::kSet: {
        if (!content.is_list()) return wrong_shape("an array of elements");
        Value::List& elements = content.as_list();
        if (auto dup = FirstDuplicate(elements.size(),
                                      [&](size_t i) -> const Value& { return elements[i]; })) {
          return Fail(path + IndexStep(*dup), object.content_offsets[*dup],
                      "duplicate $set element " + Describe(elements[*dup]));
        }
        return AddValue(Value::SetOf(std::move(elements)), object.offset, object.max_child_height);
      }
      case Tag::kMap: {
        if (!content.is_list()) return wrong_shape("an array of [key, value] pairs");
        Value::List& pairs = content.as_list();
        for (size_t i = 0; i < pairs.size(); ++i) {
          if (!pairs[i].is_list() || pairs[i].size() != 2) {
            return Fail(path + IndexStep(i), object.content_offsets[i],
                        "a $map entry must be a [key, value] array, not " + Describe(pairs[i]));
          }
        }
        if (auto dup = FirstDuplicate(
                pairs.size(), [&](size_t i) -> const Value& { return pairs[i].as_list()[0]; })) {
          return Fail(path + IndexStep(*dup), object.content_offsets[*dup],
                      "duplicate $map key " + Describe(pairs[*dup].as_list()[0]));
        }
        Value::Map entries;
        entries.reserve(pairs.size());
        for (Value& pair : pairs) {
          Value::List& kv = pair.as_list();
          entries.emplace_back(std::move(kv[0]), std::move(kv[1]));
        }
        // The content's height counts the pair arrays, which are no level of the map.
        int height = std::max(1, object.max_child_height - 1);
        return AddValue(Value::MapOf(std::move(entries)), object.offset, height);
      }
      case Tag::kNone:
        break;
    }
    return FinishMap(object);
  }

  const std::string_view text_;
  const char* const* const read_end_;
  size_t resume_ = 0;  // offset just past the last byte the parser had read at the previous event
  std::vector<Frame> frames_;
  Value root_;
  Status error_;
};

}  // namespace

std::string ToJson(const Value& v, int indent) {
  std::string out;
  Printer(indent, &out).Print(v, 0);
  return out;
}

Result<Value> ParseJson(std::string_view text) {
  const char* read_end = text.data();
  ValueBuilder builder(text, &read_end);
  TrackingIterator first(text.data(), &read_end);
  TrackingIterator last(text.data() + text.size(), &read_end);
  bool parsed =
      nlohmann::json::sax_parse(first, last, &builder, nlohmann::json::input_format_t::json,
                                /*strict=*/true, /*ignore_comments=*/false);
  return std::move(builder).Finish(parsed);
}

std::string EscapeInvalidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t n = Utf8SequenceLength(text);
    if (n == 0) {
      constexpr char kHex[] = "0123456789abcdef";
      const auto b = static_cast<unsigned char>(text[0]);
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, n));
      text.remove_prefix(n);
    }
  }
  return out;
}

}  // namespace strata
