// The built-in combiners (combiners.h).
#include "runtime/combiners.h"

#include <algorithm>
#include <map>

namespace strata::runtime {
namespace {

const char* KindName(Combiner::Kind kind) {
  switch (kind) {
    case Combiner::Kind::kCount:
      return "Count";
    case Combiner::Kind::kSum:
      return "Sum";
    case Combiner::Kind::kMin:
      return "Min";
    case Combiner::Kind::kMax:
      return "Max";
    case Combiner::Kind::kFirst:
      return "First";
    case Combiner::Kind::kLast:
      return "Last";
    case Combiner::Kind::kSetUnion:
      return "SetUnion";
    case Combiner::Kind::kTopN:
      return "TopN";
  }
  return "?";
}

Status Misfit(const Combiner& c, const std::string& what) {
  return Status::InvalidArgument(std::string("combiner ") + KindName(c.kind) + ": " + what);
}

Result<Value> Add(const Combiner& c, const Value& a, const Value& b) {
  if (a.is_int() && b.is_int()) {
    int64_t sum = 0;
    if (__builtin_add_overflow(a.as_int(), b.as_int(), &sum)) {
      return Misfit(c, a.ToString() + " + " + b.ToString() + " overflows int64");
    }
    return Value(sum);
  }
  if ((a.is_int() || a.is_double()) && (b.is_int() || b.is_double())) {
    const double x = a.is_int() ? static_cast<double>(a.as_int()) : a.as_double();
    const double y = b.is_int() ? static_cast<double>(b.as_int()) : b.as_double();
    return Value(x + y);
  }
  return Misfit(
      c, "cannot add " + a.ToString() + " and " + b.ToString() + " (it sums int64s or doubles)");
}

// The sort key and id of a top-N item.
struct Ranked {
  Value sort;
  Value id;
  Value item;
};

Result<Ranked> Rank(const Combiner& c, const Value& item) {
  Result<Value> sort = c.sort_key_of(item);
  if (!sort.ok()) return sort.status();
  Result<Value> id = c.id_of(item);
  if (!id.ok()) return id.status();
  return Ranked{std::move(sort).value(), std::move(id).value(), item};
}

Result<Value> MergeTopN(const Combiner& c, const Value& earlier, const Value& later) {
  if (!earlier.is_list() || !later.is_list()) {
    return Misfit(
        c, "a top-N is a list of items, not " + (earlier.is_list() ? later : earlier).ToString());
  }
  std::map<Value, Ranked> by_id;  // a later item with the same id replaces the earlier
  for (const Value* list : {&earlier, &later}) {
    for (const Value& item : list->as_list()) {
      Result<Ranked> r = Rank(c, item);
      if (!r.ok()) return r.status();
      Value id = r->id;
      by_id.insert_or_assign(std::move(id), std::move(r).value());
    }
  }
  std::vector<Ranked> ranked;
  ranked.reserve(by_id.size());
  for (auto& [id, r] : by_id) ranked.push_back(std::move(r));
  std::stable_sort(ranked.begin(), ranked.end(), [](const Ranked& a, const Ranked& b) {
    if (a.sort != b.sort) return a.sort > b.sort;
    return a.id < b.id;
  });
  if (static_cast<int64_t>(ranked.size()) > c.n) ranked.resize(static_cast<size_t>(c.n));
  Value::List out;
  out.reserve(ranked.size());
  for (Ranked& r : ranked) out.push_back(std::move(r.item));
  return Value(std::move(out));
}

}  // namespace

Result<Value> CombinerPartial(const Combiner& c, const Value& input) {
  if (c.kind == Combiner::Kind::kCount) return Value(int64_t{1});
  Value v = input;
  if (c.value_of) {
    Result<Value> r = c.value_of(input);
    if (!r.ok()) return r.status();
    v = std::move(r).value();
  }
  switch (c.kind) {
    case Combiner::Kind::kSum:
      if (!v.is_int() && !v.is_double()) {
        return Misfit(c, "cannot sum " + v.ToString() + " (it sums int64s or doubles)");
      }
      return v;
    case Combiner::Kind::kSetUnion:
      return Value::SetOf({std::move(v)});
    case Combiner::Kind::kTopN:
      return Value(Value::List{std::move(v)});
    default:
      return v;
  }
}

Result<Value> CombinerMerge(const Combiner& c, const Value& earlier, const Value& later) {
  if (later.is_nil()) return earlier;
  if (earlier.is_nil()) return later;
  switch (c.kind) {
    case Combiner::Kind::kCount:
    case Combiner::Kind::kSum:
      return Add(c, earlier, later);
    case Combiner::Kind::kMin:
      return later < earlier ? later : earlier;
    case Combiner::Kind::kMax:
      return earlier < later ? later : earlier;
    case Combiner::Kind::kFirst:
      return earlier;
    case Combiner::Kind::kLast:
      return later;
    case Combiner::Kind::kSetUnion: {
      if (!earlier.is_set() || !later.is_set()) {
        return Misfit(c, "cannot add to " + (earlier.is_set() ? later : earlier).ToString() +
                             ", which is not a set");
      }
      Value::Set all = earlier.as_set();
      all.insert(all.end(), later.as_set().begin(), later.as_set().end());
      return Value::SetOf(std::move(all));
    }
    case Combiner::Kind::kTopN:
      return MergeTopN(c, earlier, later);
  }
  return Misfit(c, "unknown kind");
}

}  // namespace strata::runtime
