// The query executor (docs/runtime.md, "Queries"): runs queries (ModuleBuilder::Query) for
// Engine::Invoke and for TopologyContext::Invoke, and serves every context's reads of
// another module's PStates (MirrorPState). A peer of the stream and microbatch executors,
// sharing their ops, partitioners and combiners.
//
// A query runs whole on the invoking thread: its values move between partitions as
// function calls, depth first, and every partition's reads use one WiredTiger snapshot
// transaction, taken when the invocation starts (so also each partition's part sees one
// snapshot). Queries write nothing, so they never wait for a task thread and never hold
// one.
//
// Threading: thread-safe; a call runs on the caller's thread with a session of the
// engine's pool (or, nested, its caller's).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "runtime/module_runtime.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/module.h"

namespace strata::runtime {

class EngineImpl;

// Where a read or invocation of a step happens: the session and deadline of the query it
// belongs to (nested calls share its snapshot), or none (a stream or microbatch step, whose
// reads of other modules take a snapshot of their own).
struct QueryScope {
  Session* session = nullptr;
  std::chrono::steady_clock::time_point deadline;
  int depth = 0;  // invocations nested above this one
};

class QueryExecutor {
 public:
  // Queries nested deeper than this (a query invoking a query invoking ...) fail.
  static constexpr int kMaxDepth = 16;

  explicit QueryExecutor(EngineImpl& engine) : engine_(engine) {}

  // Engine::Invoke.
  Result<Value> Invoke(const std::string& module, const std::string& query, std::vector<Value> args,
                       const InvokeOptions& options);
  // TopologyContext::Invoke from a step of module `from` (QueryRef{name} is one of its own
  // queries; another module's must be declared with MirrorQuery). `scope`: the calling
  // query's, or null for a stream or microbatch step.
  Result<Value> InvokeFrom(const ModuleRuntime& from, const QueryRef& ref, std::vector<Value> args,
                           const QueryScope* scope);
  // TopologyContext::Select / SelectOne of a mirror PState (ref.module set) from a step of
  // `from`: on the other module's partition the path's first key hashes to, in `scope`'s
  // snapshot or one of its own.
  Result<std::vector<Value>> SelectMirror(const ModuleRuntime& from, const PStateRef& ref,
                                          const Path& path, const QueryScope* scope);
  Result<Value> SelectOneMirror(const ModuleRuntime& from, const PStateRef& ref, const Path& path,
                                const QueryScope* scope);

 private:
  // Runs `query` of `m` in `scope` (its session has the snapshot transaction open).
  Result<Value> Run(const std::shared_ptr<ModuleRuntime>& m, const QueryDef& query,
                    std::vector<Value> args, const QueryScope& scope);
  // Runs fn(scope) in `outer` when given, else in a new scope with a pooled session and a
  // snapshot transaction, rolled back afterwards.
  template <typename F>
  auto InScope(const QueryScope* outer, std::chrono::milliseconds timeout, F fn)
      -> decltype(fn(std::declval<const QueryScope&>()));
  // Finds mirror PState `ref` of `from`'s declarations and the partition `path` reads, and
  // returns read(pstate, session, partition) in `scope`'s snapshot or one of its own.
  template <typename F>
  auto ReadMirror(const ModuleRuntime& from, const PStateRef& ref, const Path& path,
                  const QueryScope* scope, F read)
      -> decltype(read(std::declval<const PState&>(), std::declval<Session&>(), 0));

  EngineImpl& engine_;
};

// The query `name` of `m`, or kNotFound naming the module's queries.
Result<const QueryDef*> FindQuery(const ModuleRuntime& m, const std::string& name);

// The partition of `m` that a client select of `path` (with `partition_key` when set) reads
// (Engine::Select): 0 for a global PState. kInvalidArgument when neither gives one.
Result<int> SelectPartition(const ModuleRuntime& m, const PState& pstate, const std::string& name,
                            const Path& path, const std::optional<Value>& partition_key);

}  // namespace strata::runtime
