// HighWatermark: a group leader's view of how far its in-sync replicas have its log
// durably (docs/cluster.md, "Acknowledgements"). The high watermark is the smallest
// durable log end over the ISR — the leader's own included — so an entry below it is
// durable on every in-sync replica and survives any failover the controller makes (it
// promotes ISR members only). Appends wait here (Wait) for the log end they left.
//
// Each follower's durable end is the one it reported in its last fetch; a member that has
// not reported yet counts as 0. A replica this leader asked the controller to add to the ISR
// (IsrRequested) counts as a member from the request until the controller's answer (SetIsr
// with it) or until it stops fetching: the controller may add it, and promote it, before this
// leader hears of the change (Kafka's "maximal ISR"). Thread-safe; callbacks run on the calling
// thread of the method that completes them, outside the lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "strata/status.h"
#include "strata/thread_annotations.h"

namespace strata::cluster {

class HighWatermark {
 public:
  using Clock = std::chrono::steady_clock;

  // `leader` is this node's id; `isr` includes it.
  HighWatermark(std::string leader, std::vector<std::string> isr, int min_isr);

  // The group state changed (the controller shrank or grew the ISR, or min_isr). Members
  // asked for that it now holds are members like the others.
  void SetIsr(std::vector<std::string> isr, int min_isr);
  // The leader's own durable log end.
  void LeaderDurable(int64_t durable_end);
  // A fetch from `node`: its durable end, and whether it has the leader's whole log
  // (`from` >= the leader's log end when the fetch was answered): caught up, at `now`.
  void FollowerFetched(const std::string& node, int64_t durable_end, bool caught_up,
                       Clock::time_point now);

  int64_t Value() const;
  std::vector<std::string> isr() const;
  int min_isr() const;

  // Calls done(OK) once the high watermark is >= `end` and the ISR has at least min_isr
  // members; done(kNotEnoughReplicas) when it reaches `end` with fewer. At once when it
  // already is.
  void Wait(int64_t end, std::function<void(Status)> done);
  // Fails every waiter with `status` (leadership lost) and every later Wait too.
  void FailAll(const Status& status);

  // The ISR this leader should ask the controller for, or an empty vector when the current
  // one is right: members (not the leader) that were not caught up for longer than `lag`
  // leave it; replicas out of it that are caught up now, have every entry below the high
  // watermark durably and fetched within `lag` join it. `replicas` is the group's
  // assignment, in order. Also forgets the replicas asked for (IsrRequested) that have not
  // fetched for `lag` (the controller does not add a node whose session ended): the waiters
  // this unblocks complete at the next LeaderDurable or FollowerFetched.
  std::vector<std::string> WantedIsr(const std::vector<std::string>& replicas,
                                     std::chrono::milliseconds lag, Clock::time_point now);
  // `node` asks for a snapshot (its tables are about to be replaced): it leaves the ISR at
  // the next WantedIsr and joins no more until a fetch finds it caught up again.
  void Rebuilding(const std::string& node);
  // Whether a follower other than `node` is rebuilding and asked for a snapshot or fetched
  // within `lag` (one that went silent counts no more).
  bool OtherRebuilding(const std::string& node, std::chrono::milliseconds lag,
                       Clock::time_point now) const;
  // This leader is about to ask the controller for `isr`: its members not in the ISR hold
  // the high watermark from now on (see above). Call it before sending the request.
  void IsrRequested(const std::vector<std::string>& isr);

 private:
  struct Follower {
    int64_t durable_end = 0;
    bool caught_up = false;              // as of its last fetch
    Clock::time_point last_caught_up{};  // when it last had the whole log
    bool ever_fetched = false;
    bool rebuilding = false;  // Rebuilding() until a fetch finds it caught up
    Clock::time_point last_fetch{};
    Clock::time_point last_snapshot_ask{};  // the last Rebuilding()
  };
  int64_t ValueLocked() const REQUIRES(mu_);
  // Removes the satisfied waiters into *ready with the status each gets.
  void CollectLocked(std::vector<std::pair<std::function<void(Status)>, Status>>* ready)
      REQUIRES(mu_);
  static void Run(std::vector<std::pair<std::function<void(Status)>, Status>>& ready);

  const std::string leader_;
  const Clock::time_point created_ = Clock::now();
  mutable Mutex mu_;
  std::vector<std::string> isr_ GUARDED_BY(mu_);
  int min_isr_ GUARDED_BY(mu_) = 1;
  int64_t leader_durable_ GUARDED_BY(mu_) = 0;
  std::map<std::string, Follower> followers_ GUARDED_BY(mu_);
  std::set<std::string> joining_ GUARDED_BY(mu_);  // asked for, not in isr_ yet
  std::multimap<int64_t, std::function<void(Status)>> waiters_ GUARDED_BY(mu_);
  Status failed_ GUARDED_BY(mu_);
};

}  // namespace strata::cluster
