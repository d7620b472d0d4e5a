// The module of query_test ("qtest"): a stream topology fills a partitioned map and a
// global counter; queries read them in every way a query can (docs/modules.md, "Queries").
//
//   *items     hash(key): {"key": s, "value": int}
//   $$values   map<string, int64>: key -> value (the last one appended)
//   $$count    global map<string, int64>: "items" -> records applied
//
// Queries:
//   get(key)          HashPartition on the key, reads its value; one partition.
//   sum()             AllPartitions, each partition's sum, Combine(agg::Sum()).
//   top(n)            AllPartitions, every [key, value], Combine(agg::TopN(100, ...)),
//                     then trimmed to n at the origin.
//   keys-over(min)    AllPartitions, the keys whose value is > min: the list of them.
//   count()           the global counter, read at the origin.
//   sum-twice()       invokes sum() and doubles it.
//   throws()          a step that throws.
//   writes()          a step that tries to write.
//   slow(ms)          sleeps `ms` ms on each partition (timeouts).
//   at-origin()       reads $$values at the origin (refused).
//   forever()         invokes itself (the nesting limit).
#include <chrono>
#include <stdexcept>
#include <thread>

#include "strata/module.h"

namespace {

using strata::Path;
using strata::Schema;
using strata::TopologyContext;
using strata::Value;
using strata::agg::Sum;
using strata::agg::TopN;

void Define(strata::ModuleBuilder& m) {
  auto items = m.Depot("*items", strata::DepotPartitioning::Hash(Path().Key("key")),
                       Schema::Record({{"key", Schema::String()}, {"value", Schema::Int64()}}));
  auto values = m.PState("$$values", Schema::Map(Schema::String(), Schema::Int64()));
  auto count = m.GlobalPState("$$count", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("apply")
      .Source(items)
      .Each([values](TopologyContext& ctx, const Value& r) {
        const Value& key = *r.Find(Value("key"));
        ctx.Transform(values, Path().Key(key).Set(*r.Find(Value("value")))).value();
        ctx.Emit(r);
      })
      .Global()
      .Each([count](TopologyContext& ctx, const Value&) {
        ctx.Transform(count, Path().Key("items").NullTo(0).Inc()).value();
      });

  m.Query("get")
      .Param("key", Schema::String())
      .HashPartition([](const Value& args) { return args.as_list()[0]; })
      .Each([values](TopologyContext& ctx, const Value& args) {
        ctx.Emit(ctx.SelectOne(values, Path().Key(args.as_list()[0])).value());
      })
      .Origin()
      .Combine(strata::agg::Last());
  m.Query("sum")
      .AllPartitions()
      .Each([values](TopologyContext& ctx, const Value&) {
        int64_t sum = 0;
        for (const Value& v : ctx.Select(values, Path().MapVals()).value()) sum += v.as_int();
        ctx.Emit(sum);
      })
      .Origin()
      .Combine(Sum());
  m.Query("top")
      .Param("n", Schema::Int64())
      .AllPartitions()
      .Each([values](TopologyContext& ctx, const Value& args) {
        for (const Value& entry : ctx.Select(values, Path().All()).value()) {
          ctx.Emit(Value::ListOf({entry.as_list()[0], entry.as_list()[1], args.as_list()[0]}));
        }
      })
      .Origin()
      .Combine(TopN(
          100, [](const Value& e) { return e.as_list()[1]; },
          [](const Value& e) { return e.as_list()[0]; }))
      .Each([](TopologyContext& ctx, const Value& top) {
        Value::List out;
        for (const Value& e : top.as_list()) {
          if (static_cast<int64_t>(out.size()) == e.as_list()[2].as_int()) break;
          out.push_back(Value::ListOf({e.as_list()[0], e.as_list()[1]}));
        }
        ctx.Emit(Value(std::move(out)));
      });
  m.Query("keys-over")
      .Param("min", Schema::Int64())
      .AllPartitions()
      .Each([values](TopologyContext& ctx, const Value& args) {
        for (const Value& entry : ctx.Select(values, Path().All()).value()) {
          if (entry.as_list()[1].as_int() > args.as_list()[0].as_int())
            ctx.Emit(entry.as_list()[0]);
        }
      })
      .Origin();
  m.Query("count")
      .Each([count](TopologyContext& ctx, const Value&) {
        ctx.Emit(ctx.SelectOne(count, Path().Key("items").NullTo(0)).value());
      })
      .Combine(strata::agg::Last());
  m.Query("sum-twice")
      .Each([](TopologyContext& ctx, const Value&) {
        ctx.Emit(ctx.Invoke(strata::QueryRef{"sum"}, {}).value().as_int() * 2);
      })
      .Combine(strata::agg::Last());
  m.Query("throws").Each(
      [](TopologyContext&, const Value&) -> void { throw std::runtime_error("no answer today"); });
  m.Query("writes")
      .Global()
      .Each([count](TopologyContext& ctx, const Value&) {
        return ctx.Transform(count, Path().Key("items").Set(0)).status();
      })
      .Origin();
  m.Query("slow")
      .Param("ms", Schema::Int64())
      .AllPartitions()
      .Each([](TopologyContext& ctx, const Value& args) {
        std::this_thread::sleep_for(std::chrono::milliseconds(args.as_list()[0].as_int()));
        ctx.Emit(ctx.partition());
      })
      .Origin();
  m.Query("at-origin").Each([values](TopologyContext& ctx, const Value&) {
    return ctx.Select(values, Path().Key("a")).status();
  });
  m.Query("forever").Each([](TopologyContext& ctx, const Value&) {
    return ctx.Invoke(strata::QueryRef{"forever"}, {}).status();
  });
}

}  // namespace

STRATA_MODULE(qtest, Define)
