// The stream topology executor (docs/runtime.md, "Topology execution: event groups",
// "Failures and retries"): runs the events of stream topologies on the task threads that own
// their partitions — a step's ops in a StepContext, consecutive events of a thread in one
// event group (one transaction), the step timeout, retries, and failures recorded in
// meta.failures. After a group commits it releases each member's effects (hops, depot
// appends, ack return) and completes its event in the ack tree.
//
// It is one executor among the engine's: a microbatch coordinator or query execution would
// sit beside it, driven by the same task threads, append path and ack tree.
//
// Threading: every method runs on the task thread given to it (the owner of the event's
// partition); a thread's event group is touched only by that thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "runtime/module_runtime.h"
#include "runtime/outbox.h"
#include "runtime/partitioning.h"
#include "runtime/query_executor.h"
#include "runtime/subscriptions.h"
#include "runtime/topology_append.h"
#include "strata/module.h"
#include "strata/value_codec.h"

namespace strata::runtime {

class EngineImpl;

// A topology event: run ops [op, ...) of the run's topology on a partition with `input`.
struct Event {
  std::shared_ptr<TopologyRun> run;
  int op = 0;
  Value input;
};

// The TopologyContext of one attempt of one event. Everything it would send elsewhere
// (hops, depot appends, the ack return) is buffered and released only after the step's
// transaction commits, so a retried attempt never duplicates them.
class StepContext final : public TopologyContext {
 public:
  struct Hop {
    int partition;
    int op;
    Value value;
  };
  struct PendingAppend {
    int depot;
    int partition;
    AppendItem item;
  };

  // `grouped`: the step joins its task thread's event group, whose transaction the first
  // step that touches a PState begins and the group's settling commits.
  StepContext(ModuleRuntime& module, Outbox& outbox, Session& session, int partition,
              RecordId source, bool grouped)
      : module_(module),
        outbox_(outbox),
        session_(session),
        partition_(partition),
        source_(source),
        grouped_(grouped) {}

  int partition() const override { return partition_; }
  int num_partitions() const override { return module_.partitions; }
  RecordId source() const override { return source_; }

  Result<std::vector<Value>> Select(const PStateRef& ref, const Path& path) override {
    if (!ref.module.empty()) return module_.queries->SelectMirror(module_, ref, path, nullptr);
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    STRATA_RETURN_IF_ERROR(BeginOnce());
    return pstate->Select(session_, PartitionOf(*pstate), path);
  }
  Result<Value> SelectOne(const PStateRef& ref, const Path& path) override {
    if (!ref.module.empty()) return module_.queries->SelectOneMirror(module_, ref, path, nullptr);
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    STRATA_RETURN_IF_ERROR(BeginOnce());
    return pstate->SelectOne(session_, PartitionOf(*pstate), path);
  }
  Result<int64_t> Transform(const PStateRef& ref, const Path& path) override {
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    if (const int writer = module_.pstate_writer[ref.index]; writer >= 0) {
      return Status::InvalidArgument(ref.name + " is written by microbatch topology " +
                                     module_.def->topologies[writer].name +
                                     ", its only writer: a stream topology may read it only");
    }
    if (pstate->schema().global && partition_ != 0) {
      return Status::InvalidArgument(ref.name +
                                     " is a global PState: only partition 0 may write it, "
                                     "and this step runs on partition " +
                                     std::to_string(partition_) + " (route with Global() first)");
    }
    STRATA_RETURN_IF_ERROR(BeginOnce());
    if (Watched(module_)) touches_.push_back({ref.index, LeadingKey(path)});
    return pstate->Transform(session_, PartitionOf(*pstate), path);
  }
  Status Append(const DepotRef& ref, Value record) override {
    STRATA_ASSIGN_OR_RETURN(
        std::optional<TopologyAppend> append,
        PrepareTopologyAppend(module_, outbox_, session_, partition_, ref, std::move(record),
                              [this] { return BeginOnce(); }));
    if (append) appends_.push_back({append->depot, append->partition, std::move(append->item)});
    return Status::Ok();
  }
  void Emit(Value value) override {
    if (emitted_ != nullptr) emitted_->push_back(std::move(value));
  }
  void SetAckReturn(Value value) override { ack_return_ = std::move(value); }
  Result<Value> Invoke(const QueryRef& query, std::vector<Value> args) override {
    return module_.queries->InvokeFrom(module_, query, std::move(args), nullptr);
  }

