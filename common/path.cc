// Path building, validation, wire form and printing. Navigation itself is navigate.cc.
#include "strata/path.h"

#include <string_view>

#include "strata/json.h"

namespace strata {

namespace {

using NavKind = Navigator::Kind;
using TermKind = Terminal::Kind;

struct NavName {
  NavKind kind;
  std::string_view name;
};
constexpr NavName kNavNames[] = {
    {NavKind::kKey, "key"},          {NavKind::kMust, "must"},        {NavKind::kNth, "nth"},
    {NavKind::kFirst, "first"},      {NavKind::kLast, "last"},        {NavKind::kAll, "all"},
    {NavKind::kMapKeys, "map_keys"}, {NavKind::kMapVals, "map_vals"}, {NavKind::kRange, "range"},
    {NavKind::kSize, "size"},        {NavKind::kFilter, "filter"},    {NavKind::kNullTo, "null_to"},
};

struct TermName {
  TermKind kind;
  std::string_view name;
};
constexpr TermName kTermNames[] = {
    {TermKind::kSet, "set"},
    {TermKind::kAdd, "add"},
    {TermKind::kAppend, "append"},
    {TermKind::kAddToSet, "add_to_set"},
    {TermKind::kSetIfAbsent, "set_if_absent"},
    {TermKind::kRemove, "remove"},
};

constexpr PredicateOp kPredicates[] = {PredicateOp::kEq,    PredicateOp::kNe, PredicateOp::kLt,
                                       PredicateOp::kLe,    PredicateOp::kGt, PredicateOp::kGe,
                                       PredicateOp::kExists};

std::string_view NavigatorName(NavKind kind) {
  for (const auto& n : kNavNames) {
    if (n.kind == kind) return n.name;
  }
  return "?";
}

std::string_view TerminalName(TermKind kind) {
  for (const auto& t : kTermNames) {
    if (t.kind == kind) return t.name;
  }
  return "?";
}

bool IsNumber(const Value& v) { return v.is_int() || v.is_double(); }

// The invariants shared by Validate() and FromValue(); callers prefix the step.
Status CheckNavigator(const Navigator& nav) {
  switch (nav.kind) {
    case NavKind::kKey:
    case NavKind::kMust:
      if (nav.keys.empty()) {
        return Status::InvalidArgument(std::string(NavigatorName(nav.kind)) +
                                       " needs at least one key");
      }
      break;
    case NavKind::kNth:
      if (nav.index < 0) {
        return Status::InvalidArgument("nth needs an index >= 0, got " + std::to_string(nav.index));
      }
      break;
    case NavKind::kRange:
      if (nav.range.limit && *nav.range.limit < 0) {
        return Status::InvalidArgument("range limit must be >= 0, got " +
                                       std::to_string(*nav.range.limit));
      }
      break;
    case NavKind::kFilter:
      if (nav.subpath) {
        if (nav.subpath->terminal()) {
          return Status::InvalidArgument("a filter's path cannot end in a terminal");
        }
        Status st = nav.subpath->Validate();
        if (!st.ok()) return Status::InvalidArgument("filter path: " + st.message());
      }
      break;
    default:
      break;
  }
  return Status::Ok();
}

Status CheckTerminal(const Terminal& t) {
  switch (t.kind) {
    case TermKind::kAdd:
      if (!IsNumber(t.arg)) {
        return Status::InvalidArgument("add needs a number, got " + t.arg.ToString());
      }
      break;
    case TermKind::kAppend:
    case TermKind::kAddToSet:
      if (t.items.empty()) {
        return Status::InvalidArgument(std::string(TerminalName(t.kind)) +
                                       " needs at least one value");
      }
      break;
    default:
      break;
  }
  return Status::Ok();
}

std::string StepPrefix(size_t i) { return "path step " + std::to_string(i) + ": "; }

Status Prefixed(size_t step, Status st) {
  if (st.ok()) return st;
  return Status(st.code(), StepPrefix(step) + st.message());
}

Value RangeToValue(const RangeSpec& r) {
  Value::Map m;
  if (r.from) m.emplace_back("from", *r.from);
  if (r.from && !r.from_inclusive) m.emplace_back("from_inclusive", false);
  if (r.to) m.emplace_back("to", *r.to);
  if (r.to && r.to_inclusive) m.emplace_back("to_inclusive", true);
  if (r.limit) m.emplace_back("limit", *r.limit);
  if (r.reverse) m.emplace_back("reverse", true);
  return Value::MapOf(std::move(m));
}

Result<RangeSpec> RangeFromValue(const Value& v, const std::string& where) {
  if (!v.is_map()) {
    return Status::InvalidArgument(where + "range needs a map of options, got " + v.ToString());
  }
  RangeSpec r;
  for (const auto& option : v.as_map()) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    const Value& key = option.first;
    const Value& val = option.second;
    const std::string name = key.is_string() ? key.as_string() : key.ToString();
    auto need_bool = [&](bool* out) -> Status {
      if (!val.is_bool()) {
        return Status::InvalidArgument(where + "range option " + name + " must be a bool, got " +
                                       val.ToString());
      }
      *out = val.as_bool();
      return Status::Ok();
    };
    if (name == "from") {
      r.from = val;
    } else if (name == "to") {
      r.to = val;
    } else if (name == "from_inclusive") {
      STRATA_RETURN_IF_ERROR(need_bool(&r.from_inclusive));
    } else if (name == "to_inclusive") {
      STRATA_RETURN_IF_ERROR(need_bool(&r.to_inclusive));
    } else if (name == "reverse") {
      STRATA_RETURN_IF_ERROR(need_bool(&r.reverse));
    } else if (name == "limit") {
      if (!val.is_int()) {
        return Status::InvalidArgument(where + "range limit must be an int, got " + val.ToString());
      }
      r.limit = val.as_int();
    } else {
      return Status::InvalidArgument(where + "unknown range option " + key.ToString() +
                                     " (expected from, from_inclusive, to, to_inclusive, limit, "
                                     "reverse)");
    }
  }
  return r;
}

Result<PredicateOp> PredicateFromValue(const Value& v, const std::string& where) {
  if (v.is_string()) {
    for (PredicateOp op : kPredicates) {
      if (PredicateName(op) == v.as_string()) return op;
    }
  }
  return Status::InvalidArgument(where + "unknown filter predicate " + v.ToString() +
                                 " (expected eq, ne, lt, le, gt, ge or exists)");
}

// One parsed step: a navigator or the terminal.
struct ParsedStep {
  std::optional<Navigator> nav;
  std::optional<Terminal> terminal;
};

// Parses one step (`items[0]` is its name).
Result<ParsedStep> StepFromValue(const Value::List& items, const std::string& where, bool last) {
  const std::string& name = items[0].as_string();
  const size_t nargs = items.size() - 1;
  auto want_args = [&](size_t lo, size_t hi) -> Status {
    if (nargs >= lo && nargs <= hi) return Status::Ok();
    std::string expected =
        lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
    return Status::InvalidArgument(where + name + " takes " + expected + " argument(s), got " +
                                   std::to_string(nargs));
  };
  for (const auto& n : kNavNames) {
    if (n.name != name) continue;
    Navigator nav;
    nav.kind = n.kind;
    switch (n.kind) {
      case NavKind::kKey:
      case NavKind::kMust:
        nav.keys.assign(items.begin() + 1, items.end());
        break;
      case NavKind::kNth:
        STRATA_RETURN_IF_ERROR(want_args(1, 1));
        if (!items[1].is_int()) {
          return Status::InvalidArgument(where + "nth needs an int index, got " +
                                         items[1].ToString());
        }
        nav.index = items[1].as_int();
        break;
      case NavKind::kRange: {
        STRATA_RETURN_IF_ERROR(want_args(1, 1));
        STRATA_ASSIGN_OR_RETURN(nav.range, RangeFromValue(items[1], where));
        break;
      }
      case NavKind::kFilter: {
        STRATA_RETURN_IF_ERROR(want_args(1, 3));
        STRATA_ASSIGN_OR_RETURN(nav.op, PredicateFromValue(items[1], where));
        if (nav.op != PredicateOp::kExists && nargs < 2) {
          return Status::InvalidArgument(where + "filter " + items[1].as_string() +
                                         " needs an operand");
        }
        if (nargs >= 2) nav.arg = items[2];
        if (nargs == 3) {
          Result<Path> sub = Path::FromValue(items[3]);
          if (!sub.ok())
            return Status::InvalidArgument(where + "filter path: " + sub.status().message());
          nav.subpath = std::make_shared<const Path>(std::move(sub).value());
        }
        break;
      }
      case NavKind::kNullTo:
        STRATA_RETURN_IF_ERROR(want_args(1, 1));
        nav.arg = items[1];
        break;
      default:
        STRATA_RETURN_IF_ERROR(want_args(0, 0));
        break;
    }
    if (Status st = CheckNavigator(nav); !st.ok())
      return Status::InvalidArgument(where + st.message());
    return ParsedStep{std::move(nav), std::nullopt};
  }
  Terminal t;
  bool found = false;
  if (name == "inc") {
    STRATA_RETURN_IF_ERROR(want_args(0, 0));
    t.kind = TermKind::kAdd;
    t.arg = Value(1);
    found = true;
  }
  for (const auto& tn : kTermNames) {
    if (found || tn.name != name) continue;
    found = true;
    t.kind = tn.kind;
    switch (tn.kind) {
      case TermKind::kSet:
      case TermKind::kAdd:
      case TermKind::kSetIfAbsent:
        STRATA_RETURN_IF_ERROR(want_args(1, 1));
        t.arg = items[1];
        break;
      case TermKind::kAppend:
      case TermKind::kAddToSet:
        t.items.assign(items.begin() + 1, items.end());
        break;
      case TermKind::kRemove:
        STRATA_RETURN_IF_ERROR(want_args(0, 0));
        break;
    }
  }
  if (!found) {
    return Status::InvalidArgument(where + "unknown path step \"" + name + "\"");
  }
  if (!last) {
    return Status::InvalidArgument(where + "terminal " + name +
                                   " must be the last step of the path");
  }
  if (Status st = CheckTerminal(t); !st.ok()) return Status::InvalidArgument(where + st.message());
  return ParsedStep{std::nullopt, std::move(t)};
}

void AppendArgs(const std::vector<Value>& values, std::string* out) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) *out += ", ";
    *out += values[i].ToString();
  }
}

