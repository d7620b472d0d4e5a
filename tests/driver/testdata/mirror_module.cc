// driver_mirror: a module that depends on driver_queries (query_module.cc) — it reads its
// PState $$items and invokes its query total — for the wire's ModuleInfo.depends_on and a
// query that crosses modules (tests/driver/client_test.cc, tests/shell/shell_test.cc).
//
//   item(key: string)   driver_queries' $$items at key, read as a mirror: [value]
//   total-of-items()    driver_queries' query total, invoked from a step: [total]
#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  using strata::Path;
  using strata::Schema;
  using strata::Status;
  using strata::TopologyContext;
  using strata::Value;

  strata::PStateRef items = m.MirrorPState("driver_queries", "$$items");
  strata::QueryRef total = m.MirrorQuery("driver_queries", "total");

  m.Query("item")
      .Param("key", Schema::String())
      .Each([items](TopologyContext& ctx, const Value& args) -> Status {
        strata::Result<std::vector<Value>> found = ctx.Select(items, Path().Key(args.as_list()[0]));
        if (!found.ok()) return found.status();
        ctx.Emit(found->empty() ? Value() : (*found)[0]);
        return Status::Ok();
      });

  m.Query("total-of-items").Each([total](TopologyContext& ctx, const Value&) -> Status {
    strata::Result<Value> result = ctx.Invoke(total, {});
    if (!result.ok()) return result.status();
    ctx.Emit(*result);
    return Status::Ok();
  });
}

}  // namespace

STRATA_MODULE(driver_mirror, Define)
