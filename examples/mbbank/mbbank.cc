// mbbank: the bank's deposits and transfers as microbatch topologies, exactly-once without
// a single idempotence table. Compare examples/bank, the same bank with stream topologies,
// which must remember every applied deposit offset, debit and credit to survive replays.
// Here the runtime commits each batch with its progress in one transaction (docs/modules.md,
// "Microbatch topologies"), so every record takes effect exactly once, crash or not, and
// every PState equals its recomputation from the depots exactly. Shows a microbatch with
// two sources, Writes, a decision on the source's partition followed by a hop to the
// destination's, and an Aggregate (agg::Sum) with its key function.
//
//   *deposits   hash("account"): {"account": s, "amount": int > 0}
//   *transfers  hash("from"): {"id": s, "from": s, "to": s, "amount": int > 0};
//               ids unique per source account
//   $$balances  map<string, int64>: account -> balance (never negative)
//   $$applied   map<string, subindexed map<string, record{to, amount}>>:
//               from -> transfer id -> the transfer, for every transfer debited
//   $$rejected  map<string, subindexed map<string, string>>: from -> transfer id -> reason
//   $$deposited map<string, int64>: account -> sum of its deposits
//
// Topology "ledger" (sources *deposits, then *transfers; writes $$balances, $$applied,
// $$rejected): on the record's partition a deposit adds to the balance; a transfer the
// source account cannot cover is rejected ("insufficient funds" in $$rejected), any other
// is debited and recorded in $$applied, then HashPartition by "to" carries it to the
// destination's partition, which credits it. Topology "deposits" (source *deposits)
// folds every deposit into $$deposited with agg::Sum: a view the ledger does not need,
// kept by the runtime's pre-aggregation (one value per account and batch crosses).
//
// Batches, not records, are the unit of a microbatch: within a batch the deposits come
// before the transfers, every debit of the batch runs before any of its credits, and so
// money credited to an account can be spent from the next batch on. Whether a transfer is
// covered can thus depend on where batches begin and end; the runtime records those
// boundaries, so a recompute takes the same decisions.
//
// A transfer id is decided once: an id already in $$applied or $$rejected (a client that
// sent the same transfer twice: two records, which the runtime cannot know to be one) is
// ignored, and the first decision stands. That is a rule of this bank, not replay
// protection. A record with a missing field or an amount that is not positive is a user
// error: the runtime retries it, then drops its effects from the batch and records the
// failure (Engine::Stats); the rest of the batch commits. Microbatch topologies set no ack
// return: a client reads the outcome with Select, e.g. key("alice", "t1") of $$applied or
// of $$rejected, once a `processed` append has returned.
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
  PStateRef balances;
  PStateRef applied;
  PStateRef rejected;
};

Result<std::string> RequireString(const Value& record, const char* depot, const char* field) {
  const Value* v = record.is_map() ? record.Find(Value(field)) : nullptr;
  if (v == nullptr || !v->is_string() || v->as_string().empty()) {
    return Status::InvalidArgument(std::string(depot) + ": field \"" + field +
                                   "\" must be a non-empty string in " + record.ToString());
  }
  return v->as_string();
}

Result<int64_t> RequireAmount(const Value& record, const char* depot) {
  const Value* v = record.is_map() ? record.Find(Value("amount")) : nullptr;
  if (v == nullptr || !v->is_int() || v->as_int() <= 0) {
    return Status::InvalidArgument(std::string(depot) +
                                   ": field \"amount\" must be an int > 0 in " + record.ToString());
  }
  return v->as_int();
}

Status Deposit(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string account, RequireString(record, "*deposits", "account"));
  STRATA_ASSIGN_OR_RETURN(int64_t amount, RequireAmount(record, "*deposits"));
  return ctx.Transform(p.balances, Path().Key(account).NullTo(0).Add(amount)).status();
}

