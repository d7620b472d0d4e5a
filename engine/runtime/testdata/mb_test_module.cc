// The module microbatch_test deploys: one microbatch topology per behaviour under test.
// Built three times, all named "mbtest": plain; MB_TEST_V2 adds a microbatch topology
// "count2" (a backfill after an update); MB_TEST_KIND declares "slow" as a stream topology
// (an update the runtime refuses).
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "strata/module.h"

namespace {

using strata::DepotPartitioning;
using strata::Path;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;
namespace agg = strata::agg;

// The "slow" topology's step waits while the gate is closed (mb_test_set_gate), at most
// 30 s, so a test can hold a batch in flight.
std::mutex gate_mu;
std::condition_variable gate_cv;
bool gate_open = true;

const Value& Field(const Value& r, const char* key) {
  const Value* v = r.Find(Value(key));
  if (v == nullptr) throw std::invalid_argument("record has no " + std::string(key));
  return *v;
}

void Define(strata::ModuleBuilder& m) {
  // count: words -> exact counts, then a global top 3 of (word, count) by count.
  auto words = m.Depot("*words", DepotPartitioning::Random(), Schema::String());
  auto counts = m.PState("$$counts", Schema::Map(Schema::String(), Schema::Int64()));
  auto top = m.GlobalPState("$$top", Schema::Map(Schema::String(), Schema::List(Schema::Any())));
  auto letters = m.PState("$$letters", Schema::Map(Schema::String(), Schema::Int64()));
  auto echoes = m.Depot("*echoes", DepotPartitioning::NoClientAppends(), Schema::String());
  auto echo_count = m.PState("$$echo_count", Schema::Map(Schema::String(), Schema::Int64()));
  m.Microbatch("count")
      .Source(words)
      .Each([](TopologyContext& ctx, const Value& w) {
        if (w.as_string() == "boom") throw std::runtime_error("boom is not a word");
        ctx.Emit(w);
      })
      .Aggregate(
          counts, [](const Value& w) { return w; }, agg::Count())
      .Aggregate(
          top, [](const Value&) { return Value("all"); },
          agg::TopN(
              3, [](const Value& wc) { return wc.as_list()[1]; },
              [](const Value& wc) { return wc.as_list()[0]; }));
  // letters: values grouped by first letter; the group's size is added (GroupBy/EachGroup).
  // A word "echo..." is also appended to *echoes (ctx.Append, exactly once per batch).
  m.Microbatch("letters")
      .Source(words)
      .Writes(letters)
      .GroupBy([](const Value& w) { return Value(w.as_string().substr(0, 1)); })
      .EachGroup([letters, echoes](TopologyContext& ctx, const Value& letter,
                                   const std::vector<Value>& ws) -> Status {
        for (const Value& w : ws) {
          if (w.as_string().rfind("echo", 0) == 0) STRATA_RETURN_IF_ERROR(ctx.Append(echoes, w));
        }
        return ctx
            .Transform(letters, Path().Key(letter).NullTo(0).Add(static_cast<int64_t>(ws.size())))
            .status();
      });
  m.Stream("echo").Source(echoes).HashPartition().Each(
      [echo_count](TopologyContext& ctx, const Value& w) {
        return ctx.Transform(echo_count, Path().Key(w).NullTo(0).Inc()).status();
      });

  // bank: deposits {at, amount} and transfers {at (from), to, amount, id}; a transfer that
  // would make its source negative is rejected. Two hops: debit, then credit.
  auto ops = m.Depot("*ops", DepotPartitioning::Hash(Path().Key("at")));
  auto balances = m.PState("$$balances", Schema::Map(Schema::String(), Schema::Int64()));
  auto rejected = m.PState("$$rejected", Schema::Map(Schema::String(), Schema::String()));
  m.Microbatch("bank")
      .Source(ops)
      .Writes(balances)
      .Writes(rejected)
      .Each([balances, rejected](TopologyContext& ctx, const Value& r) -> Status {
        const int64_t amount = Field(r, "amount").as_int();
        if (r.Find(Value("to")) == nullptr) {
          return ctx.Transform(balances, Path().Key(Field(r, "at")).NullTo(0).Add(amount)).status();
        }
        STRATA_ASSIGN_OR_RETURN(Value b,
                                ctx.SelectOne(balances, Path().Key(Field(r, "at")).NullTo(0)));
        if (b.as_int() < amount) {
          return ctx.Transform(rejected, Path().Key(Field(r, "id")).Set("insufficient funds"))
              .status();
        }
        STRATA_RETURN_IF_ERROR(
            ctx.Transform(balances, Path().Key(Field(r, "at")).Add(-amount)).status());
        ctx.Emit(r);
        return Status::Ok();
      })
      .HashPartition([](const Value& r) { return Field(r, "to"); })
      .Each([balances](TopologyContext& ctx, const Value& r) {
        return ctx
            .Transform(balances,
                       Path().Key(Field(r, "to")).NullTo(0).Add(Field(r, "amount").as_int()))
            .status();
      });

#ifdef MB_TEST_V2
  auto counts2 = m.PState("$$counts2", Schema::Map(Schema::String(), Schema::Int64()));
  m.Microbatch("count2").Source(words).Aggregate(
      counts2, [](const Value& w) { return w; }, agg::Count());
#endif

  // slow: waits at the gate, then counts.
  auto slow = m.Depot("*slow", DepotPartitioning::Random());
  auto slow_count = m.PState("$$slow_count", Schema::Map(Schema::String(), Schema::Int64()));
#ifdef MB_TEST_KIND
  m.Stream("slow").Source(slow).Each([slow_count](TopologyContext& ctx, const Value&) {
    return ctx.Transform(slow_count, Path().Key("n").NullTo(0).Inc()).status();
  });
#else
  m.Microbatch("slow")
      .Source(slow)
      .Each([](TopologyContext& ctx, const Value& v) {
        std::unique_lock lock(gate_mu);
        gate_cv.wait_for(lock, std::chrono::seconds(30), [] { return gate_open; });
        ctx.Emit(v);
      })
      .Aggregate(
          slow_count, [](const Value&) { return Value("n"); }, agg::Count());
#endif

  // hop: a stream topology that appends each record to *slow (a microbatch behind a hop).
  auto hop = m.Depot("*hop", DepotPartitioning::Random());
  m.Stream("hop").Source(hop).Each(
      [slow](TopologyContext& ctx, const Value& v) { return ctx.Append(slow, v); });

  // ticks: every 20 ms; their count and the last one.
  auto ticks = m.TickDepot("*ticks", 20);
  auto tick_stats = m.GlobalPState("$$tick_stats", Schema::Map(Schema::String(), Schema::Int64()));
  m.Microbatch("ticks").Source(ticks).Global().Aggregate(
      tick_stats, [](const Value&) { return Value("last"); }, agg::Max());

  // relay: two slow microbatch hops through a depot, the consumer declared first (its batch
  // comes after the relay's, whose appends it takes).
  auto relay_in = m.Depot("*relay_in", DepotPartitioning::Random(), Schema::String());
  auto relayed = m.Depot("*relayed", DepotPartitioning::NoClientAppends(), Schema::String());
  auto relay_count = m.PState("$$relay_count", Schema::Map(Schema::String(), Schema::Int64()));
  m.Microbatch("relay_count")
      .Source(relayed)
      .Each([](TopologyContext& ctx, const Value& w) {
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        ctx.Emit(w);
      })
      .Aggregate(
          relay_count, [](const Value& w) { return w; }, agg::Count());
  m.Microbatch("relay").Source(relay_in).Each(
      [relayed](TopologyContext& ctx, const Value& w) -> Status {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return ctx.Append(relayed, w);
      });

  // post: a step after an Aggregate that fails for the key "bad"; MB_TEST_V2 adds a source.
  auto post = m.Depot("*post", DepotPartitioning::Random(), Schema::String());
  auto post_counts = m.PState("$$post_counts", Schema::Map(Schema::String(), Schema::Int64()));
#ifdef MB_TEST_V2
  auto post2 = m.Depot("*post2", DepotPartitioning::Random(), Schema::String());
  m.Microbatch("post")
      .Source(post)
      .Source(post2)
#else
  m.Microbatch("post")
      .Source(post)
#endif
      .Aggregate(
          post_counts, [](const Value& w) { return w; }, agg::Count())
      .Each([](TopologyContext&, const Value& kc) -> Status {
        if (kc.as_list()[0].as_string() == "bad") return Status::UserError("bad key");
        return Status::Ok();
      });

  // A stream topology may not write a microbatch's PState.
  auto intruder = m.Depot("*intruder", DepotPartitioning::Random());
  m.Stream("intruder").Source(intruder).Each([counts](TopologyContext& ctx, const Value& v) {
    return ctx.Transform(counts, Path().Key(v).Set(int64_t{-1})).status();
  });
}

}  // namespace

STRATA_MODULE(mbtest, Define)

extern "C" __attribute__((visibility("default"))) void mb_test_set_gate(bool open) {
  {
    std::lock_guard lock(gate_mu);
    gate_open = open;
  }
  gate_cv.notify_all();
}
