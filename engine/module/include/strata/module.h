// The module SDK: what a module (a plugin, .so) declares — depots, PStates and stream
// topologies — and the context its code runs in. This header and the ones it includes
// (value, status, path, schema) are the whole public face of the engine for module
// authors: no engine internals, no WiredTiger. See docs/modules.md.
//
//   void Define(strata::ModuleBuilder& m) {
//     auto sentences = m.Depot("*sentences", strata::DepotPartitioning::Random(),
//                              strata::Schema::String());  // what every record must be
//     auto counts = m.PState("$$word_counts",
//                            strata::Schema::Map(strata::Schema::String(),
//                            strata::Schema::Int64()));
//     m.Stream("count")
//         .Source(sentences)
//         .Each([](strata::TopologyContext& ctx, const strata::Value& sentence) {
//           for (const std::string& w : SplitWords(sentence.as_string())) ctx.Emit(w);
//         })
//         .HashPartition()  // by the emitted value itself
//         .Each([counts](strata::TopologyContext& ctx, const strata::Value& word) {
//           return ctx.Transform(counts, strata::Path().Key(word).NullTo(0).Inc()).status();
//         });
//   }
//   STRATA_MODULE(wordcount, Define)
//
// Exceptions never cross the plugin boundary: every user function given to the builder
// is wrapped, in the plugin's own code, so that an exception becomes a kUserError Status.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/navigate.h"
#include "strata/path.h"
#include "strata/schema.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// Bumped whenever a type of this header (or one it includes) changes layout or meaning.
inline constexpr int kSdkVersion = 5;

#define STRATA_STRINGIFY_INNER(x) #x
#define STRATA_STRINGIFY(x) STRATA_STRINGIFY_INNER(x)
#ifndef STRATA_SDK_VERSION_FOR_STAMP
#define STRATA_SDK_VERSION_FOR_STAMP 5  // must equal kSdkVersion
#endif
// The ABI stamp: SDK version and the compiler / C++ standard library ABI a module was
// built with. The host refuses a module whose stamp differs from its own.
#define STRATA_ABI_STAMP \
  "strata-sdk/" STRATA_STRINGIFY(STRATA_SDK_VERSION_FOR_STAMP)                     \
  " gcc/" STRATA_STRINGIFY(__GNUC__) " gxx-abi/" STRATA_STRINGIFY(__GXX_ABI_VERSION) \
  " cxx11-abi/" STRATA_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) " std/" STRATA_STRINGIFY(__cplusplus)

// ---- Handles ---------------------------------------------------------------------------

// A depot of this module, as declared by ModuleBuilder::Depot (or MirrorDepot). Plain data.
struct DepotRef {
  std::string name;  // with its leading '*', e.g. "*sentences"
  int index = -1;    // position in ModuleDef::depots
};

// A PState of this module, as declared by ModuleBuilder::PState, or of another module, as
// declared by ModuleBuilder::MirrorPState. Plain data.
struct PStateRef {
  std::string name;    // with its leading "$$", e.g. "$$word_counts"
  int index = -1;      // position in ModuleDef::pstates; -1 for a mirror
  std::string module;  // empty: this module's; else the module of a mirror
};

// A query: QueryRef{"top-words"} is this module's query "top-words"; another module's is
// declared with ModuleBuilder::MirrorQuery. Plain data.
struct QueryRef {
  QueryRef(std::string name, std::string module = {})
      : name(std::move(name)), module(std::move(module)) {}
  std::string name;
  std::string module;  // empty: this module
};

// Identifies the depot record a topology event descends from. In a microbatch topology,
// a value made by Aggregate or EachGroup descends from no one record: {-1, -1, -1}.
struct RecordId {
  int depot = -1;  // index in ModuleDef::depots
  int partition = -1;
  int64_t offset = -1;
};

// ---- What user code sees ----------------------------------------------------------------

