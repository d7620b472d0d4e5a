#include "high_watermark.h"

#include <algorithm>

namespace strata::cluster {

HighWatermark::HighWatermark(std::string leader, std::vector<std::string> isr, int min_isr)
    : leader_(std::move(leader)) {
  MutexLock lock(&mu_);
  isr_ = std::move(isr);
  min_isr_ = min_isr;
}

void HighWatermark::Run(std::vector<std::pair<std::function<void(Status)>, Status>>& ready) {
  for (auto& [done, status] : ready) done(status);
}

int64_t HighWatermark::ValueLocked() const {
  int64_t value = leader_durable_;
  for (const std::string& node : isr_) {
    if (node == leader_) continue;
    auto it = followers_.find(node);
    value = std::min(value, it == followers_.end() ? 0 : it->second.durable_end);
  }
  for (const std::string& node : joining_) {
    auto it = followers_.find(node);
    value = std::min(value, it == followers_.end() ? 0 : it->second.durable_end);
  }
  return value;
}

void HighWatermark::CollectLocked(
    std::vector<std::pair<std::function<void(Status)>, Status>>* ready) {
  const int64_t value = ValueLocked();
  const bool enough = static_cast<int>(isr_.size()) >= min_isr_;
  while (!waiters_.empty() && waiters_.begin()->first <= value) {
    auto it = waiters_.begin();
    ready->emplace_back(
        std::move(it->second),
        enough ? Status::Ok()
               : Status::NotEnoughReplicas("the in-sync replicas (" + std::to_string(isr_.size()) +
                                           ") fell below min_isr " + std::to_string(min_isr_) +
                                           " while the append waited: it may or may not be kept"));
    waiters_.erase(it);
  }
}

void HighWatermark::SetIsr(std::vector<std::string> isr, int min_isr) {
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  {
    MutexLock lock(&mu_);
    isr_ = std::move(isr);
    min_isr_ = min_isr;
    for (const std::string& node : isr_) joining_.erase(node);
    CollectLocked(&ready);
  }
  Run(ready);
}

void HighWatermark::LeaderDurable(int64_t durable_end) {
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  {
    MutexLock lock(&mu_);
    leader_durable_ = std::max(leader_durable_, durable_end);
    CollectLocked(&ready);
  }
  Run(ready);
}

void HighWatermark::FollowerFetched(const std::string& node, int64_t durable_end, bool caught_up,
                                    Clock::time_point now) {
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  {
    MutexLock lock(&mu_);
    Follower& f = followers_[node];
    // A follower's durable end only falls when it truncated (a new leader's log): it is
    // what it reports.
    f.durable_end = durable_end;
    f.caught_up = caught_up;
    f.ever_fetched = true;
    f.last_fetch = now;
    if (caught_up) {
      f.last_caught_up = now;
      f.rebuilding = false;
    }
    CollectLocked(&ready);
  }
  Run(ready);
}

int64_t HighWatermark::Value() const {
  MutexLock lock(&mu_);
  return ValueLocked();
}

std::vector<std::string> HighWatermark::isr() const {
  MutexLock lock(&mu_);
  return isr_;
}

int HighWatermark::min_isr() const {
  MutexLock lock(&mu_);
  return min_isr_;
}

void HighWatermark::Wait(int64_t end, std::function<void(Status)> done) {
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  {
    MutexLock lock(&mu_);
    if (!failed_.ok()) {
      ready.emplace_back(std::move(done), failed_);
    } else {
      waiters_.emplace(end, std::move(done));
      CollectLocked(&ready);
    }
  }
  Run(ready);
}

void HighWatermark::FailAll(const Status& status) {
  std::vector<std::pair<std::function<void(Status)>, Status>> ready;
  {
    MutexLock lock(&mu_);
    failed_ = status;
    for (auto& [end, done] : waiters_) ready.emplace_back(std::move(done), status);
    waiters_.clear();
  }
  Run(ready);
}

std::vector<std::string> HighWatermark::WantedIsr(const std::vector<std::string>& replicas,
                                                  std::chrono::milliseconds lag,
                                                  Clock::time_point now) {
  MutexLock lock(&mu_);
  std::erase_if(joining_, [&](const std::string& node) {
    mu_.AssertHeld();  // held by the caller (the analysis does not follow it into a lambda)
    auto it = followers_.find(node);
    return it == followers_.end() || now - it->second.last_fetch > lag;
  });
  const int64_t value = ValueLocked();
  std::vector<std::string> wanted;
  for (const std::string& node : replicas) {
    const bool in = std::find(isr_.begin(), isr_.end(), node) != isr_.end();
    if (node == leader_) {
      wanted.push_back(node);
      continue;
    }
    auto it = followers_.find(node);
    if (it != followers_.end() && it->second.rebuilding) continue;  // out, and stays out
    if (in) {
      // A member that never fetched counts from when this leader started leading.
      const Clock::time_point since =
          it == followers_.end() || !it->second.ever_fetched
              ? created_
              : (it->second.caught_up ? now : it->second.last_caught_up);
      if (it != followers_.end() && it->second.ever_fetched &&
          it->second.last_caught_up == Clock::time_point{} && !it->second.caught_up) {
        // Fetched but never caught up under this leader: lagging since it started.
        if (now - created_ <= lag) wanted.push_back(node);
        continue;
      }
      if (now - since <= lag) wanted.push_back(node);
    } else if (it != followers_.end() && it->second.caught_up && it->second.durable_end >= value &&
               now - it->second.last_fetch <= lag) {
      // Every entry below the high watermark (which it may have acknowledged) must be
      // durable on a member: the controller may promote it.
      wanted.push_back(node);
    }
  }
  std::vector<std::string> current = isr_;
  std::vector<std::string> sorted_wanted = wanted;
  std::sort(current.begin(), current.end());
  std::sort(sorted_wanted.begin(), sorted_wanted.end());
  if (current == sorted_wanted) return {};
  return wanted;
}

void HighWatermark::Rebuilding(const std::string& node) {
  MutexLock lock(&mu_);
  Follower& f = followers_[node];
  f.rebuilding = true;
  f.caught_up = false;
  f.last_snapshot_ask = Clock::now();
  joining_.erase(node);
}

bool HighWatermark::OtherRebuilding(const std::string& node, std::chrono::milliseconds lag,
                                    Clock::time_point now) const {
  MutexLock lock(&mu_);
  for (const auto& [other, f] : followers_) {
    if (other == node || !f.rebuilding) continue;
    if (now - std::max(f.last_fetch, f.last_snapshot_ask) < lag) return true;
  }
  return false;
}

void HighWatermark::IsrRequested(const std::vector<std::string>& isr) {
  MutexLock lock(&mu_);
  for (const std::string& node : isr) {
    if (node != leader_ && std::find(isr_.begin(), isr_.end(), node) == isr_.end()) {
      joining_.insert(node);
    }
  }
}

}  // namespace strata::cluster
