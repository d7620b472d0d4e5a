#include "strata/diff.h"

#include <dtl/dtl.hpp>

#include <array>
#include <string>
#include <utility>

namespace strata {

namespace {

constexpr std::array<std::string_view, 8> kOpNames = {"replace",    "key_set",     "key_removed",
                                                      "set_added",  "set_removed", "seq_insert",
                                                      "seq_remove", "resync"};

// Lists longer than this together (after their common prefix and suffix) are not given an
// edit script (its cost grows with their lengths times the edits): one kReplace instead.
constexpr size_t kMaxScriptedElements = 20000;

bool SameContainerKind(const Value& a, const Value& b) {
  return a.type() == b.type() && (a.is_map() || a.is_set() || a.is_list());
}

class Differ {
 public:
  explicit Differ(size_t max_ops) : max_ops_(max_ops) {}

  void Walk(const Value& a, const Value& b) {
    if (over_ || a == b) return;
    if (a.is_map() && b.is_map()) return Maps(a.as_map(), b.as_map());
    if (a.is_set() && b.is_set()) return Sets(a.as_set(), b.as_set());
    if (a.is_list() && b.is_list()) return Lists(a.as_list(), b.as_list());
    Emit(Diff::Op::kReplace, Value(), b, 0);
  }

  std::optional<std::vector<Diff>> Take() {
    if (over_) return std::nullopt;
    return std::move(out_);
  }

 private:
  void Emit(Diff::Op op, Value key, Value value, int64_t index) {
    if (out_.size() >= max_ops_) {
      over_ = true;
      return;
    }
    out_.push_back(Diff{op, at_, std::move(key), std::move(value), index});
  }

  // Recurses into a changed element reached by `step` when both sides are containers of
  // the same kind; false when the caller must emit a whole-value change instead.
  bool Into(const Value& step, const Value& a, const Value& b) {
    if (!SameContainerKind(a, b)) return false;
    at_.push_back(step);
    Walk(a, b);
    at_.pop_back();
    return true;
  }

  void Maps(const Value::Map& a, const Value::Map& b) {
    size_t i = 0, j = 0;
    while ((i < a.size() || j < b.size()) && !over_) {
      if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) {
        Emit(Diff::Op::kKeyRemoved, a[i].first, Value(), 0);
        ++i;
      } else if (i == a.size() || b[j].first < a[i].first) {
        Emit(Diff::Op::kKeySet, b[j].first, b[j].second, 0);
        ++j;
      } else {
        if (a[i].second != b[j].second && !Into(a[i].first, a[i].second, b[j].second)) {
          Emit(Diff::Op::kKeySet, b[j].first, b[j].second, 0);
        }
        ++i;
        ++j;
      }
    }
  }

  void Sets(const Value::Set& a, const Value::Set& b) {
    size_t i = 0, j = 0;
    while ((i < a.size() || j < b.size()) && !over_) {
      if (j == b.size() || (i < a.size() && a[i] < b[j])) {
        Emit(Diff::Op::kSetRemoved, Value(), a[i++], 0);
      } else if (i == a.size() || b[j] < a[i]) {
        Emit(Diff::Op::kSetAdded, Value(), b[j++], 0);
      } else {
        ++i;
        ++j;
      }
    }
  }

  void Lists(const Value::List& a, const Value::List& b) {
    size_t prefix = 0;
    while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
    size_t suffix = 0;
    while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
           a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
      ++suffix;
    }
    const Value::List before(a.begin() + prefix, a.end() - suffix);
    const Value::List after(b.begin() + prefix, b.end() - suffix);
    if (before.size() + after.size() > kMaxScriptedElements) {
      Emit(Diff::Op::kReplace, Value(), Value(b), 0);
      return;
    }
    // The shortest edit script (Wu, Manber and Myers' O(NP) algorithm, Debian's dtl), with
    // each run of deletes before its adds.
    dtl::Diff<Value, Value::List> script(before, after, /*deletesFirst=*/true);
    script.compose();
    const auto edits = script.getSes().getSequence();
    int64_t pos = static_cast<int64_t>(prefix);
    for (size_t e = 0; e < edits.size() && !over_; ++e) {
      const auto& [element, info] = edits[e];
      if (info.type == dtl::SES_COMMON) {
        ++pos;
      } else if (info.type == dtl::SES_DELETE) {
        // A delete right before an add: the element changed in place — recursed into when
        // both are containers of the same kind, else replaced.
        if (e + 1 < edits.size() && edits[e + 1].second.type == dtl::SES_ADD) {
          const Value& added = edits[e + 1].first;
          if (!Into(Value(pos), element, added)) {
            at_.push_back(Value(pos));
            Emit(Diff::Op::kReplace, Value(), added, 0);
            at_.pop_back();
          }
          ++e;
          ++pos;
          continue;
        }
        Emit(Diff::Op::kSeqRemove, Value(), Value(), pos);
      } else {
        Emit(Diff::Op::kSeqInsert, Value(), element, pos);
        ++pos;
      }
    }
  }

