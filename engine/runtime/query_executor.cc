// The query executor (query_executor.h).
#include "runtime/query_executor.h"

#include <algorithm>
#include <map>
#include <utility>

#include "runtime/combiners.h"
#include "runtime/engine_impl.h"
#include "runtime/partitioning.h"
#include "runtime/pooled_session.h"
#include "strata/schema.h"

namespace strata::runtime {
namespace {

constexpr int kOrigin = -1;  // the partition of a value at the origin

std::string QueryName(const ModuleRuntime& m, const QueryDef& query) {
  return "query " + m.name + "/" + query.topology.name;
}

// One invocation of one query: its values move through the ops depth first; a Combine
// collects until everything upstream has run.
class QueryRun;

// The read-only TopologyContext of one step call of a query.
class QueryContext final : public TopologyContext {
 public:
  QueryContext(QueryRun& run, int partition, std::vector<Value>* emitted)
      : run_(run), partition_(partition), emitted_(emitted) {}

  int partition() const override { return partition_; }
  int num_partitions() const override;
  RecordId source() const override { return {}; }
  Result<std::vector<Value>> Select(const PStateRef& ref, const Path& path) override;
  Result<Value> SelectOne(const PStateRef& ref, const Path& path) override;
  Result<int64_t> Transform(const PStateRef& ref, const Path&) override {
    return ReadOnly("transform " + ref.name);
  }
  Status Append(const DepotRef& ref, Value) override { return ReadOnly("append to " + ref.name); }
  void Emit(Value value) override { emitted_->push_back(std::move(value)); }
  void SetAckReturn(Value) override {}
  Result<Value> Invoke(const QueryRef& query, std::vector<Value> args) override;

 private:
  Status ReadOnly(const std::string& what) const;
  // The local PState `ref` names and the partition this step reads of it.
  Result<std::pair<const PState*, int>> Local(const PStateRef& ref) const;

  QueryRun& run_;
  const int partition_;
  std::vector<Value>* emitted_;
};

class QueryRun {
 public:
  QueryRun(QueryExecutor& executor, const std::shared_ptr<ModuleRuntime>& m, const QueryDef& query,
           const QueryScope& scope)
      : executor_(executor),
        m_(m),
        query_(query),
        ops_(query.topology.ops),
        scope_(scope),
        folds_(ops_.size()) {}

  Result<Value> Run(Value args) {
    STRATA_RETURN_IF_ERROR(Feed(0, kOrigin, std::move(args)));
    // Everything upstream of a Combine has run once the feeds above returned; a Combine's
    // output can only reach later ops, so they are released in op order.
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (ops_[i].kind != TopologyOp::Kind::kCombine) continue;
      STRATA_RETURN_IF_ERROR(FlushPending(i));
      Value folded = folds_[i] ? std::move(*folds_[i]) : CombinerEmpty(ops_[i].combiner);
      folds_[i].reset();
      STRATA_RETURN_IF_ERROR(Feed(i + 1, kOrigin, std::move(folded)));
    }
    if (!SingleValued()) return Value(std::move(results_));
    if (results_.size() > 1) {
      return Status::UserError(QueryName(*m_, query_) +
                               " combines into one value, but its steps "
                               "after the Combine emitted " +
                               std::to_string(results_.size()) +
                               ": emit one value there (or none, for nil)");
    }
    return results_.empty() ? Value() : std::move(results_[0]);
  }

  // Whether the query answers one value: a Combine follows its last Origin (or, without
  // one, is anywhere in the chain); else it answers the list of what reaches its end.
  bool SingleValued() const {
    bool single = false;
    for (const TopologyOp& op : ops_) {
      if (op.kind == TopologyOp::Kind::kOrigin) single = false;
      if (op.kind == TopologyOp::Kind::kCombine) single = true;
    }
    return single;
  }

