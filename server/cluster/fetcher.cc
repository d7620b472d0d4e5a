#include "fetcher.h"

#include <algorithm>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>

#include "node_channel.h"
#include "strata/protocol/messages.h"

namespace strata::cluster {

namespace proto = strata::protocol;
using namespace std::chrono_literals;

namespace {

// How long a call to the leader may take beyond the fetch's own wait.
constexpr auto kCallSlack = 2000ms;
constexpr uint32_t kFetchWaitMs = 500;
// How often a long snapshot load logs its progress.
constexpr auto kSnapshotProgressEvery = std::chrono::seconds(5);

Status ErrorStatus(const proto::Error& error) {
  return Status(proto::StatusCodeFor(error.code), error.message);
}

}  // namespace

Fetcher::Fetcher(Replication& replication, std::string module, int group, std::string node_id,
                 std::function<void(const std::string&)> log_info,
                 std::function<void(const std::string&)> log_warning)
    : replication_(replication),
      module_(std::move(module)),
      group_(group),
      node_id_(std::move(node_id)),
      log_info_(std::move(log_info)),
      log_warning_(std::move(log_warning)) {
  thread_ = std::thread([this] { Run(); });
}

Fetcher::~Fetcher() { Stop(); }

void Fetcher::Follow(const Target& target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (target == target_) return;
  target_ = target;
  ++generation_;
  // A fetch waiting on the old leader (stopped, or cut off) would hold the switch for its
  // whole timeout.
  if (channel_ != nullptr) channel_->Interrupt();
  cv_.notify_all();
}

void Fetcher::RequestStop() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = true;
  if (channel_ != nullptr) channel_->Interrupt();
  cv_.notify_all();
}

void Fetcher::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void Fetcher::Run() {
  auto backoff = 50ms;  // for the errors of the current target
  uint64_t backoff_generation = 0;
  std::string last_error;
  while (true) {
    Target target;
    uint64_t generation = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !target_.address.empty(); });
      if (stop_) return;
      target = target_;
      generation = generation_;
    }
    Status st = FollowLeader(target, generation);
    if (st.ok()) {
      backoff = 50ms;
      last_error.clear();
      continue;  // the target changed: follow the new one at once
    }
    // Log an error once per kind, not once per retry.
    if (st.message() != last_error && log_warning_) {
      log_warning_("replication: " + module_ + "/" + std::to_string(group_) + " following " +
                   target.leader + " at " + target.address + ": " + st.ToString() + " (retrying)");
    }
    last_error = st.message();
    // A leader that does not lead yet is about to (the controller named it; it is starting
    // the module): ask again soon, as the appends it acknowledges wait for this follower.
    // Other errors (a node unreachable) back off from 50 ms up to 1 s, for one target: a
    // new leader starts again at 50 ms (the backoff of a dead one must not delay it).
    if (generation != backoff_generation) {
      backoff = 50ms;
      backoff_generation = generation;
    }
    const auto wait = st.code() == StatusCode::kNotLeader ? 20ms : backoff;
    if (st.code() != StatusCode::kNotLeader) {
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, 1000ms);
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, wait, [&] { return stop_ || generation_ != generation; });
  }
}