std::string RangeToString(const RangeSpec& r) {
  std::string s = r.from ? std::string(r.from_inclusive ? "[" : "(") + r.from->ToString() : "(-inf";
  s += ", ";
  s += r.to ? r.to->ToString() + (r.to_inclusive ? "]" : ")") : "+inf)";
  if (r.limit) s += ", limit " + std::to_string(*r.limit);
  if (r.reverse) s += ", reverse";
  return s;
}

}  // namespace

std::string_view PredicateName(PredicateOp op) {
  switch (op) {
    case PredicateOp::kEq:
      return "eq";
    case PredicateOp::kNe:
      return "ne";
    case PredicateOp::kLt:
      return "lt";
    case PredicateOp::kLe:
      return "le";
    case PredicateOp::kGt:
      return "gt";
    case PredicateOp::kGe:
      return "ge";
    case PredicateOp::kExists:
      return "exists";
  }
  return "?";
}

Path& Path::AddNavigator(Navigator nav) {
  if (terminal_ && misuse_.empty()) {
    misuse_ = "navigator " + std::string(NavigatorName(nav.kind)) + " added after terminal " +
              std::string(TerminalName(terminal_->kind)) + ": a terminal must end the path";
  }
  navigators_.push_back(std::move(nav));
  return *this;
}

