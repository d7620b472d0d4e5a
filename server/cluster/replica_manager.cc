#include "replica_manager.h"

#include <algorithm>
#include <atomic>
#include <set>

#include "fetcher.h"

namespace strata::cluster {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return "[" + out + "]";
}

constexpr auto kTick = 50ms;
constexpr auto kCompactionInterval = 1000ms;
// The most entries one compaction deletes (it holds the engine's leadership lock).
constexpr int64_t kMaxCompactedEntries = 16384;
constexpr auto kIsrRequestInterval = 1000ms;

}  // namespace

std::vector<GroupAssignment> AssignmentsOf(const ClusterView& view) {
  std::vector<GroupAssignment> out;
  for (const GroupView& g : view.groups) {
    GroupAssignment a;
    a.module = g.module;
    a.group = g.group;
    a.state = g.state;
    for (const NodeInfo& n : view.nodes) {
      if (n.id == g.state.leader) a.leader_address = n.advertise;
    }
    out.push_back(std::move(a));
  }
  return out;
}

namespace {

// A long poll: answered once, by whichever comes first — entries, or its deadline.
struct Poll {
  FetchAsk ask;
  std::function<void(Result<FetchAnswer>)> done;
  std::atomic<bool> answered{false};
  Clock::time_point deadline;
};

}  // namespace

// The long polls waiting for each group's log to pass their `from`, and the groups for which
// the engine holds a WhenLogPasses callback: one per group at a time, however many polls
// wait (the engine keeps a callback until the log moves, so one per poll would pile up on
// an idle leader, a few a second per follower). Shared with that callback, which may run
// once the manager is gone (when the engine closes).
struct ReplicaManager::Waiting {
  struct Waiter {
    std::shared_ptr<Poll> poll;
    std::function<void()> fire;
  };
  std::mutex mu;
  std::map<Key, std::vector<Waiter>> polls;
  std::set<Key> registered;

  // Adds a poll; true when the group has no callback in the engine (the caller registers it).
  bool Add(const Key& key, Waiter waiter) {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Waiter>& waiting = polls[key];
    std::erase_if(waiting, [](const Waiter& w) { return w.poll->answered.load(); });
    waiting.push_back(std::move(waiter));
    return registered.insert(key).second;
  }
  // The engine's callback: the group's log moved (or its leadership ended).
  void Release(const Key& key) {
    std::vector<Waiter> ready;
    {
      std::lock_guard<std::mutex> lock(mu);
      registered.erase(key);
      auto it = polls.find(key);
      if (it == polls.end()) return;
      ready.swap(it->second);
      polls.erase(it);
    }
    for (Waiter& w : ready) w.fire();
  }
};

ReplicaManager::ReplicaManager(Engine& engine, ReplicaManagerOptions options)
    : engine_(engine),
      replication_(*engine.replication()),
      options_(std::move(options)),
      waiting_(std::make_shared<Waiting>()) {
  // A led group's high watermark counts this node's durable end as soon as a flush moves it.
  replication_.OnDurableEnd([this](const std::string& module, int group, int64_t end) {
    std::shared_ptr<HighWatermark> hw;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = led_.find({module, group});
      if (it == led_.end()) return;
      hw = it->second.hw;
    }
    hw->LeaderDurable(end);
  });
  ticker_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      changed_.wait_for(lock, kTick, [this] { return stop_; });
      if (stop_) break;
      lock.unlock();
      Tick();
      lock.lock();
    }
  });
}

ReplicaManager::~ReplicaManager() { Shutdown(); }

void ReplicaManager::Shutdown() {
  replication_.OnDurableEnd(nullptr);
  std::map<Key, std::unique_ptr<Fetcher>> fetchers;
  std::map<Key, Led> led;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> polls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
    stopping_->store(true);
    changed_.notify_all();
    fetchers.swap(fetchers_);
    led.swap(led_);
    polls.swap(polls_);
  }
  if (ticker_.joinable()) ticker_.join();
  // The followers' long polls are answered now (NOT_LEADER): stratad drains its
  // connections, these among them, before it closes the engine.
  for (auto& [deadline, fire] : polls) fire();
  fetchers.clear();  // joins each thread
  for (auto& [key, l] : led) {
    l.hw->FailAll(Status::Aborted("the node is shutting down: the append may or may not be kept"));
  }
}

