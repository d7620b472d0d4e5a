// Live subscriptions over HTTP (docs/http.md, "Subscribe"): GET
// /rest/MODULE/pstate/PSTATE/subscribe answers a Server-Sent Events stream fed by
// Engine::Subscribe — an event `subscribed` with the first value, an `update` per change with
// its diffs, and `ended` when the engine ends the subscription or the server stops.
//
// Bounds: each open stream holds one HTTP worker thread, so at most `max_streams` are open at
// once (more get 503 OVERLOADED) and the REST API keeps the other threads. Per stream at most
// `max_pending_events` updates wait for the socket; past that they collapse into one
// `update` with a single `resync` diff carrying the latest value (the engine holds it
// anyway), so a slow reader gets coarser updates, never unbounded memory.
//
// Threading: Serve runs on an HTTP worker thread and streams on it until the stream ends (the
// client closes it, the subscription ends, Shutdown). Engine threads only queue events and
// wake the stream. Shutdown may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <optional>
#include <utility>

#include "../dispatcher.h"
#include "strata/diff.h"
#include "strata/engine.h"
#include "strata/protocol/messages.h"
#include "strata/thread_annotations.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace strata::server::http {

// The events of one stream waiting to be written, as SSE text (docs/http.md, "Subscribe").
// Bounded: once `max_pending` updates wait, they are dropped and one `update` with a single
// `resync` diff of the latest value takes their place (and absorbs later changes until
// taken). Thread-safe: the engine's threads Push, the stream's thread Take.
class EventQueue {
 public:
  explicit EventQueue(size_t max_pending) : max_pending_(max_pending) {}

  // A subscription event (the engine's callback: quick, never blocks). Ignored once ended.
  void Push(const SubscriptionEvent& event) EXCLUDES(mu_);
  // Ends the stream with `code` unless it ended already (the server shuts down).
  void End(protocol::ErrorCode code, std::string message) EXCLUDES(mu_);
  // The SSE text of everything waiting, in order (empty when nothing is), and whether it
  // ends with the `ended` event (then nothing follows).
  std::string Take(bool* ended) EXCLUDES(mu_);

 private:
  struct Pending {
    bool started = false;  // the `subscribed` event; else an `update`
    uint64_t subscription = 0;
    int partition = 0;
    std::vector<Diff> diffs;
    std::shared_ptr<const Value> value;  // started: the first value
  };
  static std::string Format(const Pending& event);

  const size_t max_pending_;
  Mutex mu_;
  std::deque<Pending> pending_ GUARDED_BY(mu_);
  size_t pending_updates_ GUARDED_BY(mu_) = 0;
  // Collapsed: the waiting updates were dropped; one resync of `latest_` comes next.
  bool collapsed_ GUARDED_BY(mu_) = false;
  std::shared_ptr<const Value> latest_ GUARDED_BY(mu_);
  std::optional<std::pair<protocol::ErrorCode, std::string>> ended_ GUARDED_BY(mu_);
  bool ended_taken_ GUARDED_BY(mu_) = false;
};

struct EventStreamLimits {
  int max_streams = 4;                          // --http-max-streams
  size_t max_pending_events = 256;              // updates waiting per stream before they collapse
  std::chrono::milliseconds keepalive{15'000};  // a `: keepalive` comment when this idle
};

class EventStreams {
 public:
  // `engine` and `counters` outlive this object, which keeps counters.http_open_streams and
  // http_refused_streams.
  EventStreams(Engine& engine, ServerCounters& counters, const EventStreamLimits& limits);
  ~EventStreams();  // Shutdown()
  EventStreams(const EventStreams&) = delete;
  EventStreams& operator=(const EventStreams&) = delete;

  // Serves GET /rest/MODULE/pstate/PSTATE/subscribe: subscribes, and on success sets
  // `response` to the event stream (written by httplib after the handler returns, on the
  // same thread); otherwise `response` is the JSON error (bad parameters 400, unknown
  // module or PState 404, too many streams or subscriptions 503).
  void Serve(const httplib::Request& request, httplib::Response& response,
             const std::string& module, const std::string& pstate);

  // Refuses new streams, ends the open ones with an `ended` SHUTTING_DOWN event and waits
  // (a few seconds at most: then their sockets are shut down) until none is streaming.
  // Idempotent.
  void Shutdown() EXCLUDES(mu_);

  class Stream;

 private:
  friend class Stream;
  // Takes a place for a stream: OVERLOADED or SHUTTING_DOWN error JSON when none is left.
  std::optional<std::pair<int, std::string>> Reserve() EXCLUDES(mu_);
  void Release(Stream* stream) EXCLUDES(mu_);
  void Register(Stream* stream) EXCLUDES(mu_);

  Engine& engine_;
  ServerCounters& counters_;
  const EventStreamLimits limits_;
  Mutex mu_;
  CondVar released_;
  int reserved_ GUARDED_BY(mu_) = 0;  // places taken: streams starting or streaming
  std::unordered_set<Stream*> streaming_ GUARDED_BY(mu_);
  bool shutting_down_ GUARDED_BY(mu_) = false;
};

}  // namespace strata::server::http