  const ModuleRuntime& module() const { return *m_; }
  // The error a step's ctx.Invoke returned: if the step fails with it, it is not named again.
  void NoteNestedError(const Status& st) { nested_error_ = st.message(); }
  const QueryScope& scope() const { return scope_; }
  QueryExecutor& executor() { return executor_; }
  const std::string& name() const { return query_.topology.name; }

 private:
  Status Failed(size_t i, const Status& st) const {
    // Timeouts and storage failures keep their code; the module's own errors are its
    // query's failure.
    const StatusCode code =
        st.code() == StatusCode::kTimeout || st.code() == StatusCode::kIOError ||
                st.code() == StatusCode::kCorruption || st.code() == StatusCode::kAborted
            ? st.code()
            : StatusCode::kUserError;
    // An error of a query this one invoked (passed on by the step) names that query and
    // op already.
    if (nested_error_ && st.message() == *nested_error_) return Status(code, st.message());
    return Status(code, QueryName(*m_, query_) + ", op " + std::to_string(i) + ": " + st.message());
  }
  Status CheckDeadline(size_t i) const {
    if (std::chrono::steady_clock::now() < scope_.deadline) return Status::Ok();
    return Status::Timeout(QueryName(*m_, query_) + " did not finish within its timeout (at op " +
                           std::to_string(i) + ")");
  }

  // Runs ops [i, ...) with `value` on `partition` (kOrigin at the origin).
  Status Feed(size_t i, int partition, Value value) {
    if (i == ops_.size()) {
      results_.push_back(std::move(value));
      return Status::Ok();
    }
    const TopologyOp& op = ops_[i];
    const int parts = m_->partitions;
    switch (op.kind) {
      case TopologyOp::Kind::kEach: {
        STRATA_RETURN_IF_ERROR(CheckDeadline(i));
        std::vector<Value> emitted;
        QueryContext ctx(*this, partition, &emitted);
        if (Status st = op.fn(ctx, value); !st.ok()) return Failed(i, st);
        for (Value& v : emitted) STRATA_RETURN_IF_ERROR(Feed(i + 1, partition, std::move(v)));
        return Status::Ok();
      }
      case TopologyOp::Kind::kHashPartition: {
        if (!op.key_fn) return Feed(i + 1, HashPartition(value, parts), std::move(value));
        Result<Value> key = op.key_fn(value);
        if (!key.ok()) return Failed(i, key.status());
        return Feed(i + 1, HashPartition(*key, parts), std::move(value));
      }
      case TopologyOp::Kind::kAllPartitions:
        for (int p = 0; p < parts; ++p) {
          STRATA_RETURN_IF_ERROR(CheckDeadline(i));
          STRATA_RETURN_IF_ERROR(Feed(i + 1, p, p + 1 == parts ? std::move(value) : value));
        }
        return Status::Ok();
      case TopologyOp::Kind::kGlobal:
        return Feed(i + 1, 0, std::move(value));
      case TopologyOp::Kind::kShuffle:
        return Feed(i + 1, RandomPartition(parts), std::move(value));
      case TopologyOp::Kind::kDirect: {
        Result<int64_t> p = op.partition_fn(value);
        if (!p.ok()) return Failed(i, p.status());
        if (*p < 0 || *p >= parts) {
          return Failed(i, Status::InvalidArgument("direct chose partition " + std::to_string(*p) +
                                                   ", outside [0, " + std::to_string(parts) + ")"));
        }
        return Feed(i + 1, static_cast<int>(*p), std::move(value));
      }
      case TopologyOp::Kind::kOrigin:
        return Feed(i + 1, kOrigin, std::move(value));
      case TopologyOp::Kind::kCombine: {
        if (Batched(op.combiner)) {
          // A top-N or set union merges many values at once: one sort, not one per value.
          Result<Value> item = CombinerInput(op.combiner, std::move(value));
          if (!item.ok()) return Failed(i, item.status());
          Value::List& pending = pending_[i];
          pending.push_back(std::move(item).value());
          if (pending.size() >= std::max<size_t>(1024, 2 * static_cast<size_t>(op.combiner.n))) {
            return FlushPending(i);
          }
          return Status::Ok();
        }
        Result<Value> partial = CombinerPartial(op.combiner, value);
        if (!partial.ok()) return Failed(i, partial.status());
        if (!folds_[i]) {
          folds_[i] = std::move(partial).value();
          return Status::Ok();
        }
        Result<Value> merged = CombinerMerge(op.combiner, *folds_[i], *partial);
        if (!merged.ok()) return Failed(i, merged.status());
        folds_[i] = std::move(merged).value();
        return Status::Ok();
      }
      case TopologyOp::Kind::kAggregate:  // refused by the loader
      case TopologyOp::Kind::kGroupBy:
      case TopologyOp::Kind::kEachGroup:
        break;
    }
    return Status::Internal(QueryName(*m_, query_) + ": op " + std::to_string(i) +
                            " has a kind a query cannot run");
  }