std::set<std::string> ModulesOf(const ClusterView& view) {
  std::set<std::string> out = view.unreadable_modules;
  for (const auto& [name, spec] : view.modules) out.insert(name);
  return out;
}

void ReplicaManager::OnAssignments(const std::vector<GroupAssignment>& groups,
                                   const std::set<std::string>& modules) {
  std::map<Key, GroupAssignment> next;
  std::map<std::string, int> groups_of;
  for (const GroupAssignment& a : groups) {
    next[{a.module, a.group}] = a;
    groups_of[a.module] = std::max(groups_of[a.module], a.group + 1);
  }
  std::vector<Key> lead, follow, drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    // Groups this node holds (leads or follows) that the view no longer gives it.
    // Dropping deletes this node's data: only on a clear sign (the module destroyed, or the
    // group placed elsewhere), never because a group is missing from one view.
    const auto gone = [&](const Key& key) {
      auto it = next.find(key);
      if (it == next.end()) return modules.count(key.first) == 0;
      const std::vector<std::string>& replicas = it->second.state.replicas;
      return std::count(replicas.begin(), replicas.end(), options_.node_id) == 0;
    };
    for (const auto& [key, led] : led_) {
      if (gone(key)) drop.push_back(key);
    }
    for (const auto& [key, fetcher] : fetchers_) {
      if (gone(key)) drop.push_back(key);
    }
    // Copies on disk that this node does not hold (it was down when their module was
    // destroyed or moved away): dropped on the same signs.
    Result<std::vector<std::string>> local = replication_.LocalModules();
    for (const std::string& module : local.ok() ? *local : std::vector<std::string>()) {
      const Key key{module, 0};
      if (led_.count(key) || fetchers_.count(key) || dropping_.count(module)) continue;
      if (std::find(drop.begin(), drop.end(), key) != drop.end()) continue;
      bool elsewhere = modules.count(module) == 0;
      if (!elsewhere) {
        // Every group of the module placed, none on this node.
        const int groups = replication_.Groups(module);
        elsewhere = groups > 0;
        for (int g = 0; g < groups && elsewhere; ++g)
          elsewhere = next.count({module, g}) && gone({module, g});
      }
      if (elsewhere) drop.push_back(key);
    }
    for (const auto& [key, a] : next) {
      const std::vector<std::string>& replicas = a.state.replicas;
      if (std::count(replicas.begin(), replicas.end(), options_.node_id) == 0) continue;
      // Lead only what the controller gave this very process: a node that restarted
      // waits for the controller's new epoch (its old one may have lost entries).
      const bool leader =
          a.state.leader == options_.node_id && a.state.leader_incarnation == options_.incarnation;
      (leader ? lead : follow).push_back(key);
    }
    assignments_ = next;
    groups_of_ = groups_of;
    for (const Key& key : drop) dropping_.insert(key.first);
  }
  for (const Key& key : drop) {
    StopLeading(key, "the group is no longer placed on this node");
    StopFetcher(key);
    Status st = replication_.DropReplica(key.first);
    if (options_.log_info) {
      options_.log_info("replication: dropped this node's copy of module " + key.first +
                        (st.ok() ? "" : " (failed: " + st.ToString() + ")"));
    }
  }
  if (!drop.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Key& key : drop) dropping_.erase(key.first);
  }
  for (const Key& key : follow) {
    const GroupAssignment& a = next[key];
    StopLeading(key, "node " + (a.state.leader.empty() ? std::string("(none)") : a.state.leader) +
                         " leads it at epoch " + std::to_string(a.state.epoch));
    std::lock_guard<std::mutex> lock(mu_);
    std::unique_ptr<Fetcher>& fetcher = fetchers_[key];
    if (!fetcher) {
      fetcher = std::make_unique<Fetcher>(replication_, key.first, key.second, options_.node_id,
                                          options_.log_info, options_.log_warning);
    }
    // The leader is "" while the group is offline: the fetcher waits.
    fetcher->Follow(Fetcher::Target{a.state.leader, a.state.leader.empty() ? "" : a.leader_address,
                                    a.state.epoch});
  }
  for (const Key& key : lead) LeadGroup(next[key]);
  changed_.notify_all();
}