// The context of one topology event on one partition, implemented by the runtime. Valid
// only during the step call that received it, on the partition's task thread. All PState
// reads and writes act on the current partition (a global PState: its only partition,
// which only partition 0 may write — route there with Global() first). Writes of one step
// call are committed together, atomically, after the step returns OK; a step that fails
// is rolled back and retried (see docs/modules.md, "Failures").
//
// In a query (ModuleBuilder::Query) the context is read-only: Transform and Append fail,
// SetAckReturn is ignored, source() is {-1, -1, -1}, and a step before the first
// partitioner (or after Origin) runs at the origin, where partition() is -1 and only
// global and mirror PStates can be read. Each partition's reads see one snapshot.
//
// A mirror PState (ModuleBuilder::MirrorPState) is read like a client select: on the
// partition of the other module that the path's first key hashes to (its partition 0 when
// it is global), committed data only, never written.
class TopologyContext {
 public:
  virtual ~TopologyContext() = default;

  virtual int partition() const = 0;
  virtual int num_partitions() const = 0;
  // The depot record this event descends from (for idempotence: e.g. remember applied ids).
  virtual RecordId source() const = 0;

  virtual Result<std::vector<Value>> Select(const PStateRef& pstate, const Path& path) = 0;
  virtual Result<Value> SelectOne(const PStateRef& pstate, const Path& path) = 0;
  // Returns how many places the terminal was applied at.
  virtual Result<int64_t> Transform(const PStateRef& pstate, const Path& path) = 0;
  // Appends a record to a depot of this module (partitioned by the depot's partitioning;
  // a NoClientAppends depot goes to the current partition). It becomes durable with the
  // event's commit and is processed like any appended record.
  virtual Status Append(const DepotRef& depot, Value record) = 0;

  // Sends a value to the next step (through the partitioner, if the next op is one).
  virtual void Emit(Value value) = 0;
  // The value a `processed` appender of the source record receives for this topology
  // (the last one set wins). Ignored in a microbatch topology (its ack return is nil).
  virtual void SetAckReturn(Value value) = 0;
  // Invokes a query of this module (QueryRef{"name"}) or of another one (MirrorQuery) with
  // `args`, and returns its result (Engine::Invoke). It reads committed data in snapshots
  // of its own: not the uncommitted writes of this step. Errors as Engine::Invoke's.
  virtual Result<Value> Invoke(const QueryRef& query, std::vector<Value> args) = 0;
};

// ---- Declarations ---------------------------------------------------------------------

// How a client append chooses a depot partition.
struct DepotPartitioning {
  enum class Kind : uint8_t { kHash, kRandom, kNoClientAppends };
  Kind kind = Kind::kRandom;
  // kHash: partition = HashKey(key_path's single selected value of the record) % P; an
  // empty path hashes the whole record.
  Path key_path;

  // Hash of the value the path selects from the record, e.g. Hash(Path().Key("from")).
  static DepotPartitioning Hash(Path key_path = Path()) {
    return {Kind::kHash, std::move(key_path)};
  }
  static DepotPartitioning Random() { return {Kind::kRandom, Path()}; }
  // Only topologies (and, for a tick depot, the engine) append: client appends are
  // refused with kInvalidArgument.
  static DepotPartitioning NoClientAppends() { return {Kind::kNoClientAppends, Path()}; }
};

// A user function after wrapping: never throws (the wrapper is noexcept; std::function
// has no noexcept signature form, so the guarantee lives in detail::WrapStep/WrapPure).
using StepFn = std::function<Status(TopologyContext& ctx, const Value& input)>;
using KeyFn = std::function<Result<Value>(const Value& input)>;
using PartitionFn = std::function<Result<int64_t>(const Value& input)>;
using PathFn = std::function<Result<Path>(const Value& key)>;
// A microbatch step run once per group: the group's key and its values in batch order.
using GroupFn =
    std::function<Status(TopologyContext& ctx, const Value& key, const std::vector<Value>& values)>;

// How the values of one key fold into the value stored at a PState location, in a
// microbatch Aggregate (docs/modules.md, "Aggregation"). Built with the agg:: functions.
struct Combiner {
  enum class Kind : uint8_t { kCount, kSum, kMin, kMax, kFirst, kLast, kSetUnion, kTopN };
  Kind kind = Kind::kCount;
  KeyFn value_of;     // the value folded (all but kCount); empty: the input itself
  KeyFn sort_key_of;  // kTopN: items kept by descending sort key, ties by ascending id
  KeyFn id_of;        // kTopN: one item per id (a later item replaces an earlier one)
  int64_t n = 0;      // kTopN: how many items are kept, 1..10,000
};

