// The live subscriptions of one binary connection and their pending pushes
// (docs/subscriptions.md, "Flow control"). Engine threads hand it each subscription's events
// (OnEvent); the connection's thread takes the encoded SubscriptionUpdate frames when its
// socket has room (Take). Memory is bounded: once the frames waiting over all of the
// connection's subscriptions would pass `max_pending_bytes`, the subscription whose event
// arrives drops its waiting frames and is marked for one RESYNC carrying its latest value
// (which the engine holds anyway), sent when the socket drains — a slow reader gets fewer,
// coarser updates, never unbounded memory.
//
// Order: a subscription's updates are taken only after Announce, which the connection calls
// once the Subscribed response is queued, so the client always sees Subscribed first; then
// in the order of its events.
//
// Threading: every method is thread-safe; `wake` is called with no lock held.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "strata/engine.h"
#include "strata/protocol/messages.h"
#include "strata/thread_annotations.h"

namespace strata::server {

struct SubscriptionLimits {
  size_t max_per_connection = 10'000;
  uint64_t max_pending_bytes = 1 << 20;
  uint32_t max_frame_size = 16 << 20;
};

class SubscriptionOutbox {
 public:
  // `wake` is called (from the thread of OnEvent) when frames become ready to take and none
  // were ready before: the connection posts a Take to its thread.
  SubscriptionOutbox(const SubscriptionLimits& limits, std::function<void()> wake)
      : limits_(limits), wake_(std::move(wake)) {}

  // Reserves a place for one subscription under max_per_connection; false when none is
  // left. Each successful Reserve is matched by Started (which keeps it) or Unreserve.
  bool Reserve() EXCLUDES(mu_);
  void Unreserve() EXCLUDES(mu_);

  // The engine's callback for every subscription of the connection (any engine thread).
  void OnEvent(const SubscriptionEvent& event) EXCLUDES(mu_);

  // After Engine::Subscribe returned `id`: the partition and the first value its kStarted
  // carried. nullopt when the outbox was closed meanwhile (the caller unsubscribes `id`).
  std::optional<std::pair<int, std::shared_ptr<const Value>>> Started(uint64_t id) EXCLUDES(mu_);
  // The connection's thread, once the Subscribed response of `id` is queued for writing.
  void Announce(uint64_t id) EXCLUDES(mu_);
  // The connection's thread: encoded frames (length prefix included) ready to write, about
  // `max_bytes` of them at most (at least one when any is ready).
  std::vector<std::string> Take(uint64_t max_bytes) EXCLUDES(mu_);
  // Forgets `id` and its pending frames; false when it is not this connection's.
  bool Remove(uint64_t id) EXCLUDES(mu_);
  // Queues an ended update for every subscription (the server drains) and forgets them
  // once those are taken; returns their ids, for the caller to unsubscribe.
  std::vector<uint64_t> EndAll(const protocol::Error& why) EXCLUDES(mu_);
  // The connection closed: returns the ids still subscribed (the caller unsubscribes them);
  // later events are dropped.
  std::vector<uint64_t> Close() EXCLUDES(mu_);
  size_t open() const EXCLUDES(mu_);
  uint32_t max_frame_size() const { return limits_.max_frame_size; }
  uint64_t pending_bytes() const EXCLUDES(mu_);

 private:
  struct Entry {
    int partition = 0;
    std::shared_ptr<const Value> first;  // kStarted's value, until Started takes it
    bool announced = false;
    bool ready = false;  // in ready_
    std::deque<std::string> frames;
    uint64_t bytes = 0;
    // Collapsed: the frames were dropped; one RESYNC of `latest` goes next.
    bool collapsed = false;
    std::shared_ptr<const Value> latest;
    bool ended = false;  // its last frame (the ended update) is queued
  };
  // Makes `entry` of `id` ready when it has something to send; true when the outbox went
  // from nothing ready to something ready (wake the connection).
  bool MarkReady(uint64_t id, Entry& entry) REQUIRES(mu_);
  // Appends `frame` to the entry's waiting frames; true as MarkReady.
  bool Queue(uint64_t id, Entry& entry, std::string frame) REQUIRES(mu_);
  void Drop(Entry& entry) REQUIRES(mu_);
  static std::string Frame(const protocol::SubscriptionUpdate& update);

  const SubscriptionLimits limits_;
  const std::function<void()> wake_;
  mutable Mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_ GUARDED_BY(mu_);
  std::deque<uint64_t> ready_ GUARDED_BY(mu_);
  size_t reserved_ GUARDED_BY(mu_) = 0;   // Reserve calls not yet Started or Unreserved
  uint64_t pending_ GUARDED_BY(mu_) = 0;  // bytes of frames over the entries
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace strata::server
