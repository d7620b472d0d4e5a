// social: follows and timelines (fan-out on write). Shows two depots feeding two
// topologies, a read of one PState driving a fan-out (one value emitted per follower),
// a hash partitioner by a field of the emitted value, subindexed sorted maps read newest
// first with a forward range, and a capped collection trimmed with a reverse range.
//
//   *follows     hash("to"): {"from": u, "to": v} (u follows v), optional "op": "unfollow"
//   *posts       hash("author"): {"author": a, "id": int >= 0, "text": s}; ids unique and
//                increasing per author (e.g. a client timestamp)
//   $$followers  map<string, subindexed set<string>>: v -> the users following v
//   $$posts      map<string, subindexed map<int64, record{text}>>: author -> id -> post
//   $$timelines  map<string, subindexed map<list, record{author, id}>>: user ->
//                [-id, author] -> {"author", "id"}, at most kTimelineCap entries
//
// Timeline keys are [-id, author] so the natural (ascending) order of the map is newest
// first: a forward Range with a limit is the first page. *follows is hashed by the
// followee, so the followers of an author live on the author's partition, where the
// author's posts are processed. Every write is idempotent (set, add-to-set, remove, and
// a trim that keeps the newest kTimelineCap entries of everything ever added), so a
// replay after a crash changes nothing.
#include <cstdint>
#include <string>
#include <vector>

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

// On the author's partition: stores the post and emits {"user", "author", "id"} for every
// follower of the author.
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
  STRATA_ASSIGN_OR_RETURN(std::vector<Value> fans, ctx.Select(followers, Path().Key(author).All()));
  for (Value& fan : fans) {
    ctx.Emit(Value::MapOf({{"user", std::move(fan)}, {"author", author}, {"id", *id}}));
  }
  return Status::Ok();
}

// On the follower's partition: adds the post to the timeline and drops the oldest entries
// beyond the cap.
Status Deliver(const PStateRef& timelines, TopologyContext& ctx, const Value& delivery) {
  const Value& user = *delivery.Find(Value("user"));
  const Value& author = *delivery.Find(Value("author"));
  int64_t id = delivery.Find(Value("id"))->as_int();
  Value key = Value::ListOf({Value(-id), author});
  STRATA_RETURN_IF_ERROR(
      ctx.Transform(timelines, Path().Key(user, key).Set(Value::MapOf({{"author", author},
                                                                       {"id", id}})))
          .status());
  STRATA_ASSIGN_OR_RETURN(Value size, ctx.SelectOne(timelines, Path().Key(user).Size()));
  if (size.as_int() <= kTimelineCap) return Status::Ok();
  // The largest keys are the oldest posts.
  return ctx
      .Transform(timelines,
                 Path().Key(user).Range({.limit = size.as_int() - kTimelineCap, .reverse = true}).Remove())
      .status();
}

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef follows_depot =
      m.Depot("*follows", strata::DepotPartitioning::Hash(Path().Key("to")));
  strata::DepotRef posts_depot =
      m.Depot("*posts", strata::DepotPartitioning::Hash(Path().Key("author")));

  PStateRef followers =
      m.PState("$$followers", Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()));
  PStateRef posts = m.PState(
      "$$posts",
      Schema::Map(Schema::String(),
                  Schema::Map(Schema::Int64(), Schema::Record({{"text", Schema::String()}}))
                      .Subindexed()));
  PStateRef timelines = m.PState(
      "$$timelines",
      Schema::Map(Schema::String(),
                  Schema::Map(Schema::List(Schema::Any()),
                              Schema::Record({{"author", Schema::String()}, {"id", Schema::Int64()}}))
                      .Subindexed()));

  m.Stream("follow").Source(follows_depot).Each([followers](TopologyContext& ctx, const Value& r) {
    return Follow(followers, ctx, r);
  });

  m.Stream("fanout")
      .Source(posts_depot)
      .Each([posts, followers](TopologyContext& ctx, const Value& r) {
        return StoreAndFanOut(posts, followers, ctx, r);
      })
      .HashPartition([](const Value& delivery) { return *delivery.Find(Value("user")); })
      .Each([timelines](TopologyContext& ctx, const Value& delivery) {
        return Deliver(timelines, ctx, delivery);
      });
}

}  // namespace

STRATA_MODULE(social, Define)