// One operation of a topology's chain.
struct TopologyOp {
  enum class Kind : uint8_t {
    kEach,           // step: runs fn on the current partition
    kHashPartition,  // key_fn (or the value itself) -> HashKey % P
    kAllPartitions,  // every partition receives the value
    kGlobal,         // partition 0
    kShuffle,        // a pseudo-random partition
    kDirect,         // partition_fn -> partition (kInvalidArgument when out of range)
    // Microbatch only:
    kAggregate,  // key_fn -> the key's partition; folds into `pstate` at path_of(key)
    kGroupBy,    // key_fn -> the key's partition; the next op (kEachGroup) runs per key
    kEachGroup,  // group_fn(ctx, key, values), right after kGroupBy
    // Query only:
    kOrigin,   // back to the invoker
    kCombine,  // at the origin: folds every value reaching it into one with `combiner`
  };
  Kind kind = Kind::kEach;
  StepFn fn;
  KeyFn key_fn;
  PartitionFn partition_fn;
  int pstate = -1;    // kAggregate: the PState written (index in ModuleDef::pstates)
  PathFn path_of;     // kAggregate: key -> location; empty: Path().Key(key)
  Combiner combiner;  // kAggregate, kCombine
  GroupFn group_fn;
};

struct DepotDef {
  std::string name;
  DepotPartitioning partitioning;
  // What every record must match (ValidateValue): an append with a record that does not is
  // refused before it enters the log. Any (the default) takes every value. Never subindexed
  // (a record is one value).
  Schema record_schema;
  // > 0: a tick depot (ModuleBuilder::TickDepot) the engine appends to every this many ms.
  int64_t tick_interval_ms = 0;
  // Non-empty: a mirror (ModuleBuilder::MirrorDepot) of depot `name` of module
  // `mirror_of`, whose records this module's topologies consume. Nothing appends to it
  // through this module.
  std::string mirror_of;
};

struct PStateDef {
  std::string name;
  PStateSchema schema;
  // Declared with ModuleBuilder::Migrate: how values stored by an earlier version become
  // values of `schema` (docs/modules.md, "Migrations"). Its function is code of the plugin.
  std::optional<MigrationDef> migration;
};

struct TopologyDef {
  enum class Kind : uint8_t { kStream, kMicrobatch, kQuery };
  std::string name;
  std::vector<int> sources;  // depot indexes
  std::vector<TopologyOp> ops;
  Kind kind = Kind::kStream;
  // A microbatch: the PStates its steps Transform (Writes) and its Aggregates write. It is
  // their only writer: no other topology may Transform them.
  std::vector<int> writes;
};

// A parameter of a query: its name and what an argument must match (ValidateValue).
struct QueryParam {
  std::string name;
  Schema schema;
};

// A query (ModuleBuilder::Query): its chain (kind kQuery, no sources) and parameters.
struct QueryDef {
  TopologyDef topology;
  std::vector<QueryParam> params;
};

// A PState or query of another module that this one uses (MirrorPState, MirrorQuery).
struct MirrorDef {
  std::string module;
  std::string name;
};

// Everything a module declares. Built in the plugin by ModuleBuilder, read by the host.
struct ModuleDef {
  std::string name;
  std::vector<DepotDef> depots;  // mirror depots included (DepotDef::mirror_of)
  std::vector<PStateDef> pstates;
  std::vector<TopologyDef> topologies;  // streams and microbatches
  std::vector<QueryDef> queries;
  std::vector<MirrorDef> mirror_pstates;
  std::vector<MirrorDef> mirror_queries;
};

namespace detail {

// Calls f, turning any exception into a kUserError Status. Instantiated in the plugin.
template <typename F>
Status CallGuarded(const F& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(StatusCode::kUserError, e.what());
  } catch (...) {
    return Status(StatusCode::kUserError, "a non-standard exception was thrown");
  }
}

