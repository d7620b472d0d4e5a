// The stream topology executor (stream_executor.h). Every method runs on the task thread
// that owns the event's partition.
#include "runtime/stream_executor.h"

#include <algorithm>
#include <span>
#include <tuple>

#include "runtime/engine_impl.h"
#include "runtime/meta_tables.h"

namespace strata::runtime {

StreamExecutor::StreamExecutor(EngineImpl& engine, int threads)
    : engine_(engine), groups_(threads) {}

// Runs the event inside the thread's event group: its effects commit with the group's, and
// it completes when the group settles. A step that fails rolls the group back: the members
// before it run again alone (their first run left no effect), then it runs alone with the
// attempts it has left.
void StreamExecutor::RunEvent(TaskThread& thread, ModuleRuntime& m, int partition, Event event) {
  EventGroup& group = groups_[thread.index()];
  const std::shared_ptr<TopologyRun>& run = event.run;
  auto ctx = std::make_unique<StepContext>(m, *engine_.outbox_, thread.group_session(), partition,
                                           run->record->id,
                                           /*grouped=*/true);
  const auto started = std::chrono::steady_clock::now();
  Status error = RunOps(*ctx, m, m.def->topologies[run->topology], event.op, event.input);
  const bool overtime = Overtime(m, run->topology, started, &error);
  if (!error.ok()) {
    std::vector<EventGroup::Member> members = std::move(group.members);
    group.members.clear();
    Session& session = thread.group_session();
    if (session.in_transaction()) session.Rollback();
    thread.SettleGroup();  // closes the (now empty) group
    RerunAlone(thread, members);
    RunEventAlone(thread, m, partition, std::move(event),
                  overtime ? 0 : engine_.options_.max_step_attempts - 1, /*made=*/1, error);
    return;
  }
  if (group.members.empty()) {
    if (!ctx->began()) {  // nothing to commit and nothing queued before it: release at once
      ReleaseEffects(*ctx, run->record->module, run);
      engine_.CompleteEvent(run);
      return;
    }
    group.opened = started;
    thread.GroupOpened();
  }
  group.members.push_back({std::move(ctx), std::move(event)});
  // The age counts from the start of the first member, so a long step commits at once.
  if (group.members.size() >= kMaxGroupEvents ||
      std::chrono::steady_clock::now() - group.opened >= kMaxGroupAge) {
    thread.SettleGroup();
  }
}

bool StreamExecutor::Overtime(ModuleRuntime& m, int topology,
                              std::chrono::steady_clock::time_point started, Status* error) const {
  const std::chrono::nanoseconds elapsed = std::chrono::steady_clock::now() - started;
  m.topology_counters[topology]->steps.Observe(elapsed);
  Status over = StepOverTime(elapsed);
  if (over.ok()) return false;
  if (error->ok()) *error = std::move(over);  // a failing step keeps its own error
  return true;
}

Status StreamExecutor::StepOverTime(std::chrono::nanoseconds ran) const {
  if (engine_.options_.step_timeout_ms <= 0) return Status::Ok();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(ran);
  if (elapsed.count() <= engine_.options_.step_timeout_ms) return Status::Ok();
  return Status::UserError("the step ran for " + std::to_string(elapsed.count()) +
                           " ms, longer than the step timeout of " +
                           std::to_string(engine_.options_.step_timeout_ms) +
                           " ms (EngineOptions::step_timeout_ms); its effects were rolled back");
}

// Commits the thread's event group and releases its members' effects in event order, so
// hops leave a partition in the order its events produced them. A failed commit lost every
// member's writes: each runs again alone.
void StreamExecutor::SettleGroup(TaskThread& thread) {
  EventGroup& group = groups_[thread.index()];
  std::vector<EventGroup::Member> members = std::move(group.members);
  group.members.clear();
  Session& session = thread.group_session();
  Status committed = session.in_transaction() ? session.Commit() : Status::Ok();
  if (!committed.ok()) return RerunAlone(thread, members);
  for (EventGroup::Member& member : members) {
    const std::shared_ptr<TopologyRun>& run = member.event.run;
    ReleaseEffects(*member.ctx, run->record->module, run);
    engine_.CompleteEvent(run);
  }
  if (engine_.subscriptions_->active()) {
    // The touches of the group by (module, partition), each notified once.
    std::vector<std::tuple<const ModuleRuntime*, int, std::vector<Touch>>> touched;
    for (const EventGroup::Member& member : members) {
      const StepContext& ctx = *member.ctx;
      if (ctx.touches().empty()) continue;
      auto it = std::find_if(touched.begin(), touched.end(), [&](const auto& t) {
        return std::get<0>(t) == &ctx.module() && std::get<1>(t) == ctx.partition();
      });
      if (it == touched.end()) {
        touched.emplace_back(&ctx.module(), ctx.partition(), std::vector<Touch>{});
        it = touched.end() - 1;
      }
      std::get<2>(*it).insert(std::get<2>(*it).end(), ctx.touches().begin(), ctx.touches().end());
    }
    for (const auto& [m, partition, touches] : touched) {
      engine_.subscriptions_->Notify(session, *m, partition, touches);
    }
  }
}

// Members of a group whose writes were rolled back run again, in order, each alone with
// all its attempts.
void StreamExecutor::RerunAlone(TaskThread& thread, std::vector<EventGroup::Member>& members) {
  for (EventGroup::Member& member : members) {
    RunEventAlone(thread, member.ctx->module(), member.ctx->partition(), std::move(member.event),
                  engine_.options_.max_step_attempts, /*made=*/0, Status::Ok());
  }
}

// Runs the event in a transaction of its own, up to `attempts` times more (`made` ran
// already, in its event group); then records the failure (`error`, or the last attempt's).
void StreamExecutor::RunEventAlone(TaskThread& thread, ModuleRuntime& m, int partition, Event event,
                                   int attempts, int made, Status error) {
  const std::shared_ptr<TopologyRun>& run = event.run;
  const TopologyDef& topology = m.def->topologies[run->topology];
  Session& session = thread.session();
  for (int attempt = 0; attempt < attempts; ++attempt) {
    StepContext ctx(m, *engine_.outbox_, session, partition, run->record->id, /*grouped=*/false);
    const auto started = std::chrono::steady_clock::now();
    error = RunOps(ctx, m, topology, event.op, event.input);
    ++made;
    const bool overtime = Overtime(m, run->topology, started, &error);
    if (error.ok()) {
      if (ctx.began()) error = session.Commit();
    } else if (session.in_transaction()) {
      session.Rollback();
    }
    if (overtime) break;  // not retried: it would hold the thread as long again
    if (error.ok()) {
      ReleaseEffects(ctx, run->record->module, run);
      engine_.CompleteEvent(run);
      engine_.subscriptions_->Notify(session, m, partition, ctx.touches());
      return;
    }
  }
  RecordFailure(thread, m, *run, partition, event.op, made, error);
  engine_.CompleteEvent(run);
}

Status StreamExecutor::RunOps(StepContext& ctx, ModuleRuntime& m, const TopologyDef& topology,
                              int first_op, const Value& input) {
  // The frontier starts as the borrowed input (the caller keeps it for a rerun); values the
  // ops emit are owned and move on into hops.
  std::vector<Value> owned;
  std::span<const Value> frontier(&input, 1);
  const int n = static_cast<int>(topology.ops.size());
  for (int i = first_op; i < n && !frontier.empty(); ++i) {
    const TopologyOp& op = topology.ops[i];
    if (op.kind == TopologyOp::Kind::kEach) {
      std::vector<Value> next;
      ctx.set_emitted(&next);
      for (const Value& value : frontier) {
        Status st = op.fn(ctx, value);
        if (!st.ok()) {
          ctx.set_emitted(nullptr);
          return Status(st.code(), "op " + std::to_string(i) + ": " + st.message());
        }
      }
      ctx.set_emitted(nullptr);
      owned = std::move(next);
      frontier = owned;
      continue;
    }
    // A partitioner ends the local segment; a partitioner at the end of the chain has no
    // step to send to.
    if (i + 1 == n) return Status::Ok();
    for (size_t j = 0; j < frontier.size(); ++j) {
      Value value = frontier.data() == &input ? input : std::move(owned[j]);
      switch (op.kind) {
        case TopologyOp::Kind::kHashPartition: {
          if (op.key_fn) {
            Result<Value> key = op.key_fn(value);
            if (!key.ok()) {
              return Status(key.status().code(),
                            "op " + std::to_string(i) + " (hash key): " + key.status().message());
            }
            ctx.AddHop(HashPartition(*key, m.partitions), i + 1, std::move(value));
          } else {
            const int p = HashPartition(value, m.partitions);
            ctx.AddHop(p, i + 1, std::move(value));
          }
          break;
        }
        case TopologyOp::Kind::kAllPartitions:
          for (int p = 0; p < m.partitions; ++p) ctx.AddHop(p, i + 1, value);
          break;
        case TopologyOp::Kind::kGlobal:
          ctx.AddHop(0, i + 1, std::move(value));
          break;
        case TopologyOp::Kind::kShuffle:
          ctx.AddHop(RandomPartition(m.partitions), i + 1, std::move(value));
          break;
        case TopologyOp::Kind::kDirect: {
          Result<int64_t> p = op.partition_fn(value);
          if (!p.ok()) {
            return Status(p.status().code(),
                          "op " + std::to_string(i) + " (direct): " + p.status().message());
          }
          if (*p < 0 || *p >= m.partitions) {
            return Status::InvalidArgument("op " + std::to_string(i) +
                                           " (direct) chose partition " + std::to_string(*p) +
                                           ", outside [0, " + std::to_string(m.partitions) + ")");
          }
          ctx.AddHop(static_cast<int>(*p), i + 1, std::move(value));
          break;
        }
        case TopologyOp::Kind::kEach:
        case TopologyOp::Kind::kAggregate:  // microbatch only (the loader checks it)
        case TopologyOp::Kind::kGroupBy:
        case TopologyOp::Kind::kEachGroup:
        case TopologyOp::Kind::kOrigin:  // queries only
        case TopologyOp::Kind::kCombine:
          break;
      }
    }
    return Status::Ok();
  }
  return Status::Ok();
}

// Runs after the commit: children are added to the run before the event completes, so the
// run cannot reach zero while a branch is still to come.
void StreamExecutor::ReleaseEffects(StepContext& ctx, const std::shared_ptr<ModuleRuntime>& m,
                                    const std::shared_ptr<TopologyRun>& run) {
  if (ctx.ack_return()) {
    MutexLock lock(&run->record->mu);
    run->record->ack_returns[run->slot].second = std::move(*ctx.ack_return());
  }
  const int64_t children = static_cast<int64_t>(ctx.hops().size() + ctx.appends().size());
  if (children == 0) return;
  run->pending.fetch_add(children, std::memory_order_relaxed);
  for (StepContext::Hop& hop : ctx.hops()) {
    const int target = hop.partition;
    m->parts[target].PostEvent(
        [this, m, target, event = Event{run, hop.op, std::move(hop.value)}](TaskThread& t) mutable {
          RunEvent(t, *m, target, std::move(event));
        });
  }
  for (StepContext::PendingAppend& append : ctx.appends()) {
    append.item.parent = run;
    std::vector<AppendItem> items;
    items.push_back(std::move(append.item));
    engine_.PostAppend(m, append.depot, append.partition, std::move(items));
  }
}

void StreamExecutor::RecordFailure(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run,
                                   int partition, int op, int attempts, const Status& error) {
  RecordGiveUp(thread, m, run,
               "on partition " + std::to_string(partition) + " after " + std::to_string(attempts) +
                   (attempts == 1 ? " attempt" : " attempts") + " (from op " + std::to_string(op) +
                   "): " + error.ToString());
}

void StreamExecutor::RecordGiveUp(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run,
                                  std::string message) {
  const TopologyDef& topology = m.def->topologies[run.topology];
  const RecordId& id = run.record->id;
  TopologyFailure failure{topology.name, m.def->depots[id.depot].name, id.partition, id.offset,
                          ShortFailureMessage(std::move(message))};
  // One row per (topology, record), the first failure's: a second failing branch of the
  // record, or a replay that fails again, finds the row and leaves it and the count as
  // they are. failures_mu is held from the lookup to the insertion so
  // that two branches failing at once on two task threads record one row. The row is
  // durable with the next flush.
  Session& session = thread.session();
  const std::string key = FailureKey(m.name, failure);
  MutexLock failures_lock(&m.failures_mu);
  std::string existing;
  if (m.is_shadow) {
    m.shadow_failures.emplace(key, failure);  // a rebuild's failures wait for its swap
  } else if (Result<bool> found = session.Get(engine_.failures_table_, key, &existing);
             !(found.ok() && *found)) {
    std::string row;
    AppendValue(FailureToValue(failure), &row);
    Status st = session.Put(engine_.failures_table_, key, row);
    if (!st.ok()) {
      engine_.logger_->Error("recording a failure of topology " + topology.name + " (" +
                             failure.depot + " partition " + std::to_string(id.partition) +
                             " offset " + std::to_string(id.offset) + ") failed: " + st.ToString());
    }
    ++m.failure_count;
  }
  failures_lock.Unlock();
  {
    MutexLock lock(&run.record->mu);
    if (run.record->failure.ok()) {
      run.record->failure =
          Status::UserError("topology " + topology.name + " gave up on " + failure.depot +
                            " partition " + std::to_string(id.partition) + " offset " +
                            std::to_string(id.offset) + " " + failure.message);
    }
  }
}

}  // namespace strata::runtime
