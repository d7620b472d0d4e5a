// bank: deposits and transfers between accounts, each applied exactly once in effect
// although stream topologies are at-least-once. Shows a two-step topology whose first
// step decides (debit or reject) on the source account's partition and whose second step
// runs on the destination's partition, idempotence by recorded ids and by the source
// record's offset (TopologyContext::source), and ack returns ({"status": ...}).
//
//   *deposits          hash("account"): {"account": s, "amount": int > 0}
//   *transfers         hash("from"): {"id": s, "from": s, "to": s, "amount": int > 0};
//                      ids unique per source account
//   $$balances         map<string, int64>: account -> balance
//   $$deposit_offsets  map<string, int64>: account -> offset (in its *deposits partition)
//                      of the last deposit applied to it
//   $$applied_debits   map<string, subindexed set<string>>: from -> transfer ids debited
//   $$applied_credits  map<string, subindexed set<list<string>>>: to -> [from, id] credited
//   $$rejected         map<string, subindexed map<string, string>>: from -> id -> reason
//   $$sums             map<string, int64>, one per partition, of the partition's own
//                      accounts (keys local to the partition, not hashed): "balances" ->
//                      the sum of their balances, "debited" -> all money transfers debited
//                      from them, "credited" -> all money transfers credited to them
//
// and a query (docs/modules.md, "Queries"):
//
//   total-money()      all the money in the bank: the sum of the deposits applied, exact
//                      even while transfers run.
//
// A transfer's debit and credit commit on two partitions, in two transactions, so a sum
// of the balances alone misses the money in flight: debited and not yet credited. The
// sums are written in the same transactions as the balances they follow, so in any one
// snapshot balances + debited - credited, over all partitions, is the money deposited —
// and a query reads all partitions in one snapshot. Kept as running sums, they answer
// with three reads per partition however many accounts there are: the view is shaped for
// its query, as an index would be.
//
// Built twice (examples/CMakeLists.txt), both module "bank": bank.so, and bank_v2.so
// (BANK_V2), its second version, deployed over a running version 1 with an update. It shows
// a PState whose values change shape and the migration that bridges old and new values
// (docs/modules.md, "Migrations"): in version 2
//
//   $$balances  map<string, record{amount: int64, currency: string}>: account -> balance
//
// and m.Migrate turns every int64 balance stored by version 1 into
// {"amount": <it>, "currency": "EUR"}. Reads see migrated values at once; the engine
// rewrites the stored ones in the background. The function is idempotent: a record comes
// back unchanged. Everything else (depots, other PStates, topologies, their answers, with
// the amount as "balance") is the same in both versions.
//
// A record with a mistyped or unknown field is refused at append by the depot's record
// schema (SCHEMA_VIOLATION) and never enters the log. A record with a missing field or an
// amount that is not positive is a user error: the step fails, the runtime records the
// failure and a `processed` appender gets an error. A transfer the source account cannot cover is
// rejected: recorded in
// $$rejected and answered {"status": "rejected", "reason": ..., "balance": b}. Both
// decisions are final: a transfer id seen again (a replay after a crash, or a client
// retry with the same id) gets its first answer and moves no money.
#include <cstdint>
#include <string>
#include <string_view>
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

struct Pstates {
  PStateRef balances;
  PStateRef deposit_offsets;
  PStateRef applied_debits;
  PStateRef applied_credits;
  PStateRef rejected;
  PStateRef sums;
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
  const Value* v = record.Find(Value("amount"));
  if (v == nullptr || !v->is_int() || v->as_int() <= 0) {
    return Status::InvalidArgument(std::string(depot) +
                                   ": field \"amount\" must be an int > 0 in " + record.ToString());
  }
  return v->as_int();
}

#ifdef BANK_V2
constexpr char kCurrency[] = "EUR";

// Version 1 stored a balance as an int64: it becomes {amount, currency}. Idempotent.
Value MigrateBalance(const Value& old) {
  if (!old.is_int()) return old;
  return Value::MapOf({{"amount", old}, {"currency", kCurrency}});
}
#endif