Status Fetcher::FollowLeader(const Target& target, uint64_t generation) {
  const auto changed = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_ || generation_ != generation;
  };
  NodeChannel channel(target.address, "stratad-node/" + node_id_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || generation_ != generation) return Status::Ok();
    channel_ = &channel;
  }
  struct Unpublish {
    Fetcher* f;
    ~Unpublish() {
      std::lock_guard<std::mutex> lock(f->mu_);
      f->channel_ = nullptr;
    }
  } unpublish{this};

  // 1. Cut what diverges from this leader's log (KIP-101 / KIP-279).
  const auto ask = [&](int64_t log_epoch) -> Result<EpochEnd> {
    proto::ReplicaEpochRequest request;
    request.module = module_;
    request.group = group_;
    request.node = node_id_;
    request.epoch = target.epoch;
    request.log_epoch = log_epoch;
    STRATA_ASSIGN_OR_RETURN(proto::Response response, channel.Call(request, kCallSlack));
    if (response.error) return ErrorStatus(*response.error);
    const auto* answer = std::get_if<proto::ReplicaEpochEnd>(&response.body);
    if (answer == nullptr) return Status::Corruption("the leader did not answer ReplicaEpochEnd");
    return EpochEnd{answer->epoch, answer->end_offset};
  };
  Result<ReplicaGroupStatus> status = replication_.GroupStatus(module_, group_);
  // A snapshot that a crash or a change of leader interrupted is loaded again (and a copy
  // that applied a switch of its module's row and was not reloaded since is reloaded,
  // below, once its log agrees with the leader's).
  bool snapshot = status.ok() && status->rebuilding;
  // The leader a snapshot was just loaded from, again (a retry after an error): its log
  // holds this node's, so nothing diverges.
  const bool same_source =
      status.ok() && status->fuzzy_end > status->log_end && target == snapshot_source_;
  if (!snapshot && !same_source && status.ok() && status->log_end > 0) {
    STRATA_ASSIGN_OR_RETURN(int64_t point, replication_.TruncationPoint(module_, group_, ask));
    STRATA_ASSIGN_OR_RETURN(bool truncated, replication_.TruncateTo(module_, group_, point));
    if (!truncated) {
      const std::string why = "replication: " + module_ + "/" + std::to_string(group_) +
                              ": this node's tables may hold writes the new leader " +
                              target.leader + " does not have (it led them before the failover";
      if (status->log_start == 0) {
        if (log_warning_) {
          log_warning_(why + "): cutting its log at " + std::to_string(point) +
                       " and rebuilding its tables from it");
        }
        STRATA_RETURN_IF_ERROR(replication_.RebuildFromLog(module_, group_, point));
      } else {
        if (log_warning_) {
          log_warning_(why +
                       ", or a snapshot of another leader holds them) and its log "
                       "starts at " +
                       std::to_string(status->log_start) +
                       " (compacted): loading a snapshot of the leader's rows");
        }
        snapshot = true;
      }
    }
  }
  if (snapshot) {
    STRATA_RETURN_IF_ERROR(LoadSnapshot(channel, target, generation));
  } else if (status.ok() && status->switched_at >= 0) {
    Status loaded = LoadSnapshot(channel, target, generation);
    // kBusy: another replica is reloading its copy; this one is whole (a switch applied,
    // no load begun): it fetches meanwhile and asks again below.
    if (loaded.code() != StatusCode::kBusy) STRATA_RETURN_IF_ERROR(loaded);
  }
  auto next_reload = std::chrono::steady_clock::now();
  std::string reload_logged;

  // 2. Fetch, append, make durable, report, apply — pipelined: the next fetch does not wait
  // for the flush of the entries just appended. It reports the durable end the completed
  // flushes reached (durable before reported: the leader acknowledges on what followers
  // report), and it asks without waiting while a flush is out, so that the end the flush
  // reaches is reported one round trip after it, not after the next entries or the long
  // poll's timeout. A fetch that finds nothing new while a flush is out waits for the flush
  // instead, then reports it (and may wait for entries again).
  struct Flushes {
    std::mutex mu;
    std::condition_variable done;
    int64_t durable_end = 0;    // reached by completed flushes
    int64_t requested_end = 0;  // the log end whose flush was asked for last
    Status error;
  };
  auto flushes = std::make_shared<Flushes>();
  {
    Result<ReplicaGroupStatus> now = replication_.GroupStatus(module_, group_);
    if (now.ok())
      flushes->durable_end = flushes->requested_end = std::min(now->durable_end, now->log_end);
  }
  const auto flush_pending = [&](int64_t* durable) -> Result<bool> {
    std::lock_guard<std::mutex> lock(flushes->mu);
    if (!flushes->error.ok()) return flushes->error;
    *durable = flushes->durable_end;
    return flushes->requested_end > flushes->durable_end;
  };
  while (!changed()) {
    // The module's file first: a follower without it could not start the module if it
    // were promoted, so it reports no progress (which would let the leader acknowledge)
    // until it has it. The leader has none until its deploy finished (kNotFound).
    const bool has_file = !replication_.NeedsModuleFile(module_) || FetchModuleFile(channel).ok();
    Result<ReplicaGroupStatus> now = replication_.GroupStatus(module_, group_);
    const int64_t from = now.ok() ? now->log_end : 0;
    int64_t durable_end = 0;
    STRATA_ASSIGN_OR_RETURN(const bool pending, flush_pending(&durable_end));
    proto::ReplicaFetchRequest request;
    request.module = module_;
    request.group = group_;
    request.node = node_id_;
    request.epoch = target.epoch;
    request.from = from;
    request.durable_end = has_file ? std::min(durable_end, from) : 0;
    request.wait_ms = pending ? 0 : kFetchWaitMs;
    STRATA_ASSIGN_OR_RETURN(
        proto::Response response,
        channel.Call(request, std::chrono::milliseconds(request.wait_ms) + kCallSlack));
    if (response.error) return ErrorStatus(*response.error);
    auto* answer = std::get_if<proto::ReplicaEntries>(&response.body);
    if (answer == nullptr) return Status::Corruption("the leader did not answer ReplicaEntries");
    // Epoch fencing: only the leader of the very epoch followed may feed this log.
    if (answer->epoch != target.epoch) {
      return Status::NotLeader("node " + target.leader + " answered a fetch of epoch " +
                               std::to_string(target.epoch) + " as the leader of epoch " +
                               std::to_string(answer->epoch));
    }
    // Replaces the copy with a snapshot of the leader's rows, saying why.
    const auto reload = [&](const std::string& why) -> Status {
      if (log_info_ && why != reload_logged) {
        log_info_("replication: " + module_ + "/" + std::to_string(group_) + ": " + why +
                  ": loading a snapshot of " + target.leader + "'s rows");
        reload_logged = why;
      }
      STRATA_RETURN_IF_ERROR(LoadSnapshot(channel, target, generation));
      Result<ReplicaGroupStatus> loaded = replication_.GroupStatus(module_, group_);
      if (!loaded.ok()) return loaded.status();
      std::lock_guard<std::mutex> lock(flushes->mu);
      // Durable (LoadSnapshot waited for it): what is in flight below was cut.
      flushes->durable_end = flushes->requested_end = loaded->log_end;
      return Status::Ok();
    };
    if (answer->log_start > from) {
      STRATA_RETURN_IF_ERROR(reload("the leader " + target.leader + " keeps its log from offset " +
                                    std::to_string(answer->log_start) +
                                    ", past this node's log end " + std::to_string(from)));
      continue;
    }
    if (!answer->entries.empty()) {
      std::vector<ReplicaEntry> entries;
      entries.reserve(answer->entries.size());
      for (proto::ReplicaLogEntry& e : answer->entries) {
        entries.push_back(ReplicaEntry{e.offset, std::move(e.bytes)});
      }
      STRATA_RETURN_IF_ERROR(replication_.Append(module_, group_, entries));
      const int64_t end = entries.back().offset + 1;
      {
        std::lock_guard<std::mutex> lock(flushes->mu);
        flushes->requested_end = end;
      }
      replication_.WhenDurable([flushes, end](Status st) {
        std::lock_guard<std::mutex> lock(flushes->mu);
        if (st.ok()) {
          flushes->durable_end = std::max(flushes->durable_end, end);
        } else if (flushes->error.ok()) {
          flushes->error = std::move(st);
        }
        flushes->done.notify_all();
      });
    }
    // The entries the leader says are committed go to the tables while the flush runs.
    // (No log here yet: nothing to apply; the first entries create it.)
    if (now.ok()) {
      STRATA_RETURN_IF_ERROR(replication_.ApplyUpTo(module_, group_, answer->high_watermark));
      Result<ReplicaGroupStatus> applied = replication_.GroupStatus(module_, group_);
      if (applied.ok() && applied->switched_at >= 0 &&
          std::chrono::steady_clock::now() >= next_reload) {
        Status reloaded =
            reload("the module's row changed at offset " + std::to_string(applied->switched_at) +
                   " (an update, recompute or rescale on the leader switched its tables)");
        // Another replica is reloading (one in-sync replica leaves at a time): this copy is
        // whole and promotable; it keeps fetching and asks again in a while.
        if (reloaded.code() == StatusCode::kBusy) {
          next_reload = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
        } else {
          STRATA_RETURN_IF_ERROR(reloaded);
          continue;
        }
      }
    }
    if (answer->entries.empty() && pending) {
      std::unique_lock<std::mutex> lock(flushes->mu);
      flushes->done.wait_for(lock, std::chrono::seconds(1), [&] {
        return !flushes->error.ok() || flushes->durable_end >= flushes->requested_end;
      });
    }
  }
  return Status::Ok();
}