  const size_t max_ops_;
  std::vector<Value> at_;
  std::vector<Diff> out_;
  bool over_ = false;
};

std::string StepsToString(const std::vector<Value>& at) {
  return Value(Value::List(at)).ToString();
}

Status Misfit(const Diff& diff, const std::string& why) {
  return Status::InvalidArgument("diff " + DiffToString(diff) + " does not apply: " + why);
}

}  // namespace

std::string_view DiffOpName(Diff::Op op) { return kOpNames[static_cast<size_t>(op)]; }

std::optional<Diff::Op> DiffOpFromName(std::string_view name) {
  for (size_t i = 0; i < kOpNames.size(); ++i) {
    if (kOpNames[i] == name) return static_cast<Diff::Op>(i);
  }
  return std::nullopt;
}

std::optional<std::vector<Diff>> DiffValues(const Value& before, const Value& after,
                                            size_t max_ops) {
  Differ differ(max_ops);
  differ.Walk(before, after);
  return differ.Take();
}

Status ApplyDiff(Value* value, const Diff& diff) {
  if (diff.op == Diff::Op::kResync) {
    *value = diff.value;
    return Status::Ok();
  }
  Value* target = value;
  for (size_t i = 0; i < diff.at.size(); ++i) {
    const Value& step = diff.at[i];
    const std::string where = "step " + std::to_string(i) + " (" + step.ToString() + ")";
    if (target->is_map()) {
      target = target->Find(step);
      if (target == nullptr) return Misfit(diff, where + " is not a key of the map there");
    } else if (target->is_list()) {
      if (!step.is_int() || step.as_int() < 0 ||
          static_cast<size_t>(step.as_int()) >= target->as_list().size()) {
        return Misfit(diff, where + " is not an index of the list there");
      }
      target = &target->as_list()[step.as_int()];
    } else {
      return Misfit(diff, where + " goes into a " + std::string(TypeName(target->type())));
    }
  }
  auto expect = [&](bool ok, std::string_view kind) {
    return ok ? Status::Ok()
              : Misfit(diff, "the value there is a " + std::string(TypeName(target->type())) +
                                 ", not a " + std::string(kind));
  };
  switch (diff.op) {
    case Diff::Op::kReplace:
      *target = diff.value;
      return Status::Ok();
    case Diff::Op::kKeySet:
      STRATA_RETURN_IF_ERROR(expect(target->is_map(), "map"));
      target->Insert(diff.key, diff.value);
      return Status::Ok();
    case Diff::Op::kKeyRemoved:
      STRATA_RETURN_IF_ERROR(expect(target->is_map(), "map"));
      target->Erase(diff.key);
      return Status::Ok();
    case Diff::Op::kSetAdded:
      STRATA_RETURN_IF_ERROR(expect(target->is_set(), "set"));
      target->Add(diff.value);
      return Status::Ok();
    case Diff::Op::kSetRemoved:
      STRATA_RETURN_IF_ERROR(expect(target->is_set(), "set"));
      target->Remove(diff.value);
      return Status::Ok();
    case Diff::Op::kSeqInsert:
    case Diff::Op::kSeqRemove: {
      STRATA_RETURN_IF_ERROR(expect(target->is_list(), "list"));
      Value::List& list = target->as_list();
      const bool insert = diff.op == Diff::Op::kSeqInsert;
      const size_t bound = insert ? list.size() : list.size() - 1;
      if (diff.index < 0 || (!insert && list.empty()) || static_cast<size_t>(diff.index) > bound) {
        return Misfit(diff, "index " + std::to_string(diff.index) + " is out of range for " +
                                std::to_string(list.size()) + " elements");
      }
      if (insert) {
        list.insert(list.begin() + diff.index, diff.value);
      } else {
        list.erase(list.begin() + diff.index);
      }
      return Status::Ok();
    }
    case Diff::Op::kResync:
      break;
  }
  return Status::Ok();
}

std::string DiffToString(const Diff& diff) {
  std::string out(DiffOpName(diff.op));
  // Appended piece by piece: `" " + std::string` trips g++ 12's false -Wrestrict.
  auto add = [&out](const std::string& piece) {
    out += ' ';
    out += piece;
  };
  if (diff.op != Diff::Op::kResync) add(StepsToString(diff.at));
  switch (diff.op) {
    case Diff::Op::kKeySet:
      add(diff.key.ToString());
      add("=");
      add(diff.value.ToString());
      break;
    case Diff::Op::kKeyRemoved:
      add(diff.key.ToString());
      break;
    case Diff::Op::kSeqInsert:
      add(std::to_string(diff.index));
      add(diff.value.ToString());
      break;
    case Diff::Op::kSeqRemove:
      add(std::to_string(diff.index));
      break;
    default:
      add(diff.value.ToString());
  }
  return out;
}

}  // namespace strata
