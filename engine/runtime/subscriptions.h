// Live subscriptions (docs/subscriptions.md): the registry of Engine::Subscribe's
// subscriptions and the push of their changes after commits.
//
// How a change is found: every writer of a PState (a stream event group, a microbatch
// batch) records, while any subscription is open, which locations its transforms touched
// — the PState and, when the transform's path starts with key(k) or must(k), that key
// (Touch). After its commit the writer calls Notify on its own thread: the subscriptions of
// the partition whose path can see a touched location (their first key is the touched key,
// or one of the two paths has no first key) are read again, and the new value is compared
// with the one last pushed (DiffValues) to give the diffs.
//
// Order and consistency: each subscription's reads and callbacks run under its own mutex,
// and each read sees all commits made before it, so the values pushed are successive
// committed states; the start reads under the same mutex after registering, so a commit
// racing with it is pushed or already in the first value, never lost.
//
// Threading: every method is thread-safe. Callbacks run with no hub lock held.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "runtime/module_runtime.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

// A location a transaction wrote: PState `pstate` (index in its module) and, when the
// transform's path starts with key/must, its first key (else anywhere in the partition).
struct Touch {
  int pstate = 0;
  std::optional<Value> key;
};

// The first key `path` navigates by (key or must), if it starts with one.
std::optional<Value> LeadingKey(const Path& path);

// Whether a writer of `m` records its touches now: `m` is live (not a rebuild's shadow) and
// a subscription is open. Any thread, cheap (defined below the hub).
inline bool Watched(const ModuleRuntime& m);

class SubscriptionHub {
 public:
  explicit SubscriptionHub(int64_t max_subscriptions) : max_(max_subscriptions) {}

  // Whether any subscription is open: writers record touches only then. Any thread, cheap.
  bool active() const { return open_.load(std::memory_order_acquire) > 0; }
  int64_t open() const { return open_.load(std::memory_order_relaxed); }
  // Events delivered since the engine opened (kStarted, kChanged, kEnded).
  int64_t events() const { return events_.load(std::memory_order_relaxed); }

  // Engine::Subscribe once the module, PState and partition are resolved: registers the
  // subscription, reads its first value with `session` (no transaction open) and delivers
  // kStarted. kBusy over the cap; the read's error (nothing registered) otherwise.
  Result<uint64_t> Subscribe(Session& session, const ModuleRuntime& m, int pstate, int partition,
                             const Path& path, const SubscribeOptions& options,
                             SubscriptionCallback callback) EXCLUDES(mu_);
  void Unsubscribe(uint64_t id) EXCLUDES(mu_);

  // After a commit of `m` that wrote `touched` in `partition`, on the writer's thread with
  // `session` (no transaction open): pushes the changes of the subscriptions that can see
  // them. Shadow runtimes (a rebuild's) must not call it.
  void Notify(Session& session, const ModuleRuntime& m, int partition,
              const std::vector<Touch>& touched) EXCLUDES(mu_);
  // Reads every subscription of module m.name whose PState is in `pstates` again (all of
  // them when empty), against `m`: after a recompute swapped tables or an update installed
  // a new version.
  void Refresh(Session& session, const ModuleRuntime& m, const std::set<std::string>& pstates)
      EXCLUDES(mu_);
  // Ends with `why` every subscription of `module` whose PState `which` accepts (all when
  // it is null).
  void End(const std::string& module, const std::function<bool(const std::string&)>& which,
           const Status& why) EXCLUDES(mu_);
  // Ends every subscription (the engine closes).
  void EndAll(const Status& why) EXCLUDES(mu_);

 private:
  struct Subscription {
    uint64_t id = 0;
    std::string module;
    std::string pstate;  // declared name, with "$$"
    int partition = 0;
    Path path;
    std::optional<Value> lead;  // LeadingKey(path)
    SubscribeOptions options;
    SubscriptionCallback callback;
    Mutex mu;
    std::shared_ptr<const Value> last GUARDED_BY(mu);  // the value last pushed
    bool done GUARDED_BY(mu) = false;                  // ended or unsubscribed
    SubscriptionEvent Event(SubscriptionEvent::Kind kind) const {
      SubscriptionEvent event;
      event.kind = kind;
      event.subscription = id;
      event.partition = partition;
      return event;
    }
  };
  using Sub = std::shared_ptr<Subscription>;
  // The subscriptions of one PState partition: by their path's first key, and those
  // whose path has none.
  struct Slot {
    std::multimap<Value, Sub> keyed;
    std::vector<Sub> unkeyed;
  };
  using SlotKey = std::tuple<std::string, std::string, int>;  // module, PState, partition

  // Reads the subscribed value (SubscribeOptions::one applied) in one snapshot.
  static Result<Value> Read(Session& session, const PState& pstate, const Subscription& sub);
  // Reads `sub` again and delivers the change, if any; ends it on a read error.
  void Push(Session& session, const PState& pstate, Subscription& sub);
  // Marks `sub` done and delivers its kEnded with `why` (the caller holds sub.mu).
  void Deliver(Subscription& sub, const Status& why) REQUIRES(sub.mu);
  // Unregisters every subscription `which` accepts and ends those not done yet.
  void EndWhere(const std::function<bool(const Subscription&)>& which, const Status& why)
      EXCLUDES(mu_);
  // Removes `sub` from the registry, if it is there.
  void Unregister(const Subscription& sub) REQUIRES(mu_);

  const int64_t max_;
  std::atomic<int64_t> open_{0};
  std::atomic<int64_t> events_{0};
  std::atomic<uint64_t> next_id_{1};
  Mutex mu_;
  std::map<SlotKey, Slot> slots_ GUARDED_BY(mu_);
  std::unordered_map<uint64_t, Sub> by_id_ GUARDED_BY(mu_);
};

inline bool Watched(const ModuleRuntime& m) {
  return m.subscriptions != nullptr && m.subscriptions->active();
}

}  // namespace strata::runtime
