// auction: auctions that close by themselves when their time is up, driven by a tick depot
// (the engine appends the time to it), exactly-once in a microbatch topology. Shows
// m.TickDepot, a microbatch consuming three depots whose declaration order sets the order
// of a batch, a tick fanned out to every partition with Direct, and agg::Max keeping the
// best bid per auction. No step reads a clock: time enters only as tick records, so a
// recompute replays the same closes, and every PState equals its recomputation exactly.
//
//   *ticks          tick depot, every 100 ms: int64 ms since the epoch (partition 0)
//   *auctions       hash("id"): {"id": s, "ends_at_ms": int64, "seller": s (optional)}
//   *bids           hash("auction"): {"auction": s, "bidder": s, "amount": int > 0}
//   $$auctions      map<string, record{ends_at_ms, seller, status}>: id -> the auction;
//                   status "open", then "closed"
//   $$best_bids     map<string, list>: id -> [amount, -offset, bidder] of its best bid
//                   (highest amount; of equal amounts the earliest: the lowest offset in
//                   its *bids partition)
//   $$winners       map<string, record{bidder, amount, closed_at_ms}>: id -> the outcome of
//                   a closed auction (no bidder and amount when it had no bid)
//   $$refused_bids  map<string, int64>: auction id -> bids refused (unknown or closed auction)
//   $$schedule      map<int64, set<string>>: ends_at_ms -> ids of the open auctions ending
//                   then, per partition (internal: keyed by time, not hashed)
//
// Topology "auction" (sources *ticks, *auctions, *bids, in this order):
//   1. on the record's partition: a tick becomes P values {"p": i, "tick": t}, one per
//      partition i; an auction or bid record r becomes {"p": its partition, "auction": r,
//      "offset": its offset} or the same with "bid";
//   2. Direct to "p" (records stay, ticks reach every partition);
//   3. in batch order — the batch's ticks, then its auctions, then its bids: a tick t
//      closes every open auction of the partition with ends_at_ms <= t, writing its winner
//      from $$best_bids; an auction is stored and scheduled (an id seen before is
//      ignored); a bid on an open auction passes on, any other is counted in $$refused_bids;
//   4. Aggregate($$best_bids, auction id, agg::Max([amount, -offset, bidder])).
// Every decision is in step 3, in one order, and a tick of a batch comes before the
// batch's bids: a bid closed out by that tick is refused, and the best bid a close reads
// holds every bid accepted before it (earlier batches).
//
// Select: key("a1") of $$winners -> [{"bidder": "bob", "amount": 120, "closed_at_ms": ...}];
// key("a1") of $$best_bids while it runs. A malformed bid or auction (missing field, amount
// or end <= 0) is a user error: retried, then dropped from its batch and recorded
// (Engine::Stats).
#include <cstdint>
#include <string>

#include "strata/module.h"