void ReplicaManager::StopFetcher(const Key& key) {
  std::unique_ptr<Fetcher> fetcher;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fetchers_.find(key);
    if (it == fetchers_.end()) return;
    fetcher = std::move(it->second);
    fetchers_.erase(it);
  }
  fetcher.reset();  // joins its thread, outside the lock
}

void ReplicaManager::LeadGroup(const GroupAssignment& a) {
  const Key key{a.module, a.group};
  std::shared_ptr<HighWatermark> same_epoch;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = led_.find(key);
    if (it != led_.end() && it->second.epoch == a.state.epoch) {
      it->second.replicas = a.state.replicas;
      same_epoch = it->second.hw;
    }
  }
  if (same_epoch) {
    // Without mu_: SetIsr completes the appends it releases, on this thread.
    same_epoch->SetIsr(a.state.isr, a.state.min_isr);
    return;
  }
  // A new epoch of a group this node led: the old one's waiters cannot complete.
  StopLeading(key, "it leads again at epoch " + std::to_string(a.state.epoch));
  StopFetcher(key);  // no fetch applies entries once this node leads
  Status st = replication_.Lead(a.module, a.group, a.state.epoch);
  if (!st.ok()) {
    // It cannot lead: the group would have no leader until this node's session ends. It
    // resigns, and follows whoever the controller picks.
    std::vector<std::string> others;
    for (const std::string& node : a.state.isr) {
      if (node != options_.node_id) others.push_back(node);
    }
    Status resigned = others.empty() || !options_.request_resign
                          ? Status::Aborted("no other in-sync replica to hand it to")
                          : options_.request_resign(a.module, a.group, a.state.epoch, others);
    if (options_.log_warning) {
      options_.log_warning("replication: cannot lead module " + a.module + " group " +
                           std::to_string(a.group) + " at epoch " + std::to_string(a.state.epoch) +
                           ": " + st.ToString() + "; resigning" +
                           (resigned.ok() ? " in favour of isr " + Join(others)
                                          : " failed: " + resigned.ToString()));
    }
    return;
  }
  auto hw = std::make_shared<HighWatermark>(options_.node_id, a.state.isr, a.state.min_isr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Led& led = led_[key];
    led.epoch = a.state.epoch;
    led.hw = hw;
    led.replicas = a.state.replicas;
    changed_.notify_all();
  }
  RefreshLeaderDurable(key, hw);
  if (options_.log_info) {
    options_.log_info("replication: leading module " + a.module + " group " +
                      std::to_string(a.group) + " at epoch " + std::to_string(a.state.epoch) +
                      ", isr " + Join(a.state.isr));
  }
}

void ReplicaManager::StopLeading(const Key& key, const std::string& why) {
  std::shared_ptr<HighWatermark> hw;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = led_.find(key);
    if (it == led_.end()) return;
    hw = it->second.hw;
    led_.erase(it);
  }
  Status st = replication_.Follow(key.first, key.second);
  hw->FailAll(Status::Aborted("the leadership of module " + key.first +
                              " moved while the append waited for its replicas: it may or may "
                              "not be kept"));
  if (options_.log_info) {
    options_.log_info("replication: stopped leading module " + key.first + " group " +
                      std::to_string(key.second) + ": " + why +
                      (st.ok() ? "" : " (stopping failed: " + st.ToString() + ")"));
  }
}

std::shared_ptr<HighWatermark> ReplicaManager::FindHw(const Key& key, int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = led_.find(key);
  if (it == led_.end() || (epoch >= 0 && it->second.epoch != epoch)) return nullptr;
  return it->second.hw;
}

