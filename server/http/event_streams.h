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
#include <memory>
#include <string>
#include <unordered_set>

#include <optional>
#include <utility>

#include "strata/engine.h"
#include "strata/thread_annotations.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace strata::server::http {

struct EventStreamLimits {
  int max_streams = 4;              // --http-max-streams
  size_t max_pending_events = 256;  // updates waiting per stream before they collapse
  std::chrono::milliseconds keepalive{15'000};  // a `: keepalive` comment when this idle
};

class EventStreams {
 public:
  // `engine` outlives this object.
  EventStreams(Engine& engine, const EventStreamLimits& limits);
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
  const EventStreamLimits limits_;
  Mutex mu_;
  CondVar released_;
  int reserved_ GUARDED_BY(mu_) = 0;  // places taken: streams starting or streaming
  std::unordered_set<Stream*> streaming_ GUARDED_BY(mu_);
  bool shutting_down_ GUARDED_BY(mu_) = false;
};

}  // namespace strata::server::http