  static bool Batched(const Combiner& c) {
    return c.kind == Combiner::Kind::kTopN || c.kind == Combiner::Kind::kSetUnion;
  }
  // Merges the items (top-N) or elements (set union) waiting at Combine op i into its fold.
  Status FlushPending(size_t i) {
    Value::List& pending = pending_[i];
    if (pending.empty()) return Status::Ok();
    const Combiner& c = ops_[i].combiner;
    Value later = c.kind == Combiner::Kind::kSetUnion ? Value::SetOf(std::move(pending))
                                                      : Value(std::move(pending));
    pending.clear();
    Result<Value> merged = CombinerMerge(c, folds_[i] ? *folds_[i] : CombinerEmpty(c), later);
    if (!merged.ok()) return Failed(i, merged.status());
    folds_[i] = std::move(merged).value();
    return Status::Ok();
  }

  QueryExecutor& executor_;
  std::shared_ptr<ModuleRuntime> m_;
  const QueryDef& query_;
  const std::vector<TopologyOp>& ops_;
  const QueryScope& scope_;
  std::vector<std::optional<Value>> folds_;  // by op index: a Combine's fold so far
  std::map<size_t, Value::List> pending_;    // by op index: a batched Combine's partials
  std::optional<std::string> nested_error_;  // the last error of an invoked query
  std::vector<Value> results_;
};

int QueryContext::num_partitions() const { return run_.module().partitions; }

Status QueryContext::ReadOnly(const std::string& what) const {
  return Status::InvalidArgument("query " + run_.name() + " tried to " + what +
                                 ": queries are read-only");
}

Result<std::pair<const PState*, int>> QueryContext::Local(const PStateRef& ref) const {
  STRATA_ASSIGN_OR_RETURN(const PState* pstate, PStateOf(run_.module(), ref));
  if (pstate->schema().global) return std::make_pair(pstate, 0);
  if (partition_ == kOrigin) {
    return Status::InvalidArgument(
        "query " + run_.name() + " reads " + ref.name +
        " at the origin, which has no partition: move there first (HashPartition, "
        "AllPartitions, Global or Direct); only global and mirror PStates are read at the origin");
  }
  return std::make_pair(pstate, partition_);
}

Result<std::vector<Value>> QueryContext::Select(const PStateRef& ref, const Path& path) {
  if (!ref.module.empty()) {
    return run_.executor().SelectMirror(run_.module(), ref, path, &run_.scope());
  }
  STRATA_ASSIGN_OR_RETURN(auto local, Local(ref));
  return local.first->Select(*run_.scope().session, local.second, path);
}

Result<Value> QueryContext::SelectOne(const PStateRef& ref, const Path& path) {
  if (!ref.module.empty()) {
    return run_.executor().SelectOneMirror(run_.module(), ref, path, &run_.scope());
  }
  STRATA_ASSIGN_OR_RETURN(auto local, Local(ref));
  return local.first->SelectOne(*run_.scope().session, local.second, path);
}

Result<Value> QueryContext::Invoke(const QueryRef& query, std::vector<Value> args) {
  Result<Value> result =
      run_.executor().InvokeFrom(run_.module(), query, std::move(args), &run_.scope());
  if (!result.ok()) run_.NoteNestedError(result.status());
  return result;
}

// Whether `from` declared `module`'s `name` with MirrorPState / MirrorQuery.
bool Declared(const std::vector<MirrorDef>& mirrors, const std::string& module,
              const std::string& name) {
  for (const MirrorDef& mirror : mirrors) {
    if (mirror.module == module && mirror.name == name) return true;
  }
  return false;
}

Status CheckArgs(const ModuleRuntime& m, const QueryDef& query, const std::vector<Value>& args) {
  const std::vector<QueryParam>& params = query.params;
  if (args.size() != params.size()) {
    std::string names;
    for (const QueryParam& p : params) names += (names.empty() ? "" : ", ") + p.name;
    return Status::InvalidArgument(QueryName(m, query) + " takes " + std::to_string(params.size()) +
                                   " argument" + (params.size() == 1 ? "" : "s") + " (" + names +
                                   "), not " + std::to_string(args.size()));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string where = QueryName(m, query) + ": argument " + std::to_string(i + 1) + " (" +
                              params[i].name + ", " + params[i].schema.ToString() + ")";
    STRATA_RETURN_IF_ERROR(ValidateValue(params[i].schema, args[i], where));
  }
  return Status::Ok();
}

}  // namespace