void ReplicaManager::RefreshLeaderDurable(const Key& key,
                                          const std::shared_ptr<HighWatermark>& hw) {
  Result<ReplicaGroupStatus> st = replication_.GroupStatus(key.first, key.second);
  if (!st.ok()) {
    hw->LeaderDurable(0);
    return;
  }
  hw->LeaderDurable(st->durable_end);  // later flushes tell OnDurableEnd's listener
}

Status ReplicaManager::CheckLeader(const std::string& module, std::string* leader_address) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return Status::NotLeader("this node is shutting down");
  auto groups = groups_of_.find(module);
  if (groups == groups_of_.end()) {
    return Status::NotFound("module " + module + " is not deployed in this cluster");
  }
  for (int g = 0; g < groups->second; ++g) {
    if (led_.count({module, g}) != 0) continue;
    auto a = assignments_.find({module, g});
    std::string leader;
    if (a != assignments_.end()) {
      leader = a->second.state.leader;
      if (leader_address != nullptr)
        *leader_address = leader.empty() ? "" : a->second.leader_address;
    }
    if (leader.empty()) {
      return Status::NotLeader(
          "module " + module +
          " has no leader right now (no in-sync replica is live): retry later");
    }
    if (leader == options_.node_id) {
      return Status::NotLeader("module " + module + " is becoming led by this node: retry");
    }
    return Status::NotLeader("module " + module + " is led by node " + leader + " at " +
                             (leader_address != nullptr ? *leader_address : std::string()));
  }
  return Status::Ok();
}

Status ReplicaManager::CheckAppend(const std::string& module, std::string* leader_address) const {
  STRATA_RETURN_IF_ERROR(CheckLeader(module, leader_address));
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, led] : led_) {
    if (key.first != module) continue;
    const std::vector<std::string> isr = led.hw->isr();
    const int min_isr = led.hw->min_isr();
    if (static_cast<int>(isr.size()) < min_isr) {
      return Status::NotEnoughReplicas("module " + module + " has " + std::to_string(isr.size()) +
                                       " in-sync replica(s) " + Join(isr) +
                                       ", fewer than its min_isr " + std::to_string(min_isr) +
                                       ": the append was not executed");
    }
  }
  return Status::Ok();
}

Status ReplicaManager::WaitUntilLeading(const std::string& module,
                                        std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool led = changed_.wait_for(lock, timeout, [&] {
    return stop_ || led_.count({module, 0}) != 0;
  });
  if (!led || stop_) {
    return Status::Timeout("this node was not made leader of module " + module + " within " +
                           std::to_string(timeout.count()) + " ms");
  }
  return Status::Ok();
}

Status ReplicaManager::WaitUntilGone(const std::string& module, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool gone = changed_.wait_for(lock, timeout, [&] {
    return stop_ || (groups_of_.count(module) == 0 && dropping_.count(module) == 0);
  });
  if (!gone) {
    return Status::Timeout("the groups of module " + module + " were not removed within " +
                           std::to_string(timeout.count()) + " ms");
  }
  return Status::Ok();
}

void ReplicaManager::GateAck(const std::string& module, std::function<void(Status)> release,
                             int64_t through) {
  std::vector<std::pair<Key, std::shared_ptr<HighWatermark>>> hws;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, led] : led_) {
      if (key.first == module) hws.emplace_back(key, led.hw);
    }
  }
  if (hws.empty()) {
    release(Status::Aborted("the leadership of module " + module +
                            " moved before the append was replicated: it may or may not be kept"));
    return;
  }
  // Release once every group's high watermark passed its log end as of now (the append's
  // entries are below it: they committed before the gate was called).
  std::vector<ReplicaGroupStatus> statuses;
  for (auto& [key, hw] : hws) {
    Result<ReplicaGroupStatus> st = replication_.GroupStatus(key.first, key.second);
    if (!st.ok()) {
      release(Status::Aborted("the log of module " + module + " group " +
                              std::to_string(key.second) + " is gone (" + st.status().message() +
                              ") before the append was replicated: it may or may not be kept"));
      return;
    }
    statuses.push_back(*st);
  }
  auto remaining = std::make_shared<std::atomic<int>>(static_cast<int>(hws.size()));
  auto first_error = std::make_shared<std::once_flag>();
  auto shared_release = std::make_shared<std::function<void(Status)>>(std::move(release));
  for (size_t i = 0; i < hws.size(); ++i) {
    const std::shared_ptr<HighWatermark>& hw = hws[i].second;
    hw->LeaderDurable(statuses[i].durable_end);  // later flushes tell OnDurableEnd's listener
    const int64_t end = through >= 0 && hws[i].first.second == 0 ? through : statuses[i].log_end;
    hw->Wait(end, [remaining, first_error, shared_release](Status status) {
      if (!status.ok()) {
        std::call_once(*first_error, [&] { (*shared_release)(status); });
        remaining->store(-1000000);
        return;
      }
      if (remaining->fetch_sub(1) == 1) {
        std::call_once(*first_error, [&] { (*shared_release)(Status::Ok()); });
      }
    });
  }
}