Path& Path::Then(const Path& rest) {
  if (misuse_.empty() && !rest.misuse_.empty()) misuse_ = rest.misuse_;
  for (const Navigator& nav : rest.navigators_) AddNavigator(nav);
  if (rest.terminal_) SetTerminal(*rest.terminal_);
  return *this;
}

Path& Path::SetTerminal(Terminal t) {
  if (terminal_ && misuse_.empty()) {
    misuse_ = "a path has at most one terminal: " + std::string(TerminalName(t.kind)) +
              " added after " + std::string(TerminalName(terminal_->kind));
  }
  terminal_ = std::move(t);
  return *this;
}

Path& Path::AddKeys(Navigator::Kind kind, std::vector<Value> keys) {
  Navigator nav;
  nav.kind = kind;
  nav.keys = std::move(keys);
  return AddNavigator(std::move(nav));
}

Path& Path::AddItems(Terminal::Kind kind, std::vector<Value> items) {
  Terminal t;
  t.kind = kind;
  t.items = std::move(items);
  return SetTerminal(std::move(t));
}

Path& Path::Nth(int64_t index) {
  Navigator nav;
  nav.kind = NavKind::kNth;
  nav.index = index;
  return AddNavigator(std::move(nav));
}

namespace {
Navigator Simple(NavKind kind) {
  Navigator nav;
  nav.kind = kind;
  return nav;
}
}  // namespace