Result<const QueryDef*> FindQuery(const ModuleRuntime& m, const std::string& name) {
  std::string names;
  for (const QueryDef& query : m.def->queries) {
    if (query.topology.name == name) return &query;
    names += (names.empty() ? "" : ", ") + query.topology.name;
  }
  return Status::NotFound(
      "module " + m.name + " has no query " + name +
      (names.empty() ? " (it declares none)" : " (its queries: " + names + ")"));
}

Result<int> SelectPartition(const ModuleRuntime& m, const PState& pstate, const std::string& name,
                            const Path& path, const std::optional<Value>& partition_key) {
  if (pstate.schema().global) return 0;
  if (partition_key) return HashPartition(*partition_key, m.partitions);
  if (!path.navigators().empty() && (path.navigators()[0].kind == Navigator::Kind::kKey ||
                                     path.navigators()[0].kind == Navigator::Kind::kMust)) {
    return HashPartition(path.navigators()[0].keys[0], m.partitions);
  }
  return Status::InvalidArgument("selecting " + path.ToString() + " from " + name +
                                 " needs a partition: give a partition key or start the path "
                                 "with key(...)");
}

template <typename F>
auto QueryExecutor::InScope(const QueryScope* outer, std::chrono::milliseconds timeout, F fn)
    -> decltype(fn(std::declval<const QueryScope&>())) {
  if (outer != nullptr) {
    if (outer->depth >= kMaxDepth) {
      return Status::InvalidArgument("queries nest deeper than " + std::to_string(kMaxDepth) +
                                     " invocations (a query invoking itself without end?)");
    }
    QueryScope nested = *outer;
    ++nested.depth;
    return fn(nested);
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, engine_.TakeSession());
  PooledSession session(std::move(taken), [this](std::unique_ptr<Session> s) {
    engine_.ReturnSession(std::move(s));
  });
  const QueryScope scope{session.get(), std::chrono::steady_clock::now() + timeout, 0};
  return InSnapshot(*session.get(), [&] { return fn(scope); });
}

Result<Value> QueryExecutor::Invoke(const std::string& module, const std::string& query,
                                    std::vector<Value> args, const InvokeOptions& options) {
  if (options.timeout_ms < 1 || options.timeout_ms > 3'600'000) {
    return Status::InvalidArgument("a query timeout must be 1 to 3600000 ms, not " +
                                   std::to_string(options.timeout_ms));
  }
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> m, engine_.Find(module));
  STRATA_ASSIGN_OR_RETURN(const QueryDef* def, FindQuery(*m, query));
  STRATA_RETURN_IF_ERROR(CheckArgs(*m, *def, args));
  return InScope(nullptr, std::chrono::milliseconds(options.timeout_ms),
                 [&](const QueryScope& scope) { return Run(m, *def, std::move(args), scope); });
}

