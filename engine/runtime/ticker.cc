// The ticker (ticker.h).
#include "runtime/ticker.h"

#include <chrono>
#include <set>

#include "runtime/engine_impl.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

constexpr std::chrono::milliseconds kResolution{5};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void Ticker::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Ticker::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void Ticker::Run() {
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (stop_) return;
      cv_.WaitFor(&mu_, kResolution);
      if (stop_) return;
    }
    TickOnce(NowMs());
  }
}

void Ticker::TickOnce(int64_t now_ms) {
  std::vector<std::shared_ptr<ModuleRuntime>> modules;
  {
    ReaderMutexLock lock(&engine_.modules_mu_);
    for (const auto& [name, m] : engine_.modules_) {
      for (const DepotDef& d : m->def->depots) {
        if (d.tick_interval_ms > 0) {
          modules.push_back(m);
          break;
        }
      }
    }
  }
  std::set<std::pair<std::string, std::string>> seen;
  for (const std::shared_ptr<ModuleRuntime>& m : modules) {
    // The update gate's lock is held while ticks are posted: once Quiesce has closed the
    // gate, no tick is posted until the next version runs (Quiesce drains those before).
    MutexLock lock(&m->hold_mu);
    if (m->updating || m->successor || !m->gone.empty()) continue;  // no tick while updated
    if (m->closed.load()) continue;
    for (int d = 0; d < static_cast<int>(m->def->depots.size()); ++d) {
      const int64_t interval = m->def->depots[d].tick_interval_ms;
      if (interval <= 0) continue;
      Result<int64_t> end = m->depots[d]->EndOffset(0);
      if (!end.ok()) continue;
      seen.insert({m->name, m->def->depots[d].name});
      auto [it, fresh] = due_.try_emplace({m->name, m->def->depots[d].name});
      Due& due = it->second;
      // Another depot of that name (the module destroyed and deployed again, or rescaled):
      // start over from its own last tick.
      if (!fresh && (due.depot != m->depots[d].get() || *end < due.posted_end)) {
        due = Due();
        fresh = true;
      }
      due.depot = m->depots[d].get();
      if (fresh) {
        // The last tick in the depot (the engine's earlier life): no burst after a restart.
        if (*end > 0) {
          Result<std::unique_ptr<Session>> session = engine_.TakeSession();
          if (!session.ok()) continue;
          Result<std::vector<DepotRecord>> last =
              m->depots[d]->Read(**session, 0, *end - 1, *end, 1);
          engine_.ReturnSession(std::move(session).value());
          if (last.ok() && !last->empty()) {
            Result<Value> v = DecodeValue(last->front().data);
            if (v.ok() && v->is_int()) due.last = v->as_int();
          }
        }
        due.next_ms = std::max(now_ms, due.last + interval);
      }
      if (now_ms < due.next_ms) continue;
      if (due.posted_end >= 0 && *end <= due.posted_end) continue;  // the last one is pending
      // Due times already past are skipped, never appended.
      due.next_ms += ((now_ms - due.next_ms) / interval + 1) * interval;
      const int64_t t = std::max(now_ms, due.last + 1);
      due.last = t;
      due.posted_end = *end;
      AppendItem item;
      item.record = Value(t);
      AppendValue(item.record, &item.bytes);
      std::vector<AppendItem> items;
      items.push_back(std::move(item));
      engine_.PostAppend(m, d, 0, std::move(items));
    }
  }
  std::erase_if(due_, [&](const auto& entry) { return seen.count(entry.first) == 0; });
}

}  // namespace strata::runtime