// Where the amount of `account`'s balance is.
Path BalanceAmount(const Value& account) {
#ifdef BANK_V2
  return Path().Key(account, "amount");
#else
  return Path().Key(account);
#endif
}

// nil (no balance yet) reads as 0.
Result<int64_t> Balance(const Pstates& p, TopologyContext& ctx, const std::string& account) {
  STRATA_ASSIGN_OR_RETURN(Value b,
                          ctx.SelectOne(p.balances, BalanceAmount(Value(account)).NullTo(0)));
  return b.as_int();
}

// Adds `amount` to this partition's running sum `which` ("balances", "debited", "credited").
Status AddToSum(const Pstates& p, TopologyContext& ctx, const char* which, int64_t amount) {
  return ctx.Transform(p.sums, Path().Key(which).NullTo(0).Add(amount)).status();
}

// Adds `delta` to `account`'s balance (a new account starts at 0), and to the partition's
// sum of balances.
Status AddToBalance(const Pstates& p, TopologyContext& ctx, const Value& account, int64_t delta) {
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.balances, BalanceAmount(account).Add(delta)).status());
  STRATA_RETURN_IF_ERROR(AddToSum(p, ctx, "balances", delta));
#ifdef BANK_V2
  return ctx.Transform(p.balances, Path().Key(account, "currency").SetIfAbsent(kCurrency)).status();
#else
  return Status::Ok();
#endif
}

Status Deposit(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string account, RequireString(record, "*deposits", "account"));
  STRATA_ASSIGN_OR_RETURN(int64_t amount, RequireAmount(record, "*deposits"));
  // Deposits of one account are all in one depot partition, processed in offset order, so
  // "offset <= the last applied offset" identifies a replay.
  int64_t offset = ctx.source().offset;
  STRATA_ASSIGN_OR_RETURN(Value last, ctx.SelectOne(p.deposit_offsets, Path().Key(account)));
  if (!last.is_int() || offset > last.as_int()) {
    STRATA_RETURN_IF_ERROR(AddToBalance(p, ctx, Value(account), amount));
    STRATA_RETURN_IF_ERROR(
        ctx.Transform(p.deposit_offsets, Path().Key(account).Set(offset)).status());
  }
  STRATA_ASSIGN_OR_RETURN(int64_t balance, Balance(p, ctx, account));
  ctx.SetAckReturn(Value::MapOf({{"status", "ok"}, {"balance", balance}}));
  return Status::Ok();
}

// On the source account's partition: debits (and passes the transfer on) or rejects.
Status Debit(const Pstates& p, TopologyContext& ctx, const Value& record) {
  STRATA_ASSIGN_OR_RETURN(std::string id, RequireString(record, "*transfers", "id"));
  STRATA_ASSIGN_OR_RETURN(std::string from, RequireString(record, "*transfers", "from"));
  STRATA_RETURN_IF_ERROR(RequireString(record, "*transfers", "to").status());
  STRATA_ASSIGN_OR_RETURN(int64_t amount, RequireAmount(record, "*transfers"));

  STRATA_ASSIGN_OR_RETURN(Value debited, ctx.SelectOne(p.applied_debits, Path().Key(from, id)));
  if (!debited.is_nil()) {
    // Already debited: pass it on again, the credit side applies it at most once.
    ctx.SetAckReturn(Value::MapOf({{"status", "ok"}}));
    ctx.Emit(record);
    return Status::Ok();
  }
  STRATA_ASSIGN_OR_RETURN(Value reason, ctx.SelectOne(p.rejected, Path().Key(from, id)));
  STRATA_ASSIGN_OR_RETURN(int64_t balance, Balance(p, ctx, from));
  if (reason.is_nil() && balance < amount) {
    // The stored reason must not depend on timing (the oracle recomputes it), so the
    // balance goes only into the ack return.
    reason = Value("insufficient funds");
    STRATA_RETURN_IF_ERROR(ctx.Transform(p.rejected, Path().Key(from, id).Set(reason)).status());
  }
  if (!reason.is_nil()) {
    ctx.SetAckReturn(
        Value::MapOf({{"status", "rejected"}, {"reason", reason}, {"balance", balance}}));
    return Status::Ok();
  }
  STRATA_RETURN_IF_ERROR(AddToBalance(p, ctx, Value(from), -amount));
  STRATA_RETURN_IF_ERROR(ctx.Transform(p.applied_debits, Path().Key(from).AddToSet(id)).status());
  STRATA_RETURN_IF_ERROR(AddToSum(p, ctx, "debited", amount));
  ctx.SetAckReturn(Value::MapOf({{"status", "ok"}}));
  ctx.Emit(record);
  return Status::Ok();
}

