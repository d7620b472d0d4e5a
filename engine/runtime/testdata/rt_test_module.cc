// The module runtime_test deploys: one depot and topology per behaviour under test.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "strata/module.h"

namespace {

using strata::DepotPartitioning;
using strata::Path;
using strata::Schema;
using strata::TopologyContext;
using strata::Value;

// Attempts of the "flaky" step per record value, read by the test through
// rt_test_flaky_attempts (the test dlopens the engine's copy with RTLD_NOLOAD).
std::mutex attempts_mu;
std::map<int64_t, int> attempts;

// The "gate" step waits while the gate is closed (rt_test_set_gate), at most 30 s, so a
// test can hold records in flight.
std::mutex gate_mu;
std::condition_variable gate_cv;
bool gate_open = true;
int gate_waiting = 0;  // steps waiting at the closed gate (rt_test_gate_waiting)

void Define(strata::ModuleBuilder& m) {
  // wordcount: sentence -> words (ack return: word count) -> hash(word) -> count.
  auto sentences = m.Depot("*sentences", DepotPartitioning::Random());
  auto word_counts = m.PState("$$word_counts", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("wordcount")
      .Source(sentences)
      .Each([](TopologyContext& ctx, const Value& sentence) {
        std::istringstream words(sentence.as_string());
        int64_t n = 0;
        for (std::string w; words >> w; ++n) ctx.Emit(w);
        ctx.SetAckReturn(n);
      })
      .HashPartition()
      .Each([word_counts](TopologyContext& ctx, const Value& word) {
        return ctx.Transform(word_counts, Path().Key(word).NullTo(0).Inc()).status();
      });

  // order: {producer, seq} -> hash(producer) -> append seq to the producer's list.
  auto seq = m.Depot("*seq", DepotPartitioning::Hash(Path().Key("producer")));
  auto sequences = m.PState(
      "$$sequences", Schema::Map(Schema::String(), Schema::List(Schema::Int64()).Subindexed()));
  m.Stream("order")
      .Source(seq)
      .Each([](TopologyContext& ctx, const Value& record) { ctx.Emit(record); })
      .HashPartition([](const Value& record) { return *record.Find("producer"); })
      .Each([sequences](TopologyContext& ctx, const Value& record) {
        const Value& producer = *record.Find("producer");
        return ctx.Transform(sequences, Path().Key(producer).Append(*record.Find("seq"))).status();
      });

  // kv: {key, value} -> $$kv[key] = value, ack return the value; then a global total.
  auto kv_depot = m.Depot("*kv", DepotPartitioning::Hash(Path().Key("key")));
  auto kv = m.PState("$$kv", Schema::Map(Schema::String(), Schema::Any()));
  auto totals = m.GlobalPState("$$totals", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("kv")
      .Source(kv_depot)
      .Each([kv](TopologyContext& ctx, const Value& record) -> strata::Status {
        auto st = ctx.Transform(kv, Path().Key(*record.Find("key")).Set(*record.Find("value")));
        if (!st.ok()) return st.status();
        ctx.SetAckReturn(Value::ListOf({ctx.partition(), *record.Find("value")}));
        ctx.Emit(1);
        return strata::Status::Ok();
      })
      .Global()
      .Each([totals](TopologyContext& ctx, const Value& n) {
        return ctx.Transform(totals, Path().Key("records").NullTo(0).Add(n)).status();
      });

  // global_wrong: writes the global PState without routing to partition 0 first.
  auto gw = m.Depot("*gw", DepotPartitioning::Hash());
  m.Stream("global_wrong").Source(gw).Each([totals](TopologyContext& ctx, const Value&) {
    return ctx.Transform(totals, Path().Key("wrong").NullTo(0).Inc()).status();
  });

  // flaky: throws for multiples of 5, counts the others (a count shows an effect applied
  // twice, where a set would hide it).
  auto flaky_depot = m.Depot("*flaky", DepotPartitioning::Hash());
  auto flaky_ok = m.PState("$$flaky_ok", Schema::Map(Schema::Int64(), Schema::Int64()));
  m.Stream("flaky").Source(flaky_depot).Each([flaky_ok](TopologyContext& ctx, const Value& n) {
    {
      std::lock_guard lock(attempts_mu);
      ++attempts[n.as_int()];
    }
    if (n.as_int() % 5 == 0)
      throw std::runtime_error("record " + n.ToString() + " is a multiple of 5");
    return ctx.Transform(flaky_ok, Path().Key(n).NullTo(0).Inc()).status();
  });

  // fanout_fail: every partition receives the record, and every branch throws.
  auto fanout = m.Depot("*fanout", DepotPartitioning::Random());
  m.Stream("fanout_fail")
      .Source(fanout)
      .Each([](TopologyContext& ctx, const Value& v) { ctx.Emit(v); })
      .AllPartitions()
      .Each([](TopologyContext& ctx, const Value& v) {
        throw std::runtime_error("branch on partition " + std::to_string(ctx.partition()) +
                                 " refuses " + v.ToString());
      });

  // slow: n -> sleeps n ms, then marks n done (the step timeout).
  auto slow_depot = m.Depot("*slow", DepotPartitioning::Hash());
  auto slow_done = m.PState("$$slow_done", Schema::Map(Schema::Int64(), Schema::Bool()));
  m.Stream("slow").Source(slow_depot).Each([slow_done](TopologyContext& ctx, const Value& n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(n.as_int()));
    return ctx.Transform(slow_done, Path().Key(n).Set(true)).status();
  });

  // gate: waits while the gate is closed, then stores the record.
  auto gate_depot = m.Depot("*gate", DepotPartitioning::Hash());
  auto gate_passed = m.PState("$$gate_passed", Schema::Map(Schema::Any(), Schema::Bool()));
  m.Stream("gate").Source(gate_depot).Each([gate_passed](TopologyContext& ctx, const Value& v) {
    {
      std::unique_lock lock(gate_mu);
      ++gate_waiting;
      gate_cv.wait_for(lock, std::chrono::seconds(30), [] { return gate_open; });
      --gate_waiting;
    }
    return ctx.Transform(gate_passed, Path().Key(v).Set(true)).status();
  });

  // crash: {k, n} -> hash(k) -> add n to a set (idempotent), count (not idempotent), and
  // append {k, n} to *derived, whose topology adds n to another set.
  auto crash = m.Depot("*crash", DepotPartitioning::Hash(Path().Key("k")));
  auto derived = m.Depot("*derived", DepotPartitioning::NoClientAppends());
  auto crash_sets =
      m.PState("$$crash_sets", Schema::Map(Schema::String(), Schema::Set(Schema::Int64())));
  auto crash_counts = m.PState("$$crash_counts", Schema::Map(Schema::String(), Schema::Int64()));
  auto derived_sets =
      m.PState("$$derived_sets", Schema::Map(Schema::String(), Schema::Set(Schema::Int64())));
  m.Stream("crash")
      .Source(crash)
      .Each([](TopologyContext& ctx, const Value& record) { ctx.Emit(record); })
      .HashPartition([](const Value& record) { return *record.Find("k"); })
      .Each([=](TopologyContext& ctx, const Value& record) -> strata::Status {
        const Value& k = *record.Find("k");
        const Value& n = *record.Find("n");
        auto added = ctx.Transform(crash_sets, Path().Key(k).NullTo(Value::EmptySet()).AddToSet(n));
        if (!added.ok()) return added.status();
        auto counted = ctx.Transform(crash_counts, Path().Key(k).NullTo(0).Inc());
        if (!counted.ok()) return counted.status();
        return ctx.Append(derived, record);
      });
  m.Stream("derived").Source(derived).Each(
      [derived_sets](TopologyContext& ctx, const Value& record) {
        return ctx
            .Transform(
                derived_sets,
                Path().Key(*record.Find("k")).NullTo(Value::EmptySet()).AddToSet(*record.Find("n")))
            .status();
      });

  // typed: records must match a record schema; $$typed[k] = n.
  auto typed = m.Depot("*typed", DepotPartitioning::Hash(Path().Key("k")),
                       Schema::Record({{"k", Schema::String()},
                                       {"n", Schema::Int64()},
                                       {"tags", Schema::List(Schema::String())}}));
  auto typed_values = m.PState("$$typed", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("typed").Source(typed).Each([typed_values](TopologyContext& ctx, const Value& record) {
    const Value* k = record.Find("k");
    const Value* n = record.Find("n");
    if (k == nullptr || n == nullptr)
      return strata::Status::InvalidArgument("*typed needs k and n");
    return ctx.Transform(typed_values, Path().Key(*k).Set(*n)).status();
  });
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int rt_test_flaky_attempts(int64_t n) {
  std::lock_guard lock(attempts_mu);
  auto it = attempts.find(n);
  return it == attempts.end() ? 0 : it->second;
}

extern "C" __attribute__((visibility("default"))) int rt_test_gate_waiting() {
  std::lock_guard lock(gate_mu);
  return gate_waiting;
}

extern "C" __attribute__((visibility("default"))) void rt_test_set_gate(bool open) {
  {
    std::lock_guard lock(gate_mu);
    gate_open = open;
  }
  gate_cv.notify_all();
}

STRATA_MODULE(rt_test, Define)
