// social: follows and timelines (fan-out on write). Shows two depots feeding two
// topologies, a paged read of a large subindexed set driving a fan-out, a module that
// groups its output by destination partition itself (HashKey(key) % P, the rule that
// Select uses to find a key) and routes each group with Direct, subindexed sorted maps
// read newest first with a forward range, and a capped collection trimmed at its last
// (oldest) entry.
//
//   *follows     hash("to"): {"from": u, "to": v} (u follows v), optional "op": "unfollow"
//   *posts       hash("author"): {"author": a, "id": int >= 0, "text": s}; ids unique and
//                increasing per author (e.g. a client timestamp)
//   $$followers  map<string, subindexed set<string>>: v -> the users following v
//   $$posts      map<string, subindexed map<int64, record{text}>>: author -> id -> post
//   $$timelines  map<string, subindexed map<list, record{author, id}>>: user ->
//                [-id, author] -> {"author", "id"}, at most kTimelineCap entries
//
// and a query (docs/modules.md, "Queries"), a join across partitions:
//
//   timeline(user, n)  the newest n posts (1 <= n <= kTimelineCap) of `user`'s timeline
//                      with their texts: [{"author", "id", "text"}, ...], newest first
//                      (id descending, ties by author ascending).
//
// It starts on the user's partition (HashPartition of the argument: no hop through
// another partition), reads the timeline's first n entries, sends each to its author's
// partition for the text in $$posts, and merges them at the origin with agg::TopN, which
// restores the timeline's order. Every partition is read in one snapshot, so a timeline
// entry always finds its post (stored before the fan-out that delivered the entry).
//
// Timeline keys are [-id, author] so the natural (ascending) order of the map is newest
// first: a forward Range with a limit is the first page. *follows is hashed by the
// followee, so the followers of an author live on the author's partition, where the
// author's posts are processed.
//
// Fan-out: the author's partition reads the followers page by page and emits one
// delivery per destination partition (at most kMaxDeliveryFollowers followers each), so
// a post to 5,000 followers is a handful of events and transactions, not 5,000. Each
// delivery updates all of its followers' timelines in one step (one transaction).
//
// Every write is idempotent (set, add-to-set, remove, and a trim that keeps the newest
// kTimelineCap entries of everything ever added), so a replay after a crash changes
// nothing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/key_codec.h"
#include "strata/module.h"

namespace {

using strata::Path;
using strata::PStateRef;
using strata::Result;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

constexpr int64_t kTimelineCap = 800;
// Followers read per page on the author's partition.
constexpr int64_t kFollowerPage = 1024;
// The most followers one delivery carries: bounds the values and the transaction of one
// step on a destination partition. Below it, a post makes one delivery per partition.
constexpr size_t kMaxDeliveryFollowers = 4096;

// The non-empty string at `field` of `record`, or kInvalidArgument naming the depot.
Result<std::string> RequireString(const Value& record, const char* depot, const char* field) {
  const Value* v = record.is_map() ? record.Find(Value(field)) : nullptr;
  if (v == nullptr || !v->is_string() || v->as_string().empty()) {
    return Status::InvalidArgument(std::string(depot) + ": field \"" + field +
                                   "\" must be a non-empty string in " + record.ToString());
  }
  return v->as_string();
}

Status Follow(const PStateRef& followers, TopologyContext& ctx, const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string from, RequireString(record, "*follows", "from"));
  STRATA_ASSIGN_OR_RETURN(std::string to, RequireString(record, "*follows", "to"));
  const Value* op = record.Find(Value("op"));
  if (op == nullptr || *op == Value("follow")) {
    return ctx.Transform(followers, Path().Key(to).AddToSet(from)).status();
  }
  if (*op == Value("unfollow")) {
    return ctx.Transform(followers, Path().Key(to, from).Remove()).status();
  }
  return Status::InvalidArgument("*follows: \"op\" must be \"follow\" or \"unfollow\", got " +
                                 op->ToString());
}