// On the source account's partition: debits and passes the transfer on, or rejects it.
Status Debit(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string id, RequireString(record, "*transfers", "id"));
  STRATA_ASSIGN_OR_RETURN(std::string from, RequireString(record, "*transfers", "from"));
  STRATA_ASSIGN_OR_RETURN(std::string to, RequireString(record, "*transfers", "to"));
  STRATA_ASSIGN_OR_RETURN(int64_t amount, RequireAmount(record, "*transfers"));

  STRATA_ASSIGN_OR_RETURN(Value applied, ctx.SelectOne(p.applied, Path().Key(from, id)));
  STRATA_ASSIGN_OR_RETURN(Value rejected, ctx.SelectOne(p.rejected, Path().Key(from, id)));
  if (!applied.is_nil() || !rejected.is_nil()) return Status::Ok();  // decided already

  STRATA_ASSIGN_OR_RETURN(Value balance, ctx.SelectOne(p.balances, Path().Key(from).NullTo(0)));
  if (balance.as_int() < amount) {
    return ctx.Transform(p.rejected, Path().Key(from, id).Set(Value("insufficient funds")))
        .status();
  }
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.balances, Path().Key(from).Add(-amount)).status());
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.applied, Path().Key(from, id).Set(Value::MapOf(
                                                      {{"to", to}, {"amount", amount}})))
                             .status());
  ctx.Emit(Value::MapOf({{"to", to}, {"amount", amount}}));
  return Status::Ok();
}

// On the destination account's partition (Debit checked the fields).
Status Credit(const Pstates& p, TopologyContext& ctx, const Value& credit) {
  return ctx
      .Transform(p.balances,
                 Path().Key(*credit.Find(Value("to"))).NullTo(0).Add(*credit.Find(Value("amount"))))
      .status();
}

void Define(strata::ModuleBuilder& m) {
  strata::DepotRef deposits =
      m.Depot("*deposits", strata::DepotPartitioning::Hash(Path().Key("account")),
              Schema::Record({{"account", Schema::String()}, {"amount", Schema::Int64()}}));
  strata::DepotRef transfers =
      m.Depot("*transfers", strata::DepotPartitioning::Hash(Path().Key("from")),
              Schema::Record({{"id", Schema::String()},
                              {"from", Schema::String()},
                              {"to", Schema::String()},
                              {"amount", Schema::Int64()}}));

  Pstates p;
  p.balances = m.PState("$$balances", Schema::Map(Schema::String(), Schema::Int64()));
  p.applied = m.PState(
      "$$applied",
      Schema::Map(Schema::String(),
                  Schema::Map(Schema::String(), Schema::Record({{"to", Schema::String()},
                                                                {"amount", Schema::Int64()}}))
                      .Subindexed()));
  p.rejected = m.PState(
      "$$rejected",
      Schema::Map(Schema::String(), Schema::Map(Schema::String(), Schema::String()).Subindexed()));
  PStateRef deposited = m.PState("$$deposited", Schema::Map(Schema::String(), Schema::Int64()));

  const int deposits_index = deposits.index;
  m.Microbatch("ledger")
      .Source(deposits)  // a batch's deposits come before its transfers
      .Source(transfers)
      .Writes(p.balances)
      .Writes(p.applied)
      .Writes(p.rejected)
      .Each([p, deposits_index](TopologyContext& ctx, const Value& record) {
        return ctx.source().depot == deposits_index ? Deposit(p, ctx, record)
                                                    : Debit(p, ctx, record);
      })
      .HashPartition([](const Value& credit) { return *credit.Find(Value("to")); })
      .Each([p](TopologyContext& ctx, const Value& credit) { return Credit(p, ctx, credit); });

  m.Microbatch("deposits")
      .Source(deposits)
      .Each([](TopologyContext& ctx, const Value& record) -> Status {
        // The same checks as the ledger's, so that a bad deposit is in neither view.
        STRATA_RETURN_IF_ERROR(RequireString(record, "*deposits", "account").status());
        STRATA_RETURN_IF_ERROR(RequireAmount(record, "*deposits").status());
        ctx.Emit(record);
        return Status::Ok();
      })
      .Aggregate(
          deposited, [](const Value& record) { return *record.Find(Value("account")); },
          strata::agg::Sum([](const Value& record) { return *record.Find(Value("amount")); }));
}

}  // namespace

STRATA_MODULE(mbbank, Define)
