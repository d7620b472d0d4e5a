#include "runtime/subscriptions.h"

#include <algorithm>
#include <utility>

namespace strata::runtime {

std::optional<Value> LeadingKey(const Path& path) {
  const std::vector<Navigator>& navs = path.navigators();
  if (navs.empty()) return std::nullopt;
  const Navigator& first = navs.front();
  if (first.kind != Navigator::Kind::kKey && first.kind != Navigator::Kind::kMust) {
    return std::nullopt;
  }
  return first.keys.front();
}

Result<uint64_t> SubscriptionHub::Subscribe(Session& session, const ModuleRuntime& m, int pstate,
                                            int partition, const Path& path,
                                            const SubscribeOptions& options,
                                            SubscriptionCallback callback) {
  auto sub = std::make_shared<Subscription>();
  sub->module = m.name;
  sub->pstate = m.def->pstates[pstate].name;
  sub->partition = partition;
  sub->path = path;
  sub->lead = LeadingKey(path);
  sub->options = options;
  sub->callback = std::move(callback);
  // Registered before the first read (under the subscription's lock, which a racing
  // Notify waits for): a commit after the read is pushed, one before it is in the value.
  MutexLock hold(&sub->mu);
  {
    MutexLock lock(&mu_);
    if (open_.load() >= max_) {
      return Status::Busy("the server has " + std::to_string(max_) +
                          " subscriptions open, its limit: unsubscribe some first");
    }
    sub->id = next_id_.fetch_add(1);
    Slot& slot = slots_[{sub->module, sub->pstate, partition}];
    if (sub->lead) {
      slot.keyed.emplace(*sub->lead, sub);
    } else {
      slot.unkeyed.push_back(sub);
    }
    by_id_.emplace(sub->id, sub);
    open_.fetch_add(1, std::memory_order_release);
  }
  Result<Value> first = Read(session, *m.pstates[pstate], *sub);
  if (!first.ok()) {
    MutexLock lock(&mu_);
    Unregister(*sub);
    return first.status();
  }
  sub->last = std::make_shared<const Value>(std::move(first).value());
  SubscriptionEvent started = sub->Event(SubscriptionEvent::Kind::kStarted);
  started.value = sub->last;
  sub->callback(started);
  events_.fetch_add(1, std::memory_order_relaxed);
  return sub->id;
}

void SubscriptionHub::Unsubscribe(uint64_t id) {
  Sub sub;
  {
    MutexLock lock(&mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    sub = it->second;
    Unregister(*sub);
  }
  MutexLock hold(&sub->mu);  // waits for a callback that is running
  sub->done = true;
}

void SubscriptionHub::Unregister(const Subscription& sub) {
  if (by_id_.erase(sub.id) == 0) return;
  open_.fetch_sub(1, std::memory_order_release);
  auto slot = slots_.find({sub.module, sub.pstate, sub.partition});
  if (slot == slots_.end()) return;
  if (sub.lead) {
    auto [from, to] = slot->second.keyed.equal_range(*sub.lead);
    for (auto it = from; it != to; ++it) {
      if (it->second.get() == &sub) {
        slot->second.keyed.erase(it);
        break;
      }
    }
  } else {
    std::erase_if(slot->second.unkeyed, [&sub](const Sub& s) { return s.get() == &sub; });
  }
  if (slot->second.keyed.empty() && slot->second.unkeyed.empty()) slots_.erase(slot);
}

Result<Value> SubscriptionHub::Read(Session& session, const PState& pstate,
                                    const Subscription& sub) {
  const bool snapshot = !pstate.ReadsOneRecord(sub.path);
  if (snapshot) STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
  Result<std::vector<Value>> values = pstate.Select(session, sub.partition, sub.path);
  if (snapshot) session.Rollback();
  if (!values.ok()) return values.status();
  if (!sub.options.one) return Value(std::move(values).value());
  if (values->size() > 1) {
    return Status::InvalidArgument("the path " + sub.path.ToString() + " selects " +
                                   std::to_string(values->size()) + " values of " + sub.pstate +
                                   ": a subscription with one selects at most one");
  }
  return values->empty() ? Value() : std::move(values->front());
}

void SubscriptionHub::Push(Session& session, const PState& pstate, Subscription& sub) {
  MutexLock hold(&sub.mu);
  if (sub.done) return;
  Result<Value> now = Read(session, pstate, sub);
  if (!now.ok()) {
    {
      MutexLock lock(&mu_);
      Unregister(sub);
    }
    return Deliver(sub, now.status());
  }
  if (*now == *sub.last) return;
  SubscriptionEvent changed = sub.Event(SubscriptionEvent::Kind::kChanged);
  std::optional<std::vector<Diff>> diffs = DiffValues(*sub.last, *now, sub.options.max_diffs);
  if (diffs) {
    changed.diffs = std::move(*diffs);
  } else {
    changed.diffs.push_back(Diff{Diff::Op::kResync, {}, Value(), *now, 0});
  }
  sub.last = std::make_shared<const Value>(std::move(now).value());
  changed.value = sub.last;
  sub.callback(changed);
  events_.fetch_add(1, std::memory_order_relaxed);
}

void SubscriptionHub::Notify(Session& session, const ModuleRuntime& m, int partition,
                             const std::vector<Touch>& touched) {
  if (touched.empty() || !active()) return;
  // The subscriptions to read again, by PState index; each once.
  std::vector<std::pair<int, Sub>> due;
  {
    MutexLock lock(&mu_);
    for (const Touch& touch : touched) {
      auto slot = slots_.find({m.name, m.def->pstates[touch.pstate].name, partition});
      if (slot == slots_.end()) continue;
      for (const Sub& sub : slot->second.unkeyed) due.emplace_back(touch.pstate, sub);
      if (touch.key) {
        auto [from, to] = slot->second.keyed.equal_range(*touch.key);
        for (auto it = from; it != to; ++it) due.emplace_back(touch.pstate, it->second);
      } else {
        for (const auto& [key, sub] : slot->second.keyed) due.emplace_back(touch.pstate, sub);
      }
    }
  }
  std::sort(due.begin(), due.end(),
            [](const auto& a, const auto& b) { return a.second->id < b.second->id; });
  due.erase(std::unique(due.begin(), due.end(),
                        [](const auto& a, const auto& b) { return a.second == b.second; }),
            due.end());
  for (const auto& [pstate, sub] : due) Push(session, *m.pstates[pstate], *sub);
}

void SubscriptionHub::Refresh(Session& session, const ModuleRuntime& m,
                              const std::set<std::string>& pstates) {
  std::vector<std::pair<int, Sub>> due;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, sub] : by_id_) {
      if (sub->module != m.name || (!pstates.empty() && !pstates.contains(sub->pstate))) continue;
      for (size_t p = 0; p < m.def->pstates.size(); ++p) {
        if (m.def->pstates[p].name == sub->pstate) due.emplace_back(static_cast<int>(p), sub);
      }
    }
  }
  for (const auto& [pstate, sub] : due) Push(session, *m.pstates[pstate], *sub);
}

void SubscriptionHub::Deliver(Subscription& sub, const Status& why) {
  sub.done = true;
  SubscriptionEvent ended = sub.Event(SubscriptionEvent::Kind::kEnded);
  ended.ended = why;
  sub.callback(ended);
  events_.fetch_add(1, std::memory_order_relaxed);
}

void SubscriptionHub::EndWhere(const std::function<bool(const Subscription&)>& which,
                               const Status& why) {
  std::vector<Sub> ending;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, sub] : by_id_) {
      if (which(*sub)) ending.push_back(sub);
    }
    for (const Sub& sub : ending) Unregister(*sub);
  }
  for (const Sub& sub : ending) {
    MutexLock hold(&sub->mu);
    if (!sub->done) Deliver(*sub, why);
  }
}

void SubscriptionHub::End(const std::string& module,
                          const std::function<bool(const std::string&)>& which, const Status& why) {
  EndWhere(
      [&](const Subscription& sub) {
        return sub.module == module && (!which || which(sub.pstate));
      },
      why);
}

void SubscriptionHub::EndAll(const Status& why) {
  EndWhere([](const Subscription&) { return true; }, why);
}

}  // namespace strata::runtime
