// A small module: counts greetings per name, hash-partitioned by name.
#include <strata/module.h>

namespace {

void Define(strata::ModuleBuilder& m) {
  using strata::Schema;
  auto names = m.Depot("*names", strata::DepotPartitioning::Random());
  auto greetings = m.PState("$$greetings", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("greet")
      .Source(names)
      .Filter([](const strata::Value& v) { return v.is_string(); })
      .HashPartition()
      .Each([greetings](strata::TopologyContext& ctx, const strata::Value& name) {
        auto greeted = ctx.Transform(greetings, strata::Path().Key(name).NullTo(0).Inc());
        if (!greeted.ok()) return greeted.status();
        ctx.SetAckReturn("hello, " + name.as_string());
        return strata::Status::Ok();
      });
}

}  // namespace

STRATA_MODULE(greeter, Define)
