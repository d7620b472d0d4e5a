// Paths: serializable navigations into a nested Value, used to query (select) and to update
// (transform) PStates and plain Values. The exact semantics of every navigator and
// terminal are in docs/paths.md; this header is the API.
//
//   Path().Key("alice").Key("balance").Inc()           // a transform: one terminal at the end
//   Path().Key("alice").Key("follows").Range({.from = "m", .limit = 20})  // a select
//
// A Path is plain data: copyable, immutable once built, safe to share between threads.
// It converts to and from a Value (its wire form) and prints readably. Running a path is
// the engine's: strata/navigate.h over a plain Value, the engine API over PStates.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

class Path;

// Built-in filter predicates. Comparisons use the Value total order, except that ints
// and doubles compare numerically with each other. kExists tests "not nil".
enum class PredicateOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kExists };

// A sorted range of a map's keys or a set's elements. Absent bounds are open. With a
// limit, the range holds only the first `limit` keys in its order (the last ones when
// `reverse`), and `reverse` also makes all/first/last visit it in descending order.
struct RangeSpec {
  std::optional<Value> from = std::nullopt;
  bool from_inclusive = true;
  std::optional<Value> to = std::nullopt;
  bool to_inclusive = false;
  std::optional<int64_t> limit = std::nullopt;  // >= 0
  bool reverse = false;
};

struct Navigator {
  enum class Kind : uint8_t {
    kKey,
    kMust,
    kNth,
    kFirst,
    kLast,
    kAll,
    kMapKeys,
    kMapVals,
    kRange,
    kSize,
    kFilter,
    kNullTo
  };
  Kind kind = Kind::kAll;
  std::vector<Value> keys;  // kKey, kMust: nested keys, outermost first (at least one)
  int64_t index = 0;        // kNth: >= 0
  RangeSpec range;          // kRange
  PredicateOp op = PredicateOp::kExists;  // kFilter
  Value arg;  // kFilter: the operand (unused by kExists); kNullTo: the default
  // kFilter: when set, the predicate holds if it holds for any value this path selects
  // from the current value (never for none); otherwise it tests the current value.
  std::shared_ptr<const Path> subpath;
};

struct Terminal {
  enum class Kind : uint8_t { kSet, kAdd, kAppend, kAddToSet, kSetIfAbsent, kRemove };
  Kind kind = Kind::kSet;
  Value arg;                 // kSet, kSetIfAbsent: the value; kAdd: the number
  std::vector<Value> items;  // kAppend, kAddToSet (at least one)
};

class Path {
 public:
  Path() = default;

  // Navigators. Key/Must with several keys navigate into each in turn.
  template <typename... K>
  Path& Key(K&&... keys) {
    return AddKeys(Navigator::Kind::kKey, Values(std::forward<K>(keys)...));
  }
  template <typename... K>
  Path& Must(K&&... keys) {
    return AddKeys(Navigator::Kind::kMust, Values(std::forward<K>(keys)...));
  }
  Path& Nth(int64_t index);
  Path& First();
  Path& Last();
  Path& All();
  Path& MapKeys();
  Path& MapVals();
  Path& Range(RangeSpec range);
  Path& Size();
  Path& Filter(PredicateOp op, Value arg = Value());
  // Filter on what `subpath` selects from the current value ("selected?" in Specter).
  Path& FilterOn(Path subpath, PredicateOp op, Value arg = Value());
  Path& NullTo(Value default_value);

  // Terminals (transforms). At most one, and it ends the path.
  Path& Set(Value v);
  Path& Inc() { return Add(Value(1)); }
  Path& Add(Value n);
  template <typename... V>
  Path& Append(V&&... items) {
    return AddItems(Terminal::Kind::kAppend, Values(std::forward<V>(items)...));
  }
  template <typename... V>
  Path& AddToSet(V&&... items) {
    return AddItems(Terminal::Kind::kAddToSet, Values(std::forward<V>(items)...));
  }
  Path& SetIfAbsent(Value v);
  Path& Remove();

  // Appends the navigators of `rest`, and its terminal if it has one, e.g.
  // Path().Key(user).Then(sub_path).
  Path& Then(const Path& rest);

  const std::vector<Navigator>& navigators() const { return navigators_; }
  const std::optional<Terminal>& terminal() const { return terminal_; }

  // Checks the invariants the builders cannot (a builder misuse such as a navigator after
  // a terminal or a negative nth is reported here and by every engine entry point).
  Status Validate() const;

  // Wire form: a list with one list per step, e.g. [["key","alice"],["nth",0],["add",1]]
  // (docs/paths.md, "Wire form"). FromValue reports what is malformed and at which step.
  Value ToValue() const;
  static Result<Path> FromValue(const Value& v);
  // Readable form, e.g. key("alice").all.filter(gt 10).inc
  std::string ToString() const;

  friend bool operator==(const Path& a, const Path& b) { return a.ToValue() == b.ToValue(); }

 private:
  // Moves the arguments into a vector (an initializer_list would copy them).
  template <typename... V>
  static std::vector<Value> Values(V&&... values) {
    std::vector<Value> out;
    out.reserve(sizeof...(V));
    (out.emplace_back(std::forward<V>(values)), ...);
    return out;
  }
  Path& AddKeys(Navigator::Kind kind, std::vector<Value> keys);
  Path& AddItems(Terminal::Kind kind, std::vector<Value> items);
  Path& AddNavigator(Navigator nav);
  Path& SetTerminal(Terminal t);

  std::vector<Navigator> navigators_;
  std::optional<Terminal> terminal_;
  // The first builder misuse, reported by Validate().
  std::string misuse_;
};

// One navigator in the readable form of Path::ToString, e.g. nth(3).
std::string NavigatorToString(const Navigator& nav);

// "eq", "ne", "lt", "le", "gt", "ge", "exists".
std::string_view PredicateName(PredicateOp op);

}  // namespace strata