// What crosses the partitioner: [partition, id, author, [followers...]], every follower
// on `partition` (HashKey(follower) % P). Built and read only by this module.
enum DeliveryField : size_t { kPartition, kId, kAuthor, kFollowers };

Value MakeDelivery(int partition, const Value& id, const std::string& author,
                   std::vector<Value> followers) {
  return Value(
      Value::List{Value(int64_t{partition}), id, Value(author), Value(std::move(followers))});
}

// On the author's partition: stores the post, then reads the author's followers page by
// page and emits their deliveries grouped by the followers' partitions.
Status StoreAndFanOut(const PStateRef& posts, const PStateRef& followers, TopologyContext& ctx,
                      const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string author, RequireString(record, "*posts", "author"));
  STRATA_ASSIGN_OR_RETURN(std::string text, RequireString(record, "*posts", "text"));
  const Value* id = record.Find(Value("id"));
  if (id == nullptr || !id->is_int() || id->as_int() < 0) {
    return Status::InvalidArgument("*posts: field \"id\" must be an int >= 0 in " +
                                   record.ToString());
  }
  STRATA_RETURN_IF_ERROR(
      ctx.Transform(posts, Path().Key(author, *id).Set(Value::MapOf({{"text", text}}))).status());

  const uint64_t partitions = static_cast<uint64_t>(ctx.num_partitions());
  std::vector<std::vector<Value>> groups(partitions);
  strata::RangeSpec page{.limit = kFollowerPage};
  while (true) {
    STRATA_ASSIGN_OR_RETURN(std::vector<Value> fans,
                            ctx.Select(followers, Path().Key(author).Range(page).All()));
    if (!fans.empty()) page.from = fans.back();
    page.from_inclusive = false;
    const bool last_page = static_cast<int64_t>(fans.size()) < kFollowerPage;
    for (Value& fan : fans) {
      const uint64_t p = strata::HashKey(fan) % partitions;
      std::vector<Value>& group = groups[p];
      group.push_back(std::move(fan));
      if (group.size() == kMaxDeliveryFollowers) {
        ctx.Emit(MakeDelivery(static_cast<int>(p), *id, author, std::move(group)));
        group = {};
      }
    }
    if (last_page) break;
  }
  for (uint64_t p = 0; p < partitions; ++p) {
    if (groups[p].empty()) continue;
    ctx.Emit(MakeDelivery(static_cast<int>(p), *id, author, std::move(groups[p])));
  }
  return Status::Ok();
}

// On the followers' partition: adds the post to every follower's timeline, then reads the
// timeline's size (one record) and drops the oldest entries beyond the cap, if any. The
// size is read after the set, which may or may not have added an entry (a replay of a post
// the timeline holds adds none).
Status Deliver(const PStateRef& timelines, TopologyContext& ctx, const Value& delivery) {
  const Value::List& fields = delivery.as_list();
  const Value& id = fields[kId];
  const Value& author = fields[kAuthor];
  const Value key = Value::ListOf({Value(-id.as_int()), author});
  const Value entry = Value::MapOf({{"author", author}, {"id", id}});
  for (const Value& user : fields[kFollowers].as_list()) {
    STRATA_RETURN_IF_ERROR(ctx.Transform(timelines, Path().Key(user, key).Set(entry)).status());
    STRATA_ASSIGN_OR_RETURN(Value size, ctx.SelectOne(timelines, Path().Key(user).Size()));
    // The largest key is the oldest post. A timeline holds at most the cap before a
    // delivery, so one entry is over it (more only after the cap was lowered); `last`
    // finds it with one scan, where a range with a limit takes two (one resolves the limit).
    for (int64_t excess = size.as_int() - kTimelineCap; excess > 0; --excess) {
      STRATA_RETURN_IF_ERROR(ctx.Transform(timelines, Path().Key(user).Last().Remove()).status());
    }
  }
  return Status::Ok();
}