namespace {

using strata::Path;
using strata::PStateRef;
using strata::Result;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

struct Pstates {
  PStateRef auctions;
  PStateRef best_bids;
  PStateRef winners;
  PStateRef refused_bids;
  PStateRef schedule;
};

Status RequireString(const Value& record, const char* depot, const char* field) {
  const Value* v = record.is_map() ? record.Find(Value(field)) : nullptr;
  if (v == nullptr || !v->is_string() || v->as_string().empty()) {
    return Status::InvalidArgument(std::string(depot) + ": field \"" + field +
                                   "\" must be a non-empty string in " + record.ToString());
  }
  return Status::Ok();
}

Status RequirePositive(const Value& record, const char* depot, const char* field) {
  const Value* v = record.is_map() ? record.Find(Value(field)) : nullptr;
  if (v == nullptr || !v->is_int() || v->as_int() <= 0) {
    return Status::InvalidArgument(std::string(depot) + ": field \"" + field +
                                   "\" must be an int > 0 in " + record.ToString());
  }
  return Status::Ok();
}

// Closes every open auction of this partition that ends at or before `now`.
Status Close(const Pstates& p, TopologyContext& ctx, int64_t now) {
  const Path due = Path().Range({.to = Value(now), .to_inclusive = true});
  STRATA_ASSIGN_OR_RETURN(Value ending, ctx.SelectOne(p.schedule, due));
  if (!ending.is_map() || ending.as_map().empty()) return Status::Ok();
  for (const auto& [ends_at, ids] : ending.as_map()) {
    for (const Value& id : ids.as_set()) {
      STRATA_ASSIGN_OR_RETURN(Value best, ctx.SelectOne(p.best_bids, Path().Key(id)));
      Value::Map outcome = {{"closed_at_ms", Value(now)}};
      if (best.is_list()) {
        outcome.push_back({"bidder", best.as_list().at(2)});
        outcome.push_back({"amount", best.as_list().at(0)});
      }
      STRATA_RETURN_IF_ERROR(
          ctx.Transform(p.winners, Path().Key(id).Set(Value::MapOf(std::move(outcome)))).status());
      STRATA_RETURN_IF_ERROR(
          ctx.Transform(p.auctions, Path().Key(id, "status").Set(Value("closed"))).status());
    }
  }
  return ctx.Transform(p.schedule, Path(due).Remove()).status();
}

Status Open(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_RETURN_IF_ERROR(RequireString(record, "*auctions", "id"));
  STRATA_RETURN_IF_ERROR(RequirePositive(record, "*auctions", "ends_at_ms"));
  const Value& id = *record.Find(Value("id"));
  STRATA_ASSIGN_OR_RETURN(Value known, ctx.SelectOne(p.auctions, Path().Key(id)));
  if (!known.is_nil()) return Status::Ok();  // the first auction of an id stands
  const Value& ends_at = *record.Find(Value("ends_at_ms"));
  Value::Map auction = {{"ends_at_ms", ends_at}, {"status", Value("open")}};
  if (const Value* seller = record.Find(Value("seller")); seller != nullptr) {
    auction.push_back({"seller", *seller});
  }
  STRATA_RETURN_IF_ERROR(
      ctx.Transform(p.auctions, Path().Key(id).Set(Value::MapOf(std::move(auction)))).status());
  return ctx.Transform(p.schedule, Path().Key(ends_at).AddToSet(id)).status();
}

// A bid with its offset in its *bids partition: ties go to the earliest.
Status Bid(const Pstates& p, TopologyContext& ctx, const Value& record, int64_t offset) {
  STRATA_RETURN_IF_ERROR(RequireString(record, "*bids", "auction"));
  STRATA_RETURN_IF_ERROR(RequireString(record, "*bids", "bidder"));
  STRATA_RETURN_IF_ERROR(RequirePositive(record, "*bids", "amount"));
  const Value& id = *record.Find(Value("auction"));
  STRATA_ASSIGN_OR_RETURN(Value status, ctx.SelectOne(p.auctions, Path().Key(id, "status")));
  if (status != Value("open")) {
    return ctx.Transform(p.refused_bids, Path().Key(id).NullTo(0).Inc()).status();
  }
  ctx.Emit(Value::MapOf({{"auction", id},
                         {"best", Value::ListOf({*record.Find(Value("amount")), -offset,
                                                 *record.Find(Value("bidder"))})}}));
  return Status::Ok();
}

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef ticks = m.TickDepot("*ticks", 100);
  strata::DepotRef auctions =
      m.Depot("*auctions", strata::DepotPartitioning::Hash(Path().Key("id")),
              Schema::Record({{"id", Schema::String()},
                              {"ends_at_ms", Schema::Int64()},
                              {"seller", Schema::String()}}));
  strata::DepotRef bids = m.Depot("*bids", strata::DepotPartitioning::Hash(Path().Key("auction")),
                                  Schema::Record({{"auction", Schema::String()},
                                                  {"bidder", Schema::String()},
                                                  {"amount", Schema::Int64()}}));

  Pstates p;
  p.auctions = m.PState(
      "$$auctions", Schema::Map(Schema::String(), Schema::Record({{"ends_at_ms", Schema::Int64()},
                                                                  {"seller", Schema::String()},
                                                                  {"status", Schema::String()}})));
  p.best_bids = m.PState("$$best_bids", Schema::Map(Schema::String(), Schema::List(Schema::Any())));
  p.winners =
      m.PState("$$winners",
               Schema::Map(Schema::String(), Schema::Record({{"bidder", Schema::String()},
                                                             {"amount", Schema::Int64()},
                                                             {"closed_at_ms", Schema::Int64()}})));
  p.refused_bids = m.PState("$$refused_bids", Schema::Map(Schema::String(), Schema::Int64()));
  p.schedule = m.PState("$$schedule", Schema::Map(Schema::Int64(), Schema::Set(Schema::String())));

  const int ticks_index = ticks.index;
  const int auctions_index = auctions.index;
  m.Microbatch("auction")
      .Source(ticks)  // a batch's ticks come first, then its auctions, then its bids
      .Source(auctions)
      .Source(bids)
      .Writes(p.auctions)
      .Writes(p.winners)
      .Writes(p.refused_bids)
      .Writes(p.schedule)
      .Each([ticks_index, auctions_index](TopologyContext& ctx, const Value& record) {
        const strata::RecordId source = ctx.source();
        if (source.depot != ticks_index) {
          const char* kind = source.depot == auctions_index ? "auction" : "bid";
          ctx.Emit(
              Value::MapOf({{"p", ctx.partition()}, {kind, record}, {"offset", source.offset}}));
          return;
        }
        for (int i = 0; i < ctx.num_partitions(); ++i) {
          ctx.Emit(Value::MapOf({{"p", i}, {"tick", record}}));
        }
      })
      .Direct([](const Value& v) { return v.Find(Value("p"))->as_int(); })
      .Each([p](TopologyContext& ctx, const Value& v) -> Status {
        if (const Value* tick = v.Find(Value("tick")); tick != nullptr) {
          return Close(p, ctx, tick->as_int());
        }
        if (const Value* auction = v.Find(Value("auction")); auction != nullptr) {
          return Open(p, ctx, *auction);
        }
        return Bid(p, ctx, *v.Find(Value("bid")), v.Find(Value("offset"))->as_int());
      })
      .Aggregate(
          p.best_bids, [](const Value& bid) { return *bid.Find(Value("auction")); },
          strata::agg::Max([](const Value& bid) { return *bid.Find(Value("best")); }));
}

}  // namespace

STRATA_MODULE(auction, Define)
