#include "fetcher.h"

#include <algorithm>
#include <condition_variable>
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

Status ErrorStatus(const proto::Error& error) {
  return Status(proto::StatusCodeFor(error.code), error.message);
}

}  // namespace

Fetcher::Fetcher(Replication& replication, std::string module, int group, std::string node_id,
                 std::function<void(const std::string&)> log_warning)
    : replication_(replication),
      module_(std::move(module)),
      group_(group),
      node_id_(std::move(node_id)),
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
  if (status.ok() && status->log_end > 0) {
    STRATA_ASSIGN_OR_RETURN(int64_t point, replication_.TruncationPoint(module_, group_, ask));
    STRATA_ASSIGN_OR_RETURN(bool truncated, replication_.TruncateTo(module_, group_, point));
    if (!truncated) {
      if (log_warning_) {
        log_warning_("replication: " + module_ + "/" + std::to_string(group_) +
                     ": this node's tables hold writes the new leader " + target.leader +
                     " does not have (it led them before the failover): cutting its log at " +
                     std::to_string(point) + " and rebuilding its tables from it");
      }
      STRATA_RETURN_IF_ERROR(replication_.RebuildFromLog(module_, group_, point));
    }
  }

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

Status Fetcher::FetchModuleFile(NodeChannel& channel) {
  STRATA_ASSIGN_OR_RETURN(proto::Response file,
                          channel.Call(proto::ModuleFileRequest{module_}, 30000ms));
  if (file.error) return ErrorStatus(*file.error);
  const auto* bytes = std::get_if<proto::ModuleFile>(&file.body);
  if (bytes == nullptr) return Status::Corruption("the leader did not answer ModuleFile");
  return replication_.InstallModuleFile(module_, bytes->bytes);
}

}  // namespace strata::cluster