template <typename F>
StepFn WrapStep(F f) {
  return [f = std::move(f)](TopologyContext& ctx, const Value& in) noexcept -> Status {
    return CallGuarded([&]() -> Status {
      if constexpr (std::is_void_v<
                        std::invoke_result_t<const F&, TopologyContext&, const Value&>>) {
        f(ctx, in);
        return Status::Ok();
      } else {
        return f(ctx, in);
      }
    });
  };
}

template <typename R, typename F>
std::function<Result<R>(const Value&)> WrapPure(F f) {
  return [f = std::move(f)](const Value& in) noexcept -> Result<R> {
    std::optional<Result<R>> out;
    Status st = CallGuarded([&]() -> Status {
      out.emplace(Result<R>(f(in)));
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return std::move(*out);
  };
}

}  // namespace detail

namespace detail {

// The chain shared by stream and microbatch topologies: sources, then steps and
// partitioners. The first op runs on the partition of the source record.
template <typename Self>
class Chain {
 public:
  explicit Chain(TopologyDef* def) : def_(def) {}

  Self& Source(const DepotRef& depot) {
    def_->sources.push_back(depot.index);
    return self();
  }
  // fn(TopologyContext&, const Value&) returning void or Status; emits with ctx.Emit.
  template <typename F>
  Self& Each(F fn) {
    TopologyOp op;
    op.fn = detail::WrapStep(std::move(fn));
    return Add(std::move(op));
  }
  // Emits fn(value).
  template <typename F>
  Self& Map(F fn) {
    return Each([fn = std::move(fn)](TopologyContext& ctx, const Value& v) { ctx.Emit(fn(v)); });
  }
  // Emits the value when pred(value) is true.
  template <typename F>
  Self& Filter(F pred) {
    return Each([pred = std::move(pred)](TopologyContext& ctx, const Value& v) {
      if (pred(v)) ctx.Emit(v);
    });
  }
  // Moves each value to partition HashKey(key_of(value)) % P.
  template <typename F>
  Self& HashPartition(F key_of) {
    TopologyOp op = Op(TopologyOp::Kind::kHashPartition);
    op.key_fn = detail::WrapPure<Value>(std::move(key_of));
    return Add(std::move(op));
  }
  // Moves each value to partition HashKey(value) % P.
  Self& HashPartition() { return Add(Op(TopologyOp::Kind::kHashPartition)); }
  Self& AllPartitions() { return Add(Op(TopologyOp::Kind::kAllPartitions)); }
  Self& Global() { return Add(Op(TopologyOp::Kind::kGlobal)); }
  // A pseudo-random partition (in a microbatch: a function of the batch and the value's
  // position in it, so a re-run or recompute chooses the same one).
  Self& Shuffle() { return Add(Op(TopologyOp::Kind::kShuffle)); }
  // Moves each value to partition partition_of(value) (an int64 in [0, P)).
  template <typename F>
  Self& Direct(F partition_of) {
    TopologyOp op = Op(TopologyOp::Kind::kDirect);
    op.partition_fn = detail::WrapPure<int64_t>(std::move(partition_of));
    return Add(std::move(op));
  }

 protected:
  static TopologyOp Op(TopologyOp::Kind kind) {
    TopologyOp op;
    op.kind = kind;
    return op;
  }
  Self& Add(TopologyOp op) {
    def_->ops.push_back(std::move(op));
    return self();
  }
  Self& self() { return static_cast<Self&>(*this); }
  TopologyDef* def_;
};

template <typename F>
KeyFn WrapKey(F f) {
  return detail::WrapPure<Value>(std::move(f));
}

}  // namespace detail

// Builds one stream topology: record at a time, at-least-once (docs/modules.md).
class StreamTopology : public detail::Chain<StreamTopology> {
 public:
  using Chain::Chain;
};

// The built-in combiners of MicrobatchTopology::Aggregate. `value_of(input)` gives the
// value folded (the input itself when omitted). The stored value before the first batch
// is nil.
namespace agg {
// The default `value_of`: the input itself.
struct Itself {};

namespace internal {
template <typename F>
Combiner Make(Combiner::Kind kind, F value_of) {
  Combiner c;
  c.kind = kind;
  if constexpr (!std::is_same_v<F, Itself>) c.value_of = detail::WrapKey(std::move(value_of));
  return c;
}
}  // namespace internal

// How many values: stored (nil: 0) + the batch's count. An int64.
inline Combiner Count() { return internal::Make(Combiner::Kind::kCount, Itself{}); }
// stored (nil: 0) + the sum of the values: int64s (overflow is an error) or doubles.
template <typename F = Itself>
Combiner Sum(F value_of = {}) {
  return internal::Make(Combiner::Kind::kSum, std::move(value_of));
}
// The least / greatest value in Value order (docs/values.md), the stored one included.
template <typename F = Itself>
Combiner Min(F value_of = {}) {
  return internal::Make(Combiner::Kind::kMin, std::move(value_of));
}
template <typename F = Itself>
Combiner Max(F value_of = {}) {
  return internal::Make(Combiner::Kind::kMax, std::move(value_of));
}
// The first value ever folded: a stored non-nil value stays.
template <typename F = Itself>
Combiner First(F value_of = {}) {
  return internal::Make(Combiner::Kind::kFirst, std::move(value_of));
}
// The last value in batch order replaces the stored one.
template <typename F = Itself>
Combiner Last(F value_of = {}) {
  return internal::Make(Combiner::Kind::kLast, std::move(value_of));
}
// A set: the stored set (nil: empty) with every value added.
template <typename F = Itself>
Combiner SetUnion(F value_of = {}) {
  return internal::Make(Combiner::Kind::kSetUnion, std::move(value_of));
}
// A list of at most n items (the values), by descending sort_key_of(item), ties by
// ascending id_of(item); one item per id, a later one replacing the earlier (so a top-N of
// running totals keeps each key once). Exact while an id's sort key never decreases.
template <typename S, typename I>
Combiner TopN(int64_t n, S sort_key_of, I id_of) {
  Combiner c = internal::Make(Combiner::Kind::kTopN, Itself{});
  c.sort_key_of = detail::WrapKey(std::move(sort_key_of));
  c.id_of = detail::WrapKey(std::move(id_of));
  c.n = n;
  return c;
}
}  // namespace agg

// Builds one microbatch topology: batches of records, exactly-once (docs/modules.md,
// "Microbatch topologies"). The same steps and partitioners as a stream, plus Writes,
// Aggregate and GroupBy / EachGroup.
class MicrobatchTopology : public detail::Chain<MicrobatchTopology> {
 public:
  explicit MicrobatchTopology(TopologyDef* def) : Chain(def) {
    def->kind = TopologyDef::Kind::kMicrobatch;
  }
  // Declares a PState its steps Transform. A microbatch is the only writer of the PStates
  // it writes (Writes and Aggregate targets): a write by any other topology fails.
  MicrobatchTopology& Writes(const PStateRef& pstate) {
    def_->writes.push_back(pstate.index);
    return *this;
  }
  // Folds each value into `pstate` at path_of(key_of(value)) (a Path; Path().Key(key) when
  // omitted) with `combiner`, on the key's partition (HashKey(key) % P; partition 0 for a
  // global PState). The values of one key are combined where they are made before they move
  // (one value per key and batch moves, not one per record). Then the next op receives
  // [key, the value stored after this batch] once per key the batch changed, on the key's
  // partition, in key order.
  template <typename K, typename P>
  MicrobatchTopology& Aggregate(const PStateRef& pstate, K key_of, P path_of, Combiner combiner) {
    TopologyOp op = AggregateOp(pstate, std::move(key_of), std::move(combiner));
    op.path_of = detail::WrapPure<Path>(std::move(path_of));
    return Add(std::move(op));
  }
  template <typename K>
  MicrobatchTopology& Aggregate(const PStateRef& pstate, K key_of, Combiner combiner) {
    return Add(AggregateOp(pstate, std::move(key_of), std::move(combiner)));
  }
  // Groups the values by key_of(value) on the key's partition; EachGroup must follow.
  template <typename K>
  MicrobatchTopology& GroupBy(K key_of) {
    TopologyOp op;
    op.kind = TopologyOp::Kind::kGroupBy;
    op.key_fn = detail::WrapKey(std::move(key_of));
    return Add(std::move(op));
  }
  // fn(TopologyContext&, const Value& key, const std::vector<Value>& values), returning
  // void or Status: once per key of the batch, in key order, with the key's values in
  // batch order. Emits like Each.
  template <typename F>
  MicrobatchTopology& EachGroup(F fn) {
    TopologyOp op;
    op.kind = TopologyOp::Kind::kEachGroup;
    op.group_fn = [fn = std::move(fn)](TopologyContext& ctx, const Value& key,
                                       const std::vector<Value>& values) noexcept -> Status {
      return detail::CallGuarded([&]() -> Status {
        if constexpr (std::is_void_v<std::invoke_result_t<const F&, TopologyContext&, const Value&,
                                                          const std::vector<Value>&>>) {
          fn(ctx, key, values);
          return Status::Ok();
        } else {
          return fn(ctx, key, values);
        }
      });
    };
    return Add(std::move(op));
  }

 private:
  // An Aggregate op into `pstate` (also recorded among the PStates the topology writes).
  template <typename K>
  TopologyOp AggregateOp(const PStateRef& pstate, K key_of, Combiner combiner) {
    TopologyOp op;
    op.kind = TopologyOp::Kind::kAggregate;
    op.key_fn = detail::WrapKey(std::move(key_of));
    op.pstate = pstate.index;
    op.combiner = std::move(combiner);
    def_->writes.push_back(pstate.index);
    return op;
  }
};

// Builds one query: a named, read-only function of the module that clients invoke
// (Engine::Invoke; docs/modules.md, "Queries"). Its chain starts at the origin (the
// invoker) with one value, the list of the arguments; partitioners move values to
// partitions, where steps read PStates; Origin() brings them back. The result is the list
// of the values that reach the end of the chain — or, when a Combine follows the last
// Origin(), one value: what reaches the end after the Combine (nil when nothing does; more
// than one is an error).
//   m.Query("total-money")
//       .AllPartitions()
//       .Each([balances](strata::TopologyContext& ctx, const strata::Value&) {
//         int64_t sum = 0;
//         for (const strata::Value& v : ctx.Select(balances, strata::Path().MapVals()).value())
//           sum += v.as_int();
//         ctx.Emit(sum);
//       })
//       .Origin()
//       .Combine(strata::agg::Sum());
class QueryTopology : private detail::Chain<QueryTopology> {
 public:
  explicit QueryTopology(QueryDef* def) : Chain(&def->topology), query_(def) {
    def->topology.kind = TopologyDef::Kind::kQuery;
  }
  // Declares the next parameter: an invocation must give one argument per parameter, in
  // order, each matching its schema (Any, the default, takes every value).
  QueryTopology& Param(std::string name, Schema schema = Schema::Any()) {
    query_->params.push_back({std::move(name), std::move(schema)});
    return *this;
  }
  using Chain::AllPartitions;
  using Chain::Direct;
  using Chain::Each;
  using Chain::Filter;
  using Chain::Global;
  using Chain::HashPartition;
  using Chain::Map;
  // Moves each value back to the invoker. Every query that uses a partitioner returns with
  // Origin() after its last one.
  QueryTopology& Origin() { return Add(Op(TopologyOp::Kind::kOrigin)); }
  // At the origin: folds all the values that reach it into one value with `combiner` (the
  // agg:: functions; the fold starts from nil, so a Count or Sum of nothing is 0), which
  // it then sends on.
  QueryTopology& Combine(Combiner combiner) {
    TopologyOp op = Op(TopologyOp::Kind::kCombine);
    op.combiner = std::move(combiner);
    return Add(std::move(op));
  }

 private:
  friend class detail::Chain<QueryTopology>;
  QueryDef* query_;
};

// Passed to the module's define function. Names: depots start with '*', PStates with "$$",
// then [A-Za-z0-9_-]+; topologies [A-Za-z0-9_-]+. Errors (duplicates, bad names, a
// topology without source) are reported by the host when it loads the module.
class ModuleBuilder {
 public:
  explicit ModuleBuilder(ModuleDef* def) : def_(def) {}

  // `record_schema`: the shape every record must have, e.g.
  //   m.Depot("*deposits", DepotPartitioning::Hash(Path().Key("account")),
  //           Schema::Record({{"account", Schema::String()}, {"amount", Schema::Int64()}}));
  // Client appends and ctx.Append of a record that does not match are refused
  // (kSchemaViolation naming the path, the expected type and the value). No subindexed
  // parts. The default, Any, takes every value.
  DepotRef Depot(std::string name, DepotPartitioning partitioning,
                 Schema record_schema = Schema::Any()) {
    DepotDef& def = def_->depots.emplace_back();
    def.name = name;
    def.partitioning = std::move(partitioning);
    def.record_schema = std::move(record_schema);
    return {std::move(name), static_cast<int>(def_->depots.size()) - 1};
  }
  // A PState with one partition per module partition.
  PStateRef PState(std::string name, Schema schema) {
    return AddPState(std::move(name), PStateSchema{std::move(schema), false});
  }
  // A PState with a single partition (partition 0), readable from every partition.
  PStateRef GlobalPState(std::string name, Schema schema) {
    return AddPState(std::move(name), PStateSchema{std::move(schema), true});
  }
  // Declares a migration of `pstate` (a PState of this builder), whose root must be a map
  // with values stored one blob each (no subindexed part): fn(old) — old a strata::Value,
  // returning a strata::Value or a Result<Value> — turns a value an earlier version stored
  // under a top-level key into one this version's schema accepts, e.g. an int64 balance
  // into {amount, currency}. It must be idempotent: a value already in the new form comes
  // back unchanged, since reads and transforms apply it to every value until a background
  // pass has rewritten them all. An exception becomes a kUserError of the read, transform
  // or pass. `id` (non-empty) names the migration: a new id starts a new pass. One per
  // PState. A `pstate` not from this builder, or a second migration of one PState, throws
  // std::invalid_argument (the host reports it as a define failure); the host refuses the
  // other mistakes when it loads the module. See docs/modules.md, "Migrations".
  //   m.Migrate(balances, "balance-to-record", [](const strata::Value& old) {
  //     return old.is_int() ? strata::Value::MapOf({{"amount", old}, {"currency", "EUR"}})
  //                         : old;
  //   });
  template <typename F>
  void Migrate(const PStateRef& pstate, std::string id, F fn) {
    if (pstate.index < 0 || static_cast<size_t>(pstate.index) >= def_->pstates.size() ||
        def_->pstates[pstate.index].name != pstate.name) {
      throw std::invalid_argument("Migrate: " + pstate.name +
                                  " is not a PState declared by this module");
    }
    PStateDef& def = def_->pstates[pstate.index];
    if (def.migration) {
      throw std::invalid_argument("Migrate: PState " + def.name + " already has migration \"" +
                                  def.migration->id + "\" (one migration per PState)");
    }
    def.migration = MigrationDef{std::move(id), detail::WrapPure<Value>(std::move(fn))};
  }
  // The returned builder stays valid until the next Stream() or Microbatch() call.
  StreamTopology Stream(std::string name) {
    def_->topologies.emplace_back().name = std::move(name);
    return StreamTopology(&def_->topologies.back());
  }
  // A microbatch topology (exactly-once batches; docs/modules.md). The returned builder
  // stays valid until the next Stream() or Microbatch() call.
  MicrobatchTopology Microbatch(std::string name) {
    def_->topologies.emplace_back().name = std::move(name);
    return MicrobatchTopology(&def_->topologies.back());
  }
  // A query (docs/modules.md, "Queries"). The returned builder stays valid until the next
  // Query() call.
  QueryTopology Query(std::string name) {
    def_->queries.emplace_back().topology.name = std::move(name);
    return QueryTopology(&def_->queries.back());
  }
  // Module dependencies (docs/modules.md, "Module dependencies"): what this module uses of
  // another deployed module. Deploying it while `module` is not deployed (or lacks the
  // name) is refused, and so is destroying `module` or updating it without the name while
  // this one depends on it.
  //
  // Depot `depot` of `module` as a source of this module's topologies: each consuming
  // topology keeps its own progress through its records. This module must have as many
  // partitions as `module`: a record of partition p starts on partition p. Nothing is
  // appended to it through this module.
  DepotRef MirrorDepot(std::string module, std::string depot) {
    DepotDef& def = def_->depots.emplace_back();
    def.name = depot;
    def.partitioning = DepotPartitioning::NoClientAppends();
    def.mirror_of = std::move(module);
    return {std::move(depot), static_cast<int>(def_->depots.size()) - 1};
  }
  // PState `pstate` of `module`, for reads (TopologyContext::Select, SelectOne).
  PStateRef MirrorPState(std::string module, std::string pstate) {
    def_->mirror_pstates.push_back({module, pstate});
    return {std::move(pstate), -1, std::move(module)};
  }
  // Query `query` of `module`, for TopologyContext::Invoke.
  QueryRef MirrorQuery(std::string module, std::string query) {
    def_->mirror_queries.push_back({module, query});
    return {std::move(query), std::move(module)};
  }
  // A tick depot: the engine appends to its partition 0, every `interval_ms` (10 ms to one
  // day), the time in ms since the epoch as an int64, strictly increasing. Time enters
  // topologies only this way, so replays and recomputes see the same times. No client
  // appends. After a stop, ticks resume at the next interval; missed ones are not made up.
  DepotRef TickDepot(std::string name, int64_t interval_ms) {
    DepotRef ref = Depot(std::move(name), DepotPartitioning::NoClientAppends(), Schema::Int64());
    def_->depots.back().tick_interval_ms = interval_ms;
    return ref;
  }

 private:
  PStateRef AddPState(std::string name, PStateSchema schema) {
    def_->pstates.push_back({name, std::move(schema), std::nullopt});
    return {std::move(name), static_cast<int>(def_->pstates.size()) - 1, {}};
  }
  ModuleDef* def_;
};

// ---- The plugin entry point ---------------------------------------------------------------

// Returned by a module's exported `strata_module_entry_v1`. The host reads abi_stamp (a
// plain C string, readable whatever the module's C++ ABI) before anything else. It points
// at the module's ABI note (STRATA_DETAIL_ABI_NOTE), so both carry the same stamp.
struct ModuleEntryV1 {
  const char* abi_stamp;
  const char* name;
  // Fills *def. Never throws: returns false with *error set on failure.
  bool (*define)(ModuleDef* def, std::string* error) noexcept;
};

}  // namespace strata