Status Fetcher::LoadSnapshot(NodeChannel& channel, const Target& target, uint64_t generation) {
  const auto start = std::chrono::steady_clock::now();
  const std::string group = module_ + "/" + std::to_string(group_);
  proto::ReplicaSnapshotRequest request;
  request.module = module_;
  request.group = group_;
  request.node = node_id_;
  request.epoch = target.epoch;
  bool begun = false;
  int64_t first_end = 0, fuzzy_end = 0, rows = 0, bytes = 0, chunks = 0;
  auto next_progress = start + kSnapshotProgressEvery;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || generation_ != generation) {
        return Status::Aborted("snapshot of " + group + " interrupted: the leader changed");
      }
    }
    STRATA_ASSIGN_OR_RETURN(proto::Response response, channel.Call(request, 30000ms));
    if (response.error) {
      Status st = ErrorStatus(*response.error);
      if (st.code() != StatusCode::kAborted || begun) return st;
      // Still in the ISR: the leader asked the controller to remove this node. Ask again.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, 200ms, [&] { return stop_ || generation_ != generation; });
      continue;
    }
    auto* chunk = std::get_if<proto::ReplicaSnapshot>(&response.body);
    if (chunk == nullptr) return Status::Corruption("the leader did not answer ReplicaSnapshot");
    if (chunk->epoch != target.epoch) {
      return Status::NotLeader("node " + target.leader + " answered a snapshot of epoch " +
                               std::to_string(target.epoch) + " as the leader of epoch " +
                               std::to_string(chunk->epoch));
    }
    if (!begun) {
      std::vector<LogEpoch> epochs;
      for (const proto::LogEpochStart& e : chunk->epochs) {
        epochs.push_back({e.epoch, e.start_offset});
      }
      STRATA_RETURN_IF_ERROR(replication_.BeginSnapshot(module_, group_, chunk->log_end, epochs));
      begun = true;
      first_end = chunk->log_end;
    }
    if (chunk->row_count > 0) {
      STRATA_RETURN_IF_ERROR(replication_.LoadSnapshot(module_, group_, chunk->rows));
    }
    rows += chunk->row_count;
    bytes += static_cast<int64_t>(chunk->rows.size());
    ++chunks;
    fuzzy_end = std::max(fuzzy_end, chunk->log_end);
    if (chunk->done) break;
    if (const auto now = std::chrono::steady_clock::now(); now >= next_progress && log_info_) {
      next_progress = now + kSnapshotProgressEvery;
      log_info_("replication: " + group + ": loading a snapshot of " + target.leader +
                "'s rows: " + std::to_string(rows) + " rows, " + std::to_string(bytes) +
                " bytes so far, now in table " + chunk->next_table);
    }
    request.table = std::move(chunk->next_table);
    request.key = std::move(chunk->next_key);
    request.record = chunk->next_record;
  }
  STRATA_RETURN_IF_ERROR(replication_.FinishSnapshot(module_, group_, fuzzy_end));
  snapshot_source_ = target;
  // Durable before the log is fetched on top of it: the durable end this node reports
  // counts the snapshot's rows too.
  std::promise<Status> flushed;
  replication_.WhenDurable([&flushed](Status st) { flushed.set_value(std::move(st)); });
  STRATA_RETURN_IF_ERROR(flushed.get_future().get());
  if (log_info_) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    log_info_("replication: " + group + ": loaded a snapshot of " + target.leader + "'s rows (" +
              std::to_string(rows) + " rows, " + std::to_string(bytes) + " bytes, " +
              std::to_string(chunks) + " chunks, read at log offsets " + std::to_string(first_end) +
              " to " + std::to_string(fuzzy_end) + ") in " + std::to_string(ms) +
              " ms; fetching the log from offset " + std::to_string(first_end));
  }
  return Status::Ok();
}

Status Fetcher::FetchModuleFile(NodeChannel& channel) {
  STRATA_ASSIGN_OR_RETURN(proto::Response file,
                          channel.Call(proto::ModuleFileRequest{module_}, 30000ms));
  if (file.error) return ErrorStatus(*file.error);
  const auto* bytes = std::get_if<proto::ModuleFile>(&file.body);
  if (bytes == nullptr) return Status::Corruption("the leader did not answer ModuleFile");
  return replication_.InstallModuleFile(module_, bytes->bytes);
}

}  // namespace strata::cluster