// On the user's partition: the first n entries of the timeline, each emitted as
// {"author", "id"} for the join.
Status ReadTimeline(const PStateRef& timelines, TopologyContext& ctx, const Value& args) {
  const Value::List& list = args.as_list();  // [user, n], typed by the parameters' schemas
  const int64_t n = list[1].as_int();
  if (n < 1 || n > kTimelineCap) {
    return Status::InvalidArgument("timeline: n must be 1 to " + std::to_string(kTimelineCap) +
                                   " (a timeline's cap), not " + std::to_string(n));
  }
  STRATA_ASSIGN_OR_RETURN(std::vector<Value> entries,
                          ctx.Select(timelines, Path().Key(list[0]).Range({.limit = n}).MapVals()));
  for (Value& entry : entries) ctx.Emit(std::move(entry));
  return Status::Ok();
}

// On the author's partition: the entry with its post's text.
Status JoinText(const PStateRef& posts, TopologyContext& ctx, const Value& entry) {
  const Value& author = *entry.Find(Value("author"));
  const Value& id = *entry.Find(Value("id"));
  STRATA_ASSIGN_OR_RETURN(Value text, ctx.SelectOne(posts, Path().Key(author, id, "text")));
  ctx.Emit(Value::MapOf({{"author", author}, {"id", id}, {"text", std::move(text)}}));
  return Status::Ok();
}

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef follows_depot = m.Depot(
      "*follows", strata::DepotPartitioning::Hash(Path().Key("to")),
      Schema::Record(
          {{"from", Schema::String()}, {"to", Schema::String()}, {"op", Schema::String()}}));
  strata::DepotRef posts_depot = m.Depot(
      "*posts", strata::DepotPartitioning::Hash(Path().Key("author")),
      Schema::Record(
          {{"author", Schema::String()}, {"id", Schema::Int64()}, {"text", Schema::String()}}));

  PStateRef followers = m.PState(
      "$$followers", Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()));
  PStateRef posts = m.PState(
      "$$posts",
      Schema::Map(
          Schema::String(),
          Schema::Map(Schema::Int64(), Schema::Record({{"text", Schema::String()}})).Subindexed()));
  PStateRef timelines = m.PState(
      "$$timelines",
      Schema::Map(Schema::String(), Schema::Map(Schema::List(Schema::Any()),
                                                Schema::Record({{"author", Schema::String()},
                                                                {"id", Schema::Int64()}}))
                                        .Subindexed()));

  m.Stream("follow").Source(follows_depot).Each([followers](TopologyContext& ctx, const Value& r) {
    return Follow(followers, ctx, r);
  });

  m.Stream("fanout")
      .Source(posts_depot)
      .Each([posts, followers](TopologyContext& ctx, const Value& r) {
        return StoreAndFanOut(posts, followers, ctx, r);
      })
      .Direct([](const Value& delivery) { return delivery.as_list()[kPartition].as_int(); })
      .Each([timelines](TopologyContext& ctx, const Value& delivery) {
        return Deliver(timelines, ctx, delivery);
      });

  m.Query("timeline")
      .Param("user", Schema::String())
      .Param("n", Schema::Int64())
      .HashPartition([](const Value& args) { return args.as_list()[0]; })
      .Each([timelines](TopologyContext& ctx, const Value& args) {
        return ReadTimeline(timelines, ctx, args);
      })
      .HashPartition([](const Value& entry) { return *entry.Find(Value("author")); })
      .Each(
          [posts](TopologyContext& ctx, const Value& entry) { return JoinText(posts, ctx, entry); })
      .Origin()
      // The timeline's own order: id descending, then author ascending. At most n <=
      // kTimelineCap entries arrive, so the cap keeps them all.
      .Combine(strata::agg::TopN(
          kTimelineCap, [](const Value& post) { return *post.Find(Value("id")); },
          [](const Value& post) {
            return Value::ListOf({*post.Find(Value("author")), *post.Find(Value("id"))});
          }));
}

}  // namespace

STRATA_MODULE(social, Define)
