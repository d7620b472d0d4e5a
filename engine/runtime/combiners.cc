// The built-in combiners (combiners.h).
#include "runtime/combiners.h"

#include <algorithm>

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
  std::vector<Ranked> all;
  all.reserve(earlier.as_list().size() + later.as_list().size());
  for (const Value* list : {&earlier, &later}) {
    for (const Value& item : list->as_list()) {
      Result<Ranked> r = Rank(c, item);
      if (!r.ok()) return r.status();
      all.push_back(std::move(r).value());
    }
  }
  // One item per id, a later item replacing the earlier: grouped by id in arrival order,
  // each group's last item is kept. Indexes are sorted, not the items (cheaper to move).
  std::vector<uint32_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<uint32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return all[a].id < all[b].id; });
  std::vector<uint32_t> kept;
  kept.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + 1 == order.size() || all[order[i + 1]].id != all[order[i]].id) kept.push_back(order[i]);
  }
  const auto before = [&](uint32_t a, uint32_t b) {
    if (all[a].sort != all[b].sort) return all[a].sort > all[b].sort;
    return all[a].id < all[b].id;  // ids are unique now
  };
  const size_t keep = std::min(kept.size(), static_cast<size_t>(c.n));
  std::partial_sort(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(keep), kept.end(),
                    before);
  Value::List out;
  out.reserve(keep);
  for (size_t i = 0; i < keep; ++i) out.push_back(std::move(all[kept[i]].item));
  return Value(std::move(out));
}

}  // namespace

Value CombinerEmpty(const Combiner& c) {
  switch (c.kind) {
    case Combiner::Kind::kCount:
    case Combiner::Kind::kSum:
      return Value(int64_t{0});
    case Combiner::Kind::kSetUnion:
      return Value::EmptySet();
    case Combiner::Kind::kTopN:
      return Value(Value::List{});
    default:
      return Value();
  }
}

Result<Value> CombinerInput(const Combiner& c, Value input) {
  if (!c.value_of) return input;
  return c.value_of(input);
}

Result<Value> CombinerPartial(const Combiner& c, const Value& input) {
  if (c.kind == Combiner::Kind::kCount) return Value(int64_t{1});
  Result<Value> r = CombinerInput(c, input);
  if (!r.ok()) return r.status();
  Value v = std::move(r).value();
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
