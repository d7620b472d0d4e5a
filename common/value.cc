#include "strata/value.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstring>
#include <functional>

#include "strata/json.h"
#include "strata/status.h"

namespace strata {

namespace {

constexpr uint64_t kPositiveNaN = 0x7ff8000000000000ULL;
constexpr uint64_t kNegativeNaN = 0xfff8000000000000ULL;

// Maps a double to an unsigned integer whose order is IEEE 754 totalOrder.
uint64_t DoubleOrderBits(double d) {
  uint64_t bits = std::bit_cast<uint64_t>(d);
  return (bits & (1ULL << 63)) ? ~bits : bits | (1ULL << 63);
}

template <typename T>
std::strong_ordering CompareSeq(const std::vector<T>& a, const std::vector<T>& b) {
  return std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
}

std::strong_ordering ComparePairs(const Value::Map& a, const Value::Map& b) {
  return std::lexicographical_compare_three_way(
      a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
        if (auto c = Value::Compare(x.first, y.first); c != 0) return c;
        return Value::Compare(x.second, y.second);
      });
}

bool KeyLess(const std::pair<Value, Value>& a, const std::pair<Value, Value>& b) {
  return a.first < b.first;
}

}  // namespace

std::string_view TypeName(Type type) {
  switch (type) {
    case Type::kNil:
      return "nil";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kDouble:
      return "double";
    case Type::kString:
      return "string";
    case Type::kBytes:
      return "bytes";
    case Type::kList:
      return "list";
    case Type::kMap:
      return "map";
    case Type::kSet:
      return "set";
  }
  return "unknown";
}

double CanonicalDouble(double d) {
  if (!std::isnan(d)) return d;
  return std::bit_cast<double>(std::signbit(d) ? kNegativeNaN : kPositiveNaN);
}

Value::Value(double v) : rep_(CanonicalDouble(v)) {}

Value Value::MapOf(Map entries) {
  // Decoders hand over entries that are already sorted and unique: keep them as they
  // are (a linear check) instead of sorting and copying.
  if (std::adjacent_find(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        return !KeyLess(a, b);
      }) == entries.end()) {
    Value v;
    v.rep_ = MapRep{std::move(entries)};
    return v;
  }
  // Stable sort keeps input order among equal keys, so the last duplicate wins below.
  std::stable_sort(entries.begin(), entries.end(), KeyLess);
  Map out;
  out.reserve(entries.size());
  for (auto& e : entries) {
    if (!out.empty() && out.back().first == e.first) {
      out.back().second = std::move(e.second);
    } else {
      out.push_back(std::move(e));
    }
  }
  Value v;
  v.rep_ = MapRep{std::move(out)};
  return v;
}

Value Value::MapOfSorted(Map entries) {
  assert(std::adjacent_find(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
           return !KeyLess(a, b);
         }) == entries.end());
  Value v;
  v.rep_ = MapRep{std::move(entries)};
  return v;
}

Value Value::SetOfSorted(Set elements) {
  assert(std::adjacent_find(elements.begin(), elements.end(), std::greater_equal<>()) ==
         elements.end());
  Value v;
  v.rep_ = SetRep{std::move(elements)};
  return v;
}

Value Value::SetOf(Set elements) {
  if (std::adjacent_find(elements.begin(), elements.end(), std::greater_equal<>()) !=
      elements.end()) {
    std::sort(elements.begin(), elements.end());
    elements.erase(std::unique(elements.begin(), elements.end()), elements.end());
  }
  Value v;
  v.rep_ = SetRep{std::move(elements)};
  return v;
}

const Value* Value::Find(const Value& key) const {
  const Map& m = as_map();
  auto it = std::lower_bound(m.begin(), m.end(), key,
                             [](const auto& e, const Value& k) { return e.first < k; });
  return it != m.end() && it->first == key ? &it->second : nullptr;
}

Value* Value::Find(const Value& key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->Find(key));
}

Value& Value::Insert(Value key, Value value) {
  Map& m = std::get<MapRep>(rep_).entries;
  auto it = std::lower_bound(m.begin(), m.end(), key,
                             [](const auto& e, const Value& k) { return e.first < k; });
  if (it != m.end() && it->first == key) {
    it->second = std::move(value);
    return it->second;
  }
  return m.emplace(it, std::move(key), std::move(value))->second;
}

bool Value::Erase(const Value& key) {
  Map& m = std::get<MapRep>(rep_).entries;
  auto it = std::lower_bound(m.begin(), m.end(), key,
                             [](const auto& e, const Value& k) { return e.first < k; });
  if (it == m.end() || it->first != key) return false;
  m.erase(it);
  return true;
}

bool Value::Contains(const Value& element) const {
  const Set& s = as_set();
  return std::binary_search(s.begin(), s.end(), element);
}

bool Value::Add(Value element) {
  Set& s = std::get<SetRep>(rep_).elements;
  auto it = std::lower_bound(s.begin(), s.end(), element);
  if (it != s.end() && *it == element) return false;
  s.insert(it, std::move(element));
  return true;
}

bool Value::Remove(const Value& element) {
  Set& s = std::get<SetRep>(rep_).elements;
  auto it = std::lower_bound(s.begin(), s.end(), element);
  if (it == s.end() || *it != element) return false;
  s.erase(it);
  return true;
}

size_t Value::size() const {
  switch (type()) {
    case Type::kList:
      return as_list().size();
    case Type::kMap:
      return as_map().size();
    case Type::kSet:
      return as_set().size();
    default:
      return 0;
  }
}

std::strong_ordering Value::Compare(const Value& a, const Value& b) {
  if (a.type() != b.type()) return a.type() <=> b.type();
  switch (a.type()) {
    case Type::kNil:
      return std::strong_ordering::equal;
    case Type::kBool:
      return a.as_bool() <=> b.as_bool();
    case Type::kInt:
      return a.as_int() <=> b.as_int();
    case Type::kDouble:
      return DoubleOrderBits(a.as_double()) <=> DoubleOrderBits(b.as_double());
    case Type::kString:
      return a.as_string().compare(b.as_string()) <=> 0;
    case Type::kBytes:
      return a.as_bytes().compare(b.as_bytes()) <=> 0;
    case Type::kList:
      return CompareSeq(a.as_list(), b.as_list());
    case Type::kMap:
      return ComparePairs(a.as_map(), b.as_map());
    case Type::kSet:
      return CompareSeq(a.as_set(), b.as_set());
  }
  return std::strong_ordering::equal;
}

std::string Value::ToString() const { return ToJson(*this); }

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case StatusCode::kSchemaViolation:
      return "SchemaViolation";
    case StatusCode::kCorruption:
      return "Corruption";
    case StatusCode::kIOError:
      return "IOError";
    case StatusCode::kBusy:
      return "Busy";
    case StatusCode::kAborted:
      return "Aborted";
    case StatusCode::kInternal:
      return "Internal";
    case StatusCode::kUserError:
      return "UserError";
    case StatusCode::kTimeout:
      return "Timeout";
    case StatusCode::kNotLeader:
      return "NotLeader";
    case StatusCode::kNotEnoughReplicas:
      return "NotEnoughReplicas";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

}  // namespace strata
