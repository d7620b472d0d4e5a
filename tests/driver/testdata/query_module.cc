// driver_queries: a module whose queries exercise every outcome of an invocation over the
// wire (tests/driver/client_test.cc, tests/shell/shell_test.cc).
//
//   *items    hash(key) partitioning; a record is {"key": string, "value": int64}
//   $$items   map<string, int64>: key -> value, kept by the stream topology "store" on the
//             partition HashKey(key) % P
//
// Queries:
//   get(key: string)      the key's partition only: [value] (nil when absent)
//   total()               every partition's sum of values, combined with agg::Sum
//   count()               every partition's number of keys, combined with agg::Sum
//   doubled-total()       2 * total(), by invoking query total from a step
//   echo(a, b)            [[a, b]]: its arguments back
//   fail(message: string) throws std::runtime_error(message)
//   slow(n: int64)        n values, each taking a step that sleeps 5 ms: a short timeout
//                         trips before it ends
//   write()               tries to write $$items, which a query may not
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  using strata::Path;
  using strata::Schema;
  using strata::Status;
  using strata::TopologyContext;
  using strata::Value;

  strata::DepotRef items_depot =
      m.Depot("*items", strata::DepotPartitioning::Hash(Path().Key("key")),
              Schema::Record({{"key", Schema::String()}, {"value", Schema::Int64()}}));
  strata::PStateRef items = m.PState("$$items", Schema::Map(Schema::String(), Schema::Int64()));

  m.Stream("store")
      .Source(items_depot)
      .HashPartition([](const Value& record) {
        const Value* key = record.Find(Value("key"));
        return key != nullptr ? *key : Value();
      })
      .Each([items](TopologyContext& ctx, const Value& record) -> Status {
        const Value* key = record.Find(Value("key"));
        const Value* value = record.Find(Value("value"));
        if (key == nullptr || value == nullptr) {
          return Status::InvalidArgument("an item needs a key and a value: " + record.ToString());
        }
        return ctx.Transform(items, Path().Key(*key).Set(*value)).status();
      });

  m.Query("get")
      .Param("key", Schema::String())
      .HashPartition([](const Value& args) { return args.as_list()[0]; })
      .Each([items](TopologyContext& ctx, const Value& args) -> Status {
        strata::Result<std::vector<Value>> found = ctx.Select(items, Path().Key(args.as_list()[0]));
        if (!found.ok()) return found.status();
        ctx.Emit(found->empty() ? Value() : (*found)[0]);
        return Status::Ok();
      })
      .Origin();

  auto per_partition = [items](bool count) {
    return [items, count](TopologyContext& ctx, const Value&) -> Status {
      strata::Result<std::vector<Value>> values = ctx.Select(items, Path().MapVals());
      if (!values.ok()) return values.status();
      int64_t n = 0;
      for (const Value& v : *values) n += count ? 1 : v.as_int();
      ctx.Emit(Value(n));
      return Status::Ok();
    };
  };
  m.Query("total").AllPartitions().Each(per_partition(false)).Origin().Combine(strata::agg::Sum());
  m.Query("count").AllPartitions().Each(per_partition(true)).Origin().Combine(strata::agg::Sum());

  m.Query("doubled-total").Each([](TopologyContext& ctx, const Value&) -> Status {
    strata::Result<Value> total = ctx.Invoke(strata::QueryRef{"total", ""}, {});
    if (!total.ok()) return total.status();
    ctx.Emit(Value(2 * total->as_int()));
    return Status::Ok();
  });

  m.Query("echo").Param("a").Param("b").Each(
      [](TopologyContext& ctx, const Value& args) { ctx.Emit(args); });

  m.Query("fail")
      .Param("message", Schema::String())
      .Each([](TopologyContext&, const Value& args) -> Status {
        throw std::runtime_error(args.as_list()[0].as_string());
      });

  m.Query("slow")
      .Param("n", Schema::Int64())
      .Each([](TopologyContext& ctx, const Value& args) {
        for (int64_t i = 0; i < args.as_list()[0].as_int(); ++i) ctx.Emit(Value(i));
      })
      .Each([](TopologyContext& ctx, const Value& v) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        ctx.Emit(v);
      });

  m.Query("write")
      .HashPartition([](const Value&) { return Value("x"); })
      .Each([items](TopologyContext& ctx, const Value&) -> Status {
        return ctx.Transform(items, Path().Key("x").Set(Value(1))).status();
      })
      .Origin();
}

}  // namespace

STRATA_MODULE(driver_queries, Define)
