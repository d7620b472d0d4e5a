// The modules of dependency_test (module dependencies), one source built four ways
// (engine/runtime/CMakeLists.txt):
//
//   upstream            (DEPS_UPSTREAM) *events: strings, randomly partitioned; stream
//                       "count" keeps $$counts (event -> occurrences); query "count"(event).
//   upstream_v2         (DEPS_UPSTREAM, DEPS_UPSTREAM_V2) the same without query "count".
//   upstream_cycle      (DEPS_UPSTREAM, DEPS_CYCLE) the same, also reading downstream's
//                       $$seen: an update to it would make the two depend on each other.
//   downstream          (no macro) mirrors upstream's *events: stream "seen" keeps $$seen
//                       (event -> times seen), microbatch "batched" keeps $$batched (first
//                       letter -> events); reads upstream's $$counts and invokes its query
//                       "count" from its query "both"(event) = [seen, counted, invoked];
//                       query "deep"(levels, event) invokes itself `levels` times, then
//                       reads upstream's $$counts at the deepest invocation.
//   downstream_missing  (DEPS_MISSING) module "downstream" asking for what upstream lacks
//                       (*nope, $$nope, query nope) and for a module "absent".
#include <string>

#include "strata/module.h"

namespace {

using strata::Path;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

#ifdef DEPS_UPSTREAM

[[maybe_unused]] const Value& FirstArg(const Value& args) { return args.as_list().at(0); }

void Define(strata::ModuleBuilder& m) {
  auto events = m.Depot("*events", strata::DepotPartitioning::Random(), Schema::String());
  auto counts = m.PState("$$counts", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("count").Source(events).HashPartition().Each(
      [counts](TopologyContext& ctx, const Value& event) -> Status {
        return ctx.Transform(counts, Path().Key(event).Inc()).status();
      });
#ifdef DEPS_CYCLE
  m.MirrorPState("downstream", "$$seen");
#endif
#ifndef DEPS_UPSTREAM_V2
  m.Query("count")
      .Param("event", Schema::String())
      .HashPartition([](const Value& args) { return FirstArg(args); })
      .Each([counts](TopologyContext& ctx, const Value& args) -> Status {
        strata::Result<Value> n = ctx.SelectOne(counts, Path().Key(FirstArg(args)));
        ctx.Emit(n.ok() ? *n : Value(int64_t{0}));
        return Status::Ok();
      })
      .Origin();
#endif
}

#elif defined(DEPS_MISSING)

void Define(strata::ModuleBuilder& m) {
  auto nope = m.MirrorDepot("upstream", "*nope");
  auto absent = m.MirrorDepot("absent", "*events");
  m.MirrorPState("upstream", "$$nope");
  m.MirrorQuery("upstream", "nope");
  auto seen = m.PState("$$seen", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("seen").Source(nope).Source(absent).Each(
      [seen](TopologyContext& ctx, const Value& event) -> Status {
        return ctx.Transform(seen, Path().Key(event).Inc()).status();
      });
}

#else

[[maybe_unused]] const Value& FirstArg(const Value& args) { return args.as_list().at(0); }

void Define(strata::ModuleBuilder& m) {
  auto events = m.MirrorDepot("upstream", "*events");
  auto counts = m.MirrorPState("upstream", "$$counts");
  auto count_query = m.MirrorQuery("upstream", "count");
  auto seen = m.PState("$$seen", Schema::Map(Schema::String(), Schema::Int64()));
  auto batched = m.PState("$$batched", Schema::Map(Schema::String(), Schema::Int64()));
  // Stays on the partition of the record for a step (where its source is), then hops.
  m.Stream("seen")
      .Source(events)
      .Each([](TopologyContext& ctx, const Value& event) -> Status {
        if (ctx.source().partition != ctx.partition()) {
          return Status::Internal("a record of partition " +
                                  std::to_string(ctx.source().partition) + " ran on partition " +
                                  std::to_string(ctx.partition()));
        }
        ctx.Emit(event);
        return Status::Ok();
      })
      .HashPartition()
      .Each([seen](TopologyContext& ctx, const Value& event) -> Status {
        return ctx.Transform(seen, Path().Key(event).Inc()).status();
      });
  m.Microbatch("batched").Source(events).Aggregate(
      batched, [](const Value& event) { return Value(event.as_string().substr(0, 1)); },
      strata::agg::Count());
  m.Query("both")
      .Param("event", Schema::String())
      .HashPartition([](const Value& args) { return FirstArg(args); })
      .Each([seen, counts, count_query](TopologyContext& ctx, const Value& args) -> Status {
        const Value& event = FirstArg(args);
        strata::Result<Value> mine = ctx.SelectOne(seen, Path().Key(event));
        strata::Result<Value> theirs = ctx.SelectOne(counts, Path().Key(event));
        STRATA_ASSIGN_OR_RETURN(Value invoked, ctx.Invoke(count_query, {event}));
        ctx.Emit(Value::ListOf({mine.ok() ? *mine : Value(int64_t{0}),
                                theirs.ok() ? *theirs : Value(int64_t{0}), invoked}));
        return Status::Ok();
      })
      .Origin();
  m.Query("deep")
      .Param("levels", Schema::Int64())
      .Param("event", Schema::String())
      .Each([counts](TopologyContext& ctx, const Value& args) -> Status {
        const int64_t levels = args.as_list().at(0).as_int();
        const Value& event = args.as_list().at(1);
        if (levels > 0) {
          STRATA_ASSIGN_OR_RETURN(Value inner,
                                  ctx.Invoke(strata::QueryRef{"deep"}, {Value(levels - 1), event}));
          ctx.Emit(std::move(inner));
          return Status::Ok();
        }
        strata::Result<Value> theirs = ctx.SelectOne(counts, Path().Key(event).NullTo(0));
        if (!theirs.ok()) return theirs.status();
        ctx.Emit(*theirs);
        return Status::Ok();
      })
      .Combine(strata::agg::Last());
}

#endif

}  // namespace

#ifdef DEPS_UPSTREAM
STRATA_MODULE(upstream, Define)
#else
STRATA_MODULE(downstream, Define)
#endif
