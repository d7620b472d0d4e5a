// profiles: user registration with unique usernames and ids. Shows a check-then-claim
// decision made safely without locks (all records for one username are processed one at
// a time, in order, on the username's partition), ids unique across partitions without
// coordination, an ack return carrying the assigned id, recognising a replayed record by
// TopologyContext::source(), and a hop that stores a record where a select by its key
// finds it.
//
//   *registrations   hash("username"): {"username": s, "request_id"?: s, "display_name"?: s}
//   $$users_by_name  map<string, int64>: username -> user id
//   $$name_claims    map<string, record{offset, request_id}>: username -> the registration
//                    that claimed it (its *registrations offset and request_id)
//   $$next_id        map<int64, int64>: partition -> how many ids it has assigned
//   $$profiles       map<int64, record{username, display_name, request_id}>: id -> profile
//
// Ids: partition p assigns p + P * n for n = 0, 1, ...: unique across partitions. The
// profile is stored on partition HashKey(id) % P (a hop by id), so a select of
// $$profiles with path key(id) finds it with the default partitioning rule.
//
// Ack return: {"status": "registered", "id": id} when this record holds the name — a new
// claim, a replay of the claiming record (same offset) or a client retry with the claim's
// request_id; otherwise {"status": "taken", "id": id of the holder}. A record that is not a
// map of those string fields is refused at append by the record schema (SCHEMA_VIOLATION);
// one without a non-empty username is a user error (failure path).
#include <cstdint>
#include <string>

#include "strata/module.h"

namespace {

using strata::Path;
using strata::PStateRef;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

struct Pstates {
  PStateRef users_by_name;
  PStateRef name_claims;
  PStateRef next_id;
  PStateRef profiles;
};

Status CheckRecord(const Value& record) {
  const Value* username = record.is_map() ? record.Find(Value("username")) : nullptr;
  if (username == nullptr || !username->is_string() || username->as_string().empty()) {
    return Status::InvalidArgument(
        "*registrations: field \"username\" must be a non-empty string in " + record.ToString());
  }
  for (const char* field : {"request_id", "display_name"}) {
    const Value* v = record.Find(Value(field));
    if (v != nullptr && !v->is_string()) {
      return Status::InvalidArgument(std::string("*registrations: field \"") + field +
                                     "\" must be a string in " + record.ToString());
    }
  }
  return Status::Ok();
}

// {"id": id, "profile": the profile record} for the step that stores it.
Value ProfileDelivery(int64_t id, const Value& record) {
  Value profile = Value::MapOf({{"username", *record.Find(Value("username"))}});
  for (const char* field : {"request_id", "display_name"}) {
    if (const Value* v = record.Find(Value(field))) profile.Insert(field, *v);
  }
  return Value::MapOf({{"id", id}, {"profile", std::move(profile)}});
}

// Whether `record` (at `offset`) is the registration that made `claim`.
bool IsClaimant(const Value& claim, const Value& record, int64_t offset) {
  if (*claim.Find(Value("offset")) == Value(offset)) return true;
  const Value* claim_request = claim.Find(Value("request_id"));
  const Value* request = record.Find(Value("request_id"));
  return claim_request != nullptr && request != nullptr && *claim_request == *request;
}

// On the username's partition: claims the name or reports who holds it. Emits the
// profile to store (ProfileDelivery) when this record made the claim.
Status Claim(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_RETURN_IF_ERROR(CheckRecord(record));
  const Value& username = *record.Find(Value("username"));
  const Value* request_id = record.Find(Value("request_id"));
  int64_t offset = ctx.source().offset;

  STRATA_ASSIGN_OR_RETURN(Value holder, ctx.SelectOne(p.users_by_name, Path().Key(username)));
  if (holder.is_int()) {
    STRATA_ASSIGN_OR_RETURN(Value claim, ctx.SelectOne(p.name_claims, Path().Key(username)));
    if (!IsClaimant(claim, record, offset)) {
      ctx.SetAckReturn(Value::MapOf({{"status", "taken"}, {"id", holder}}));
      return Status::Ok();
    }
    ctx.SetAckReturn(Value::MapOf({{"status", "registered"}, {"id", holder}}));
    // A replay after a crash may not have stored the profile yet; a client retry (another
    // record) leaves the profile of the original record alone.
    if (*claim.Find(Value("offset")) == Value(offset)) {
      ctx.Emit(ProfileDelivery(holder.as_int(), record));
    }
    return Status::Ok();
  }

  STRATA_ASSIGN_OR_RETURN(Value assigned,
                          ctx.SelectOne(p.next_id, Path().Key(ctx.partition()).NullTo(0)));
  int64_t id = ctx.partition() + int64_t{ctx.num_partitions()} * assigned.as_int();
  STRATA_RETURN_IF_ERROR(
      ctx.Transform(p.next_id, Path().Key(ctx.partition()).Set(assigned.as_int() + 1)).status());
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.users_by_name, Path().Key(username).Set(id)).status());
  Value claim = Value::MapOf({{"offset", offset}});
  if (request_id != nullptr) claim.Insert("request_id", *request_id);
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.name_claims, Path().Key(username).Set(claim)).status());
  ctx.SetAckReturn(Value::MapOf({{"status", "registered"}, {"id", id}}));
  ctx.Emit(ProfileDelivery(id, record));
  return Status::Ok();
}

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef registrations =
      m.Depot("*registrations", strata::DepotPartitioning::Hash(Path().Key("username")),
              Schema::Record({{"username", Schema::String()},
                              {"request_id", Schema::String()},
                              {"display_name", Schema::String()}}));

  Pstates p;
  p.users_by_name = m.PState("$$users_by_name", Schema::Map(Schema::String(), Schema::Int64()));
  p.name_claims = m.PState(
      "$$name_claims",
      Schema::Map(Schema::String(),
                  Schema::Record({{"offset", Schema::Int64()}, {"request_id", Schema::String()}})));
  p.next_id = m.PState("$$next_id", Schema::Map(Schema::Int64(), Schema::Int64()));
  p.profiles =
      m.PState("$$profiles",
               Schema::Map(Schema::Int64(), Schema::Record({{"username", Schema::String()},
                                                            {"display_name", Schema::String()},
                                                            {"request_id", Schema::String()}})));

  m.Stream("register")
      .Source(registrations)
      .Each([p](TopologyContext& ctx, const Value& r) { return Claim(p, ctx, r); })
      .HashPartition([](const Value& v) { return *v.Find(Value("id")); })
      .Each([p](TopologyContext& ctx, const Value& v) {
        return ctx
            .Transform(p.profiles, Path().Key(*v.Find(Value("id"))).Set(*v.Find(Value("profile"))))
            .status();
      });
}

}  // namespace

STRATA_MODULE(profiles, Define)
