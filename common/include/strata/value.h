// The Strata value model: the one data type of records, keys, PState contents, paths'
// arguments and everything that crosses the wire. See docs/values.md.
//
// A Value is nil, bool, int64, double, string, bytes, list, map or set. Maps take any
// Value as key. Maps and sets are kept sorted by the total order below with unique
// keys, so two equal values have one representation (and one encoding).
//
// Total order: by type rank (nil < bool < int < double < string < bytes < list < map <
// set), then within a type: false < true; ints numerically; doubles by IEEE 754
// totalOrder (-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN; NaNs are canonicalised
// to one positive and one negative quiet NaN); strings and bytes by unsigned bytes,
// shorter prefix first; lists lexicographically; maps lexicographically over their
// (key, value) sequence in key order; sets lexicographically over their elements.
//
// Values are plain data: copyable, movable, no sharing; safe to use from any thread as
// long as one object is not written while another thread reads it.
#pragma once

#include <compare>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace strata {

enum class Type : uint8_t { kNil, kBool, kInt, kDouble, kString, kBytes, kList, kMap, kSet };

// Name of a type as used in error messages and docs ("nil", "bool", "int", ...).
std::string_view TypeName(Type type);

class Value {
 public:
  // Raw bytes: distinct from strings in type and order.
  struct Bytes {
    std::string data;
    bool operator==(const Bytes&) const = default;
  };
  using List = std::vector<Value>;
  // Sorted by key, keys unique. Use Value::MapOf / Insert to keep the invariant.
  using Map = std::vector<std::pair<Value, Value>>;
  // Sorted, elements unique. Use Value::SetOf / Insert to keep the invariant.
  using Set = std::vector<Value>;

  Value() = default;  // nil
  Value(std::nullptr_t) {}
  Value(bool b) : rep_(b) {}
  Value(int v) : rep_(int64_t{v}) {}
  Value(int64_t v) : rep_(v) {}
  // Any other integer type whose every value fits in int64_t (long long, short, unsigned,
  // uint32_t, char, ...) becomes an int, exactly.
  template <typename T>
  requires std::integral<T> &&
      (!std::same_as<T, bool>)&&(std::is_signed_v<T> || sizeof(T) < sizeof(int64_t)) Value(T v)
      : rep_(static_cast<int64_t>(v)) {}
  // Deleted: a 64-bit unsigned (size_t, uint64_t, unsigned long long) may not fit in an
  // int. Check the range and write Value(static_cast<int64_t>(n)).
  template <typename T>
  requires std::unsigned_integral<T> &&(sizeof(T) >= sizeof(int64_t)) Value(T v) = delete;
  Value(double v);
  Value(const char* s) : rep_(std::string(s)) {}
  // Deleted: any other pointer (a std::string*, an int*) would silently become a bool.
  Value(const void*) = delete;
  Value(std::string_view s) : rep_(std::string(s)) {}
  Value(std::string s) : rep_(std::move(s)) {}
  Value(Bytes b) : rep_(std::move(b)) {}
  Value(List l) : rep_(std::move(l)) {}

  static Value Nil() { return Value(); }
  static Value BytesOf(std::string_view data) { return Value(Bytes{std::string(data)}); }
  static Value ListOf(std::initializer_list<Value> items) { return Value(List(items)); }
  // Sorts the entries; with a duplicate key the last entry wins.
  static Value MapOf(Map entries);
  static Value MapOf(std::initializer_list<std::pair<Value, Value>> entries) {
    return MapOf(Map(entries));
  }
  // Sorts the elements and drops duplicates.
  static Value SetOf(Set elements);
  static Value SetOf(std::initializer_list<Value> elements) { return SetOf(Set(elements)); }
  // For decoders that check the order while they read: `entries` must be strictly
  // increasing by key, `elements` strictly increasing (asserted in debug builds only).
  // Everything else uses MapOf / SetOf.
  static Value MapOfSorted(Map entries);
  static Value SetOfSorted(Set elements);
  static Value EmptyMap() { return MapOf(Map{}); }
  static Value EmptySet() { return SetOf(Set{}); }

  Type type() const { return static_cast<Type>(rep_.index()); }
  bool is_nil() const { return type() == Type::kNil; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_double() const { return type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_bytes() const { return type() == Type::kBytes; }
  bool is_list() const { return type() == Type::kList; }
  bool is_map() const { return type() == Type::kMap; }
  bool is_set() const { return type() == Type::kSet; }

  // Accessors: the caller checks the type first (a wrong type throws
  // std::bad_variant_access, a programming error).
  bool as_bool() const { return std::get<bool>(rep_); }
  int64_t as_int() const { return std::get<int64_t>(rep_); }
  double as_double() const { return std::get<double>(rep_); }
  const std::string& as_string() const { return std::get<std::string>(rep_); }
  const std::string& as_bytes() const { return std::get<Bytes>(rep_).data; }
  const List& as_list() const { return std::get<List>(rep_); }
  List& as_list() { return std::get<List>(rep_); }
  const Map& as_map() const { return std::get<MapRep>(rep_).entries; }
  const Set& as_set() const { return std::get<SetRep>(rep_).elements; }

  // Map operations (this must be a map). Find returns nullptr when absent.
  const Value* Find(const Value& key) const;
  Value* Find(const Value& key);
  // Inserts or replaces; returns the stored value.
  Value& Insert(Value key, Value value);
  // Removes the key; returns whether it was present.
  bool Erase(const Value& key);

  // Set operations (this must be a set).
  bool Contains(const Value& element) const;
  // Returns whether the element was new.
  bool Add(Value element);
  bool Remove(const Value& element);

  // Number of elements of a list, map or set; 0 for anything else.
  size_t size() const;

  friend std::strong_ordering operator<=>(const Value& a, const Value& b) { return Compare(a, b); }
  friend bool operator==(const Value& a, const Value& b) { return Compare(a, b) == 0; }

  // The total order of the header comment.
  static std::strong_ordering Compare(const Value& a, const Value& b);

  // Compact JSON text form (docs/values.md), for messages, logs and test output.
  std::string ToString() const;

 private:
  struct MapRep {
    Map entries;
  };
  struct SetRep {
    Set elements;
  };
  // The variant index is the Type.
  std::variant<std::monostate, bool, int64_t, double, std::string, Bytes, List, MapRep, SetRep>
      rep_;
};

// Canonical NaNs: every NaN becomes one of these two (by sign) when stored in a Value.
double CanonicalDouble(double d);

}  // namespace strata