Result<Value> QueryExecutor::InvokeFrom(const ModuleRuntime& from, const QueryRef& ref,
                                        std::vector<Value> args, const QueryScope* scope) {
  std::shared_ptr<ModuleRuntime> m;
  if (ref.module.empty() || ref.module == from.name) {
    m = std::const_pointer_cast<ModuleRuntime>(from.shared_from_this());
  } else {
    if (!Declared(from.def->mirror_queries, ref.module, ref.name)) {
      return Status::InvalidArgument("module " + from.name + " invokes query " + ref.module + "/" +
                                     ref.name + " without declaring it: add m.MirrorQuery(\"" +
                                     ref.module + "\", \"" + ref.name + "\")");
    }
    STRATA_ASSIGN_OR_RETURN(m, engine_.Find(ref.module));
  }
  STRATA_ASSIGN_OR_RETURN(const QueryDef* def, FindQuery(*m, ref.name));
  STRATA_RETURN_IF_ERROR(CheckArgs(*m, *def, args));
  return InScope(scope, std::chrono::milliseconds(InvokeOptions{}.timeout_ms),
                 [&](const QueryScope& s) { return Run(m, *def, std::move(args), s); });
}

Result<Value> QueryExecutor::Run(const std::shared_ptr<ModuleRuntime>& m, const QueryDef& query,
                                 std::vector<Value> args, const QueryScope& scope) {
  QueryRun run(*this, m, query, scope);
  return run.Run(Value(std::move(args)));
}

template <typename F>
auto QueryExecutor::ReadMirror(const ModuleRuntime& from, const PStateRef& ref, const Path& path,
                               const QueryScope* scope, F read)
    -> decltype(read(std::declval<const PState&>(), std::declval<Session&>(), 0)) {
  if (!Declared(from.def->mirror_pstates, ref.module, ref.name)) {
    return Status::InvalidArgument("module " + from.name + " reads PState " + ref.module + "/" +
                                   ref.name + " without declaring it: add m.MirrorPState(\"" +
                                   ref.module + "\", \"" + ref.name + "\")");
  }
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> m, engine_.Find(ref.module));
  STRATA_ASSIGN_OR_RETURN(int index, engine_.FindPState(*m, ref.name));
  const PState& pstate = *m->pstates[index];
  Result<int> partition = SelectPartition(*m, pstate, ref.name, path, std::nullopt);
  if (!partition.ok()) {
    return Status::InvalidArgument("reading " + path.ToString() + " of mirror PState " +
                                   ref.module + "/" + ref.name +
                                   " needs a partition: start the path with key(...), whose key "
                                   "chooses the partition of " +
                                   ref.module);
  }
  // In a query, a read of its snapshot (not an invocation: the nesting limit is not its).
  if (scope != nullptr) return read(pstate, *scope->session, *partition);
  return InScope(nullptr, std::chrono::milliseconds(InvokeOptions{}.timeout_ms),
                 [&](const QueryScope& s) { return read(pstate, *s.session, *partition); });
}

Result<std::vector<Value>> QueryExecutor::SelectMirror(const ModuleRuntime& from,
                                                       const PStateRef& ref, const Path& path,
                                                       const QueryScope* scope) {
  return ReadMirror(from, ref, path, scope, [&](const PState& pstate, Session& session, int p) {
    return pstate.Select(session, p, path);
  });
}

Result<Value> QueryExecutor::SelectOneMirror(const ModuleRuntime& from, const PStateRef& ref,
                                             const Path& path, const QueryScope* scope) {
  return ReadMirror(from, ref, path, scope, [&](const PState& pstate, Session& session, int p) {
    return pstate.SelectOne(session, p, path);
  });
}

}  // namespace strata::runtime