Path& Path::First() { return AddNavigator(Simple(NavKind::kFirst)); }
Path& Path::Last() { return AddNavigator(Simple(NavKind::kLast)); }
Path& Path::All() { return AddNavigator(Simple(NavKind::kAll)); }
Path& Path::MapKeys() { return AddNavigator(Simple(NavKind::kMapKeys)); }
Path& Path::MapVals() { return AddNavigator(Simple(NavKind::kMapVals)); }
Path& Path::Size() { return AddNavigator(Simple(NavKind::kSize)); }

Path& Path::Range(RangeSpec range) {
  Navigator nav = Simple(NavKind::kRange);
  nav.range = std::move(range);
  return AddNavigator(std::move(nav));
}

Path& Path::Filter(PredicateOp op, Value arg) {
  Navigator nav = Simple(NavKind::kFilter);
  nav.op = op;
  nav.arg = std::move(arg);
  return AddNavigator(std::move(nav));
}

Path& Path::FilterOn(Path subpath, PredicateOp op, Value arg) {
  Navigator nav = Simple(NavKind::kFilter);
  nav.op = op;
  nav.arg = std::move(arg);
  nav.subpath = std::make_shared<const Path>(std::move(subpath));
  return AddNavigator(std::move(nav));
}

Path& Path::NullTo(Value default_value) {
  Navigator nav = Simple(NavKind::kNullTo);
  nav.arg = std::move(default_value);
  return AddNavigator(std::move(nav));
}

namespace {
Terminal WithArg(TermKind kind, Value arg) {
  Terminal t;
  t.kind = kind;
  t.arg = std::move(arg);
  return t;
}
}  // namespace

Path& Path::Set(Value v) { return SetTerminal(WithArg(TermKind::kSet, std::move(v))); }
Path& Path::Add(Value n) { return SetTerminal(WithArg(TermKind::kAdd, std::move(n))); }
Path& Path::SetIfAbsent(Value v) {
  return SetTerminal(WithArg(TermKind::kSetIfAbsent, std::move(v)));
}
Path& Path::Remove() { return SetTerminal(WithArg(TermKind::kRemove, Value())); }

Status Path::Validate() const {
  if (!misuse_.empty()) return Status::InvalidArgument(misuse_);
  for (size_t i = 0; i < navigators_.size(); ++i) {
    STRATA_RETURN_IF_ERROR(Prefixed(i, CheckNavigator(navigators_[i])));
  }
  if (terminal_) STRATA_RETURN_IF_ERROR(Prefixed(navigators_.size(), CheckTerminal(*terminal_)));
  return Status::Ok();
}