void ReplicaManager::Fetch(const FetchAsk& ask, std::function<void(Result<FetchAnswer>)> done) {
  const Key key{ask.module, ask.group};
  std::shared_ptr<HighWatermark> hw = FindHw(key, ask.epoch);
  if (!hw) {
    std::string address;
    Status st = CheckLeader(ask.module, &address);
    done(Status::NotLeader("this node does not lead module " + ask.module + " group " +
                           std::to_string(ask.group) + " at epoch " + std::to_string(ask.epoch) +
                           (st.ok() ? "" : ": " + st.message())));
    return;
  }
  // Runs on whichever thread answers the poll, possibly once the manager is gone (the
  // engine releases the long polls it holds when it closes): it uses no member. Besides the
  // answer it gives the follower's report for the high watermark, which the caller makes
  // after sending the answer: the acknowledgements it releases run on this thread, and the
  // follower's next report waits for this answer.
  struct Answered {
    std::optional<Result<FetchAnswer>> result;
    std::function<void()> report;  // null when the fetch was refused
  };
  auto answer = [replication = &replication_, stopping = stopping_, key, hw](const FetchAsk& a,
                                                                             bool force) {
    Answered out;
    if (stopping->load()) {
      out.result = Result<FetchAnswer>(Status::NotLeader("this node is shutting down"));
      return out;
    }
    Result<ReplicaGroupStatus> st = replication->GroupStatus(key.first, key.second);
    if (!st.ok()) {
      out.result = Result<FetchAnswer>(st.status());
      return out;
    }
    // A poll answered late (its deadline, or released by Follow) must not speak for an
    // epoch this node no longer leads: its log may hold entries the new leader lacks.
    if (!st->leading || st->epoch != a.epoch) {
      out.result = Result<FetchAnswer>(
          Status::NotLeader("this node no longer leads module " + key.first + " group " +
                            std::to_string(key.second) + " at epoch " + std::to_string(a.epoch)));
      return out;
    }
    if (a.from < 0 || a.from > st->log_end) {
      out.result = Result<FetchAnswer>(Status::InvalidArgument(
          "fetch from offset " + std::to_string(a.from) + ", outside the log [0, " +
          std::to_string(st->log_end) + "] of module " + key.first));
      return out;
    }
    // A follower has durably at most the log it has (`from`): no more counts towards the
    // high watermark, whatever it reports.
    out.report = [hw, node = a.node, durable = std::min(a.durable_end, a.from),
                  caught_up = a.from >= st->log_end,
                  at = Clock::now()] { hw->FollowerFetched(node, durable, caught_up, at); };
    if (a.from < st->log_start) {  // compacted away: the follower loads a snapshot
      FetchAnswer compacted;
      compacted.epoch = a.epoch;
      compacted.log_end = st->log_end;
      compacted.high_watermark = hw->Value();
      compacted.log_start = st->log_start;
      out.result = Result<FetchAnswer>(std::move(compacted));
      return out;
    }
    if (a.from >= st->log_end && !force) return out;
    FetchAnswer fetched;
    fetched.epoch = a.epoch;
    Result<std::vector<ReplicaEntry>> entries =
        replication->Read(key.first, key.second, a.from, INT64_MAX, a.max_bytes);
    if (!entries.ok() && entries.status().code() == StatusCode::kNotFound) {
      // A compaction passed `from` since the status was read: the follower loads a snapshot.
      Result<ReplicaGroupStatus> now = replication->GroupStatus(key.first, key.second);
      if (now.ok() && a.from < now->log_start) {
        fetched.log_end = now->log_end;
        fetched.high_watermark = hw->Value();
        fetched.log_start = now->log_start;
        out.result = Result<FetchAnswer>(std::move(fetched));
        return out;
      }
    }
    if (!entries.ok()) {
      out.result = Result<FetchAnswer>(entries.status());
      return out;
    }
    fetched.entries = std::move(entries).value();
    fetched.log_end = st->log_end;
    fetched.high_watermark = hw->Value();
    fetched.log_start = st->log_start;
    out.result = Result<FetchAnswer>(std::move(fetched));
    return out;
  };
  Answered now = answer(ask, ask.wait.count() == 0);
  if (now.result) {
    done(std::move(*now.result));
    if (now.report) now.report();
    return;
  }
  now.report();
  auto poll = std::make_shared<Poll>();
  poll->ask = ask;
  poll->done = std::move(done);
  poll->deadline = Clock::now() + ask.wait;
  auto fire = [poll, answer]() {
    if (poll->answered.exchange(true)) return;
    Answered later = answer(poll->ask, true);
    poll->done(std::move(*later.result));
    if (later.report) later.report();
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Shutdown answers the polls it finds here; one that comes later is answered now.
    if (!stop_) polls_.push_back({poll->deadline, fire});
  }
  if (stopping_->load()) return fire();
  // A poll that joins a callback registered for a smaller `from` may be answered early,
  // empty: the follower asks again.
  if (waiting_->Add(key, Waiting::Waiter{poll, fire})) {
    replication_.WhenLogPasses(key.first, key.second, ask.from,
                               [waiting = waiting_, key] { waiting->Release(key); });
  }
}