  void set_emitted(std::vector<Value>* emitted) { emitted_ = emitted; }
  void AddHop(int partition, int op, Value value) {
    hops_.push_back({partition, op, std::move(value)});
  }
  std::vector<Hop>& hops() { return hops_; }
  std::vector<PendingAppend>& appends() { return appends_; }
  std::optional<Value>& ack_return() { return ack_return_; }
  // What the step's transforms wrote while subscriptions were open (SubscriptionHub).
  const std::vector<Touch>& touches() const { return touches_; }
  bool began() const { return began_; }
  ModuleRuntime& module() const { return module_; }

 private:
  // The step's transaction starts at its first PState access: a step that only routes,
  // emits or appends (the first step of word count) costs no storage transaction.
  Status BeginOnce() {
    if (began_) return Status::Ok();
    began_ = true;
    if (grouped_ && session_.in_transaction()) return Status::Ok();  // an earlier member's
    return session_.Begin();  // fails loudly if a transaction was left open on the session
  }

  Result<const PState*> Resolve(const PStateRef& ref) const { return PStateOf(module_, ref); }
  int PartitionOf(const PState& pstate) const { return pstate.schema().global ? 0 : partition_; }

  ModuleRuntime& module_;
  Outbox& outbox_;
  Session& session_;
  const int partition_;
  const RecordId source_;
  std::vector<Value>* emitted_ = nullptr;
  std::vector<Hop> hops_;
  std::vector<PendingAppend> appends_;
  std::optional<Value> ack_return_;
  std::vector<Touch> touches_;
  const bool grouped_;
  bool began_ = false;
};

// Consecutive topology events of one task thread that share one transaction
// (docs/runtime.md, "Event groups"). Each member ran successfully inside the group's open
// transaction; its hops, appends, ack return and completion wait for the group's commit.
// Touched only by the owning task thread.
struct EventGroup {
  struct Member {
    std::unique_ptr<StepContext> ctx;  // knows the module and partition
    Event event;  // its input is kept for a rerun alone if the group is rolled back
  };
  std::vector<Member> members;
  std::chrono::steady_clock::time_point opened;
};

// A group is settled (committed) once it holds this many events or this long has passed since
// its first event started, which bounds the steps per transaction and the delay a group
// adds to its first event's completion.
constexpr size_t kMaxGroupEvents = 64;
constexpr std::chrono::microseconds kMaxGroupAge{1000};

class StreamExecutor {
 public:
  // `threads`: the number of task threads (one event group each).
  StreamExecutor(EngineImpl& engine, int threads);

  // Runs the event inside the thread's event group: its effects commit with the group's,
  // and it completes when the group settles. Owner thread of `partition`.
  void RunEvent(TaskThread& thread, ModuleRuntime& m, int partition, Event event);
  // Commits the thread's event group and releases its members' effects: the thread's
  // TaskThread::Settle.
  void SettleGroup(TaskThread& thread);
  // Writes the failure row of (run's topology, run's record) unless one exists, and sets the
  // record's failure; the caller completes the event.
  // `attempts` is how many times the step ran.
  void RecordFailure(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run, int partition,
                     int op, int attempts, const Status& error);
  // The same with the whole message: the run's topology gave up on its record for a reason
  // other than a failing step (replay could not read the record). Any task thread.
  void RecordGiveUp(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run,
                    std::string message);

 private:
  void RunEventAlone(TaskThread& thread, ModuleRuntime& m, int partition, Event event, int attempts,
                     int made, Status error);
  void RerunAlone(TaskThread& thread, std::vector<EventGroup::Member>& members);
  // The error of a step that ran for `ran`, longer than step_timeout_ms; such a step is
  // rolled back and recorded as failed without a retry.
  Status StepOverTime(std::chrono::nanoseconds ran) const;
  // Counts the step of `topology` of `m` that started at `started` and just ended in the
  // topology's step durations (Engine::Metrics), and says whether it ran over the timeout;
  // if so and `*error` is OK, sets it to StepOverTime's error (a failing step keeps its
  // own). Either way such a step is not retried.
  bool Overtime(ModuleRuntime& m, int topology, std::chrono::steady_clock::time_point started,
                Status* error) const;
  Status RunOps(StepContext& ctx, ModuleRuntime& m, const TopologyDef& topology, int first_op,
                const Value& input);
  // After the commit: posts the step's hops, queues its depot appends, stores its ack return.
  void ReleaseEffects(StepContext& ctx, const std::shared_ptr<ModuleRuntime>& m,
                      const std::shared_ptr<TopologyRun>& run);

  EngineImpl& engine_;
  std::vector<EventGroup> groups_;  // by task thread index; each touched only by its thread
};

}  // namespace strata::runtime