Value Path::ToValue() const {
  Value::List steps;
  steps.reserve(navigators_.size() + 1);
  for (const Navigator& nav : navigators_) {
    Value::List step{Value(NavigatorName(nav.kind))};
    switch (nav.kind) {
      case NavKind::kKey:
      case NavKind::kMust:
        step.insert(step.end(), nav.keys.begin(), nav.keys.end());
        break;
      case NavKind::kNth:
        step.emplace_back(nav.index);
        break;
      case NavKind::kRange:
        step.push_back(RangeToValue(nav.range));
        break;
      case NavKind::kFilter:
        step.emplace_back(PredicateName(nav.op));
        if (nav.op != PredicateOp::kExists || nav.subpath) step.push_back(nav.arg);
        if (nav.subpath) step.push_back(nav.subpath->ToValue());
        break;
      case NavKind::kNullTo:
        step.push_back(nav.arg);
        break;
      default:
        break;
    }
    steps.emplace_back(std::move(step));
  }
  if (terminal_) {
    Value::List step{Value(TerminalName(terminal_->kind))};
    switch (terminal_->kind) {
      case TermKind::kSet:
      case TermKind::kAdd:
      case TermKind::kSetIfAbsent:
        step.push_back(terminal_->arg);
        break;
      case TermKind::kAppend:
      case TermKind::kAddToSet:
        step.insert(step.end(), terminal_->items.begin(), terminal_->items.end());
        break;
      case TermKind::kRemove:
        break;
    }
    steps.emplace_back(std::move(step));
  }
  return Value(std::move(steps));
}

Result<Path> Path::FromValue(const Value& v) {
  if (!v.is_list()) {
    return Status::InvalidArgument("a path must be a list of steps, got " +
                                   std::string(TypeName(v.type())) + " " + v.ToString());
  }
  const Value::List& steps = v.as_list();
  Path path;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string where = StepPrefix(i);
    const Value& step = steps[i];
    if (!step.is_list() || step.as_list().empty() || !step.as_list()[0].is_string()) {
      return Status::InvalidArgument(where + "a step must be a list starting with its name, got " +
                                     step.ToString());
    }
    STRATA_ASSIGN_OR_RETURN(ParsedStep parsed,
                            StepFromValue(step.as_list(), where, i + 1 == steps.size()));
    if (parsed.nav) {
      path.navigators_.push_back(std::move(*parsed.nav));
    } else {
      path.terminal_ = std::move(parsed.terminal);
    }
  }
  return path;
}

std::string NavigatorToString(const Navigator& nav) {
  std::string out(NavigatorName(nav.kind));
  switch (nav.kind) {
    case NavKind::kKey:
    case NavKind::kMust:
      out += '(';
      AppendArgs(nav.keys, &out);
      out += ')';
      break;
    case NavKind::kNth:
      out += "(" + std::to_string(nav.index) + ")";
      break;
    case NavKind::kRange:
      out += "(" + RangeToString(nav.range) + ")";
      break;
    case NavKind::kFilter:
      out += '(';
      if (nav.subpath) out += nav.subpath->ToString() + " ";
      out += PredicateName(nav.op);
      if (nav.op != PredicateOp::kExists) out += " " + nav.arg.ToString();
      out += ')';
      break;
    case NavKind::kNullTo:
      out += "(" + nav.arg.ToString() + ")";
      break;
    default:
      break;
  }
  return out;
}

std::string Path::ToString() const {
  std::string out;
  auto dot = [&] {
    if (!out.empty()) out += '.';
  };
  for (const Navigator& nav : navigators_) {
    dot();
    out += NavigatorToString(nav);
  }
  if (terminal_) {
    dot();
    const Terminal& t = *terminal_;
    if (t.kind == TermKind::kAdd && t.arg == Value(1)) {
      out += "inc";
    } else {
      out += TerminalName(t.kind);
      switch (t.kind) {
        case TermKind::kSet:
        case TermKind::kAdd:
        case TermKind::kSetIfAbsent:
          out += "(" + t.arg.ToString() + ")";
          break;
        case TermKind::kAppend:
        case TermKind::kAddToSet:
          out += '(';
          AppendArgs(t.items, &out);
          out += ')';
          break;
        case TermKind::kRemove:
          break;
      }
    }
  }
  return out.empty() ? "(root)" : out;
}

}  // namespace strata