Result<EpochEnd> ReplicaManager::EpochEndFor(const std::string& module, int group, int64_t epoch,
                                             int64_t log_epoch) {
  if (!FindHw({module, group}, epoch)) {
    return Status::NotLeader("this node does not lead module " + module + " group " +
                             std::to_string(group) + " at epoch " + std::to_string(epoch));
  }
  return replication_.EndOffsetFor(module, group, log_epoch);
}

void ReplicaManager::Tick() {
  const auto now = Clock::now();
  // Long polls past their deadline are answered (empty).
  std::vector<std::function<void()>> expired;
  std::vector<std::tuple<Key, int64_t, std::vector<std::string>>> requests;
  std::vector<std::pair<Key, std::shared_ptr<HighWatermark>>> hws;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = polls_.begin(); it != polls_.end();) {
      if (it->first <= now) {
        expired.push_back(std::move(it->second));
        it = polls_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [key, led] : led_) {
      hws.emplace_back(key, led.hw);
      std::vector<std::string> wanted = led.hw->WantedIsr(led.replicas, options_.replica_lag, now);
      if (wanted.empty()) continue;
      if (wanted == led.last_isr_asked && now - led.last_isr_request < kIsrRequestInterval)
        continue;
      led.last_isr_asked = wanted;
      led.last_isr_request = now;
      // Before the request leaves: the controller may apply it at once.
      led.hw->IsrRequested(wanted);
      requests.emplace_back(key, led.epoch, std::move(wanted));
    }
  }
  for (auto& fire : expired) fire();
  for (auto& [key, hw] : hws) RefreshLeaderDurable(key, hw);
  if (now - last_compaction_ >= kCompactionInterval) {
    last_compaction_ = now;
    CompactLogs();
  }
  for (auto& [key, epoch, isr] : requests) {
    if (!options_.request_isr_change) continue;
    Status st = options_.request_isr_change(key.first, key.second, epoch, isr);
    if (options_.log_info) {
      options_.log_info("replication: module " + key.first + " group " +
                        std::to_string(key.second) + " asks the controller for isr " + Join(isr) +
                        (st.ok() ? "" : " (failed: " + st.ToString() + ")"));
    }
  }
}