// The ABI note of module NAME: the bytes STRATA_ABI_STAMP, NUL, NAME, NUL in the ELF section
// ".strata_abi" of the plugin file. The host reads it from the file, before dlopen maps the
// plugin and runs its static initialisers, and refuses a module without it or with another
// stamp. `used` keeps the compiler from dropping it; the entry point's reference to it keeps
// the linker's --gc-sections from dropping it. Part of STRATA_MODULE; not for direct use.
#define STRATA_DETAIL_ABI_NOTE(NAME)                                                         \
  __attribute__((section(".strata_abi"), used)) static const char strata_module_abi_note[] = \
      STRATA_ABI_STAMP "\0" #NAME;

// Declares the module NAME ([A-Za-z0-9_-]+) whose declarations DEFINE_FN
// (void(strata::ModuleBuilder&)) makes. Exactly once per plugin.
#define STRATA_MODULE(NAME, DEFINE_FN)                                                             \
  STRATA_DETAIL_ABI_NOTE(NAME)                                                                     \
  extern "C" __attribute__((visibility("default"))) const ::strata::ModuleEntryV1*                 \
  strata_module_entry_v1() {                                                                       \
    static const ::strata::ModuleEntryV1 entry{                                                    \
        strata_module_abi_note, #NAME, [](::strata::ModuleDef* def, std::string* error) noexcept { \
          ::strata::Status st = ::strata::detail::CallGuarded([&]() -> ::strata::Status {          \
            def->name = #NAME;                                                                     \
            ::strata::ModuleBuilder builder(def);                                                  \
            DEFINE_FN(builder);                                                                    \
            return ::strata::Status::Ok();                                                         \
          });                                                                                      \
          if (!st.ok()) *error = st.message();                                                     \
          return st.ok();                                                                          \
        }};                                                                                        \
    return &entry;                                                                                 \
  }
