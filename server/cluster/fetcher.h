// Fetcher: a follower's copy of one replica group's log, kept by a thread of its own
// (docs/cluster.md, "Replication between nodes"). For each leader it follows (an address
// and an epoch, from the controller's group state) it first cuts its log where it diverges
// from the leader's (KIP-101 with KIP-279, asking the leader ReplicaEpochRequest) — or,
// when that would cut effects it applied as a past leader, drops its whole copy of the
// module and fetches the log again from offset 0 — then fetches entries in a loop
// (ReplicaFetchRequest, long polls): it writes them into its log and starts their flush,
// reports in each fetch the durable end its completed flushes reached (which is what lets
// the leader acknowledge) — asking without waiting while a flush is out, so that the report
// follows the flush at once — and applies the entries below the leader's high watermark to
// its tables. It also fetches
// the module's plugin file when the replicated module row names one it lacks, so that it
// can start the module when it is promoted. When the leader no longer has the entries it
// needs (compacted: ReplicaEntries.log_start above its log end), or its tables must be
// rebuilt and its own log is compacted, it loads a snapshot of the leader's rows
// (ReplicaSnapshotRequest, chunk by chunk) and fetches the log from where the snapshot
// began.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "strata/replication.h"

namespace strata::cluster {

class NodeChannel;

class Fetcher {
 public:
  struct Target {
    std::string leader;   // node id; "" while the group has no leader
    std::string address;  // HOST:PORT of its binary protocol listener
    int64_t epoch = 0;
    bool operator==(const Target&) const = default;
  };

  Fetcher(Replication& replication, std::string module, int group, std::string node_id,
          std::function<void(const std::string&)> log_info,
          std::function<void(const std::string&)> log_warning);
  // Stop()s.
  ~Fetcher();

  // Follows `target` from now on (a new leader or epoch restarts with the truncation); a
  // call in flight to the previous leader is interrupted.
  void Follow(const Target& target);
  // Asks the thread to stop, interrupting its call in flight, without waiting.
  void RequestStop();
  // RequestStop, then waits for the thread to end.
  void Stop();

 private:
  void Run();
  // One leader's session: returns when the target changes, on stop, or after an error
  // (the caller backs off and retries).
  Status FollowLeader(const Target& target, uint64_t generation);
  // Fetches the module's plugin file from the leader and installs it.
  Status FetchModuleFile(NodeChannel& channel);
  // Replaces this node's copy of the group with a snapshot of `target`'s rows, made
  // durable; the log then starts and ends where the snapshot began. kAborted when the
  // target changed meanwhile (the copy stays marked rebuilding: the next leader's session
  // loads a snapshot again).
  Status LoadSnapshot(NodeChannel& channel, const Target& target, uint64_t generation);

  Replication& replication_;
  const std::string module_;
  const int group_;
  const std::string node_id_;
  const std::function<void(const std::string&)> log_info_;
  const std::function<void(const std::string&)> log_warning_;

  std::mutex mu_;
  std::condition_variable cv_;
  Target target_;
  uint64_t generation_ = 0;  // bumped by each Follow with another target
  bool stop_ = false;
  NodeChannel* channel_ = nullptr;  // the thread's connection to its leader, while it has one
  // The leader and epoch the last snapshot was loaded from (the thread's): following the
  // same one again inside the snapshot's fuzzy window needs no truncation (this log is a
  // prefix of its log), where another leader means a new snapshot.
  Target snapshot_source_;
  std::thread thread_;
};

}  // namespace strata::cluster