void ReplicaManager::CompactLogs() {
  const int64_t retention = options_.log_retention;
  if (retention <= 0) return;
  // Each group with the bound its compaction may not pass: a leader's high watermark (the
  // entries above it may still be shipped to in-sync replicas), a follower's none (its
  // compaction stops at its applied end).
  std::vector<std::pair<Key, int64_t>> groups;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, led] : led_) groups.emplace_back(key, led.hw->Value());
    for (const auto& [key, fetcher] : fetchers_) groups.emplace_back(key, INT64_MAX);
  }
  for (const auto& [key, bound] : groups) {
    Result<ReplicaGroupStatus> st = replication_.GroupStatus(key.first, key.second);
    if (!st.ok() || st->rebuilding) continue;
    const int64_t target = std::min(bound, st->log_end - retention);
    // In steps of an eighth of the retention, so that a busy log is not compacted entry by
    // entry.
    if (target - st->log_start < std::max<int64_t>(1, retention / 8)) continue;
    Result<int64_t> start = replication_.Compact(
        key.first, key.second, std::min(target, st->log_start + kMaxCompactedEntries));
    if (!start.ok() && options_.log_warning) {
      options_.log_warning("replication: module " + key.first + " group " +
                           std::to_string(key.second) +
                           ": compacting the log failed: " + start.status().ToString());
    }
  }
}

Result<SnapshotChunk> ReplicaManager::Snapshot(const SnapshotAsk& ask) {
  const Key key{ask.module, ask.group};
  std::shared_ptr<HighWatermark> hw = FindHw(key, ask.epoch);
  if (!hw) {
    return Status::NotLeader("this node does not lead module " + ask.module + " group " +
                             std::to_string(ask.group) + " at epoch " + std::to_string(ask.epoch));
  }
  std::vector<std::string> isr = hw->isr();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = assignments_.find(key);
    if (it != assignments_.end()) {
      for (const std::string& n : it->second.state.isr) {
        if (std::count(isr.begin(), isr.end(), n) == 0) isr.push_back(n);
      }
    }
  }
  const bool in_isr = std::count(isr.begin(), isr.end(), ask.node) != 0;
  // One in-sync replica at a time leaves to reload its copy (after an update, each asks
  // while its copy is still whole and promotable): the others stay in the ISR meanwhile,
  // so that a failover finds one and appends keep their min_isr.
  if (in_isr && hw->OtherRebuilding(ask.node, options_.replica_lag, Clock::now())) {
    return Status::Busy("another replica of module " + ask.module + " group " +
                        std::to_string(ask.group) +
                        " is loading a snapshot: one in-sync replica leaves at a time; ask "
                        "again");
  }
  // A replica whose tables are replaced may not be promoted meanwhile: it leaves the ISR
  // first, through the ticker's requests (the only ones this leader makes, in order), and
  // is not asked back before it caught up again.
  hw->Rebuilding(ask.node);
  if (in_isr) {
    return Status::Aborted(
        "node " + ask.node + " is in the in-sync replicas of module " + ask.module + " group " +
        std::to_string(ask.group) +
        ": it leaves it (the leader asks the controller) before the leader sends a "
        "snapshot; ask again");
  }
  return replication_.ReadSnapshot(ask.module, ask.group, ask.after, ask.max_bytes);
}

std::vector<ReplicaManager::GroupReport> ReplicaManager::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<GroupReport> out;
  for (const auto& [key, a] : assignments_) {
    if (std::count(a.state.replicas.begin(), a.state.replicas.end(), options_.node_id) == 0) {
      continue;
    }
    GroupReport r;
    r.module = key.first;
    r.group = key.second;
    auto led = led_.find(key);
    r.role = led != led_.end() ? "leader" : "follower";
    r.epoch = a.state.epoch;
    if (led != led_.end()) r.high_watermark = led->second.hw->Value();
    r.isr = a.state.isr;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace strata::cluster