// On the destination account's partition (the record was checked by Debit).
Status Credit(const Pstates& p, TopologyContext& ctx, const Value& record) {
  const Value& to = *record.Find(Value("to"));
  Value credit_key = Value::ListOf({*record.Find(Value("from")), *record.Find(Value("id"))});
  STRATA_ASSIGN_OR_RETURN(Value credited,
                          ctx.SelectOne(p.applied_credits, Path().Key(to, credit_key)));
  if (!credited.is_nil()) return Status::Ok();
  const int64_t amount = record.Find(Value("amount"))->as_int();
  STRATA_RETURN_IF_ERROR(AddToBalance(p, ctx, to, amount));
  STRATA_RETURN_IF_ERROR(AddToSum(p, ctx, "credited", amount));
  return ctx.Transform(p.applied_credits, Path().Key(to).AddToSet(std::move(credit_key))).status();
}

// On each partition: the money its accounts hold, plus what they sent that may still be
// on its way, minus what they received (which may be the money in flight of another
// partition). Summed over all partitions in one snapshot: the money deposited.
Status PartitionMoney(const Pstates& p, TopologyContext& ctx) {
  int64_t money = 0;
  for (const char* which : {"balances", "debited", "credited"}) {
    STRATA_ASSIGN_OR_RETURN(Value sum, ctx.SelectOne(p.sums, Path().Key(which).NullTo(0)));
    money += std::string_view(which) == "credited" ? -sum.as_int() : sum.as_int();
  }
  ctx.Emit(Value(money));
  return Status::Ok();
}

void Define(strata::ModuleBuilder& m) {
  // The record schemas refuse a mistyped field at append; the steps check what a schema
  // cannot say (a field present, an amount > 0).
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
#ifdef BANK_V2
  p.balances = m.PState(
      "$$balances",
      Schema::Map(Schema::String(),
                  Schema::Record({{"amount", Schema::Int64()}, {"currency", Schema::String()}})));
  m.Migrate(p.balances, "balance-to-record", MigrateBalance);
#else
  p.balances = m.PState("$$balances", Schema::Map(Schema::String(), Schema::Int64()));
#endif
  p.deposit_offsets = m.PState("$$deposit_offsets", Schema::Map(Schema::String(), Schema::Int64()));
  p.applied_debits =
      m.PState("$$applied_debits",
               Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()));
  p.applied_credits = m.PState(
      "$$applied_credits",
      Schema::Map(Schema::String(), Schema::Set(Schema::List(Schema::String())).Subindexed()));
  p.rejected = m.PState(
      "$$rejected",
      Schema::Map(Schema::String(), Schema::Map(Schema::String(), Schema::String()).Subindexed()));

  p.sums = m.PState("$$sums", Schema::Map(Schema::String(), Schema::Int64()));

  m.Stream("deposit").Source(deposits).Each(
      [p](TopologyContext& ctx, const Value& r) { return Deposit(p, ctx, r); });
  m.Stream("transfer")
      .Source(transfers)
      .Each([p](TopologyContext& ctx, const Value& r) { return Debit(p, ctx, r); })
      .HashPartition([](const Value& r) { return *r.Find(Value("to")); })
      .Each([p](TopologyContext& ctx, const Value& r) { return Credit(p, ctx, r); });

  m.Query("total-money")
      .AllPartitions()
      .Each([p](TopologyContext& ctx, const Value&) { return PartitionMoney(p, ctx); })
      .Origin()
      .Combine(strata::agg::Sum());
}

}  // namespace

STRATA_MODULE(bank, Define)
