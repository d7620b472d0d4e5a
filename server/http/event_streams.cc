#include "event_streams.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <utility>

#include <httplib.h>

#include "rest_json.h"
#include "strata/json.h"
#include "strata/path.h"
#include "strata/protocol/documents.h"

namespace strata::server::http {
namespace proto = strata::protocol;
using Clock = std::chrono::steady_clock;

namespace {

// How long Shutdown lets streams write their `ended` event before it shuts their sockets.
constexpr auto kShutdownGrace = std::chrono::seconds(2);

std::string SseEvent(std::string_view name, const Value& data) {
  // ToJson's compact form has no line break (JSON strings escape theirs), so the data is
  // one `data:` line.
  return "event: " + std::string(name) + "\ndata: " + ToJson(data) + "\n\n";
}

// An `update` event: {"diffs": [DiffDocument...]}.
std::string UpdateEvent(Value::List diffs) {
  return SseEvent("update", Value::MapOf({{"diffs", Value(std::move(diffs))}}));
}

int PortOf(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
  }
  return -1;
}

std::string HostOf(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, text, sizeof(text));
  } else if (address.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, text,
              sizeof(text));
  }
  return text;
}

// The socket of the connection `request` came on, found by its two addresses: httplib 0.11
// gives a handler no socket, and the stream needs it to notice a client that closed while
// nothing was being written. -1 when not found (the stream then notices at its next write).
// The socket stays open while the handler's response is being written.
int ConnectionSocket(const httplib::Request& request) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  const int dir_fd = dirfd(dir);
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dir_fd) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_size = sizeof(local);
    socklen_t peer_size = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
        PortOf(local) != request.local_port) {
      continue;
    }
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_size) == 0 &&
        PortOf(peer) == request.remote_port && HostOf(peer) == request.remote_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

std::optional<std::string> Param(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return std::nullopt;
  return request.get_param_value(name);
}

// URL parameter `name` as JSON text (docs/values.md); `fallback` when absent.
Result<Value> JsonParam(const httplib::Request& request, const char* name, Value fallback) {
  std::optional<std::string> text = Param(request, name);
  if (!text) return fallback;
  Result<Value> parsed = ParseJson(*text);
  if (!parsed.ok()) {
    return Status::InvalidArgument("parameter \"" + std::string(name) + "\" is not JSON (" +
                                   parsed.status().message() + "): " + *text +
                                   " (a string needs its quotes, URL-encoded: %22alice%22)");
  }
  return parsed;
}

}  // namespace

void EventQueue::Push(const SubscriptionEvent& event) {
  MutexLock lock(&mu_);
  if (ended_) return;
  switch (event.kind) {
    case SubscriptionEvent::Kind::kStarted:
      pending_.push_back(Pending{true, event.subscription, event.partition, {}, event.value});
      break;
    case SubscriptionEvent::Kind::kChanged:
      if (!collapsed_ && pending_updates_ < max_pending_) {
        pending_.push_back(Pending{false, event.subscription, event.partition, event.diffs, {}});
        ++pending_updates_;
        break;
      }
      if (!collapsed_) {
        // The resync replaces the waiting updates, not the `subscribed` event.
        std::erase_if(pending_, [](const Pending& p) { return !p.started; });
        pending_updates_ = 0;
        collapsed_ = true;
      }
      latest_ = event.value;
      break;
    case SubscriptionEvent::Kind::kEnded:
      ended_ = std::make_pair(proto::ErrorCodeFor(event.ended), event.ended.message());
      break;
  }
}

void EventQueue::End(proto::ErrorCode code, std::string message) {
  MutexLock lock(&mu_);
  if (!ended_) ended_ = std::make_pair(code, std::move(message));
}

std::string EventQueue::Take(bool* ended) {
  MutexLock lock(&mu_);
  std::string text;
  for (const Pending& event : pending_) text += Format(event);
  pending_.clear();
  pending_updates_ = 0;
  if (collapsed_) {
    const Value diff =
        proto::DiffDocument(Diff{Diff::Op::kResync, {}, Value(), latest_ ? *latest_ : Value(), 0});
    text += UpdateEvent(Value::List{diff});
    collapsed_ = false;
    latest_.reset();
  }
  *ended = ended_.has_value();
  if (ended_ && !ended_taken_) {
    const auto& [code, message] = *ended_;
    text += SseEvent(
        "ended", Value::MapOf({{"error", proto::ErrorDocument(code, EscapeInvalidUtf8(message))}}));
    ended_taken_ = true;
  }
  return text;
}

std::string EventQueue::Format(const Pending& event) {
  if (event.started) {
    return SseEvent("subscribed",
                    Value::MapOf({{"subscription", static_cast<int64_t>(event.subscription)},
                                  {"partition", int64_t{event.partition}},
                                  {"value", event.value ? *event.value : Value()}}));
  }
  Value::List diffs;
  diffs.reserve(event.diffs.size());
  for (const Diff& diff : event.diffs) diffs.push_back(proto::DiffDocument(diff));
  return UpdateEvent(std::move(diffs));
}

// One open event stream: its EventQueue, written by the HTTP worker thread (Run), which the
// engine's threads wake through an eventfd that Run polls together with the connection's
// socket, to notice a client that went away while nothing was being written.
class EventStreams::Stream {
 public:
  Stream(size_t max_pending, std::chrono::milliseconds keepalive)
      : queue_(max_pending),
        keepalive_(keepalive),
        wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Stream() {
    if (wake_fd_ >= 0) close(wake_fd_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The engine's callback (any engine thread; quick, never blocks).
  void OnEvent(const SubscriptionEvent& event) {
    queue_.Push(event);
    Wake();
  }
  // Ends the stream with `code` (Shutdown); the engine subscription is left to the owner.
  void End(proto::ErrorCode code, std::string message) {
    queue_.End(code, std::move(message));
    Wake();
  }

  // Writes the events until the stream ends (true, after its `ended` event and the end of
  // the chunked body) or the client goes away (false: httplib closes the connection).
  bool Run(httplib::DataSink& sink) {
    auto write = [&](const std::string& text) { return sink.write(text.data(), text.size()); };
    Clock::time_point next_keepalive = Clock::now() + keepalive_;
    for (;;) {
      bool ended = false;
      const std::string text = queue_.Take(&ended);
      if (!text.empty()) {
        if (!write(text)) return false;
        next_keepalive = Clock::now() + keepalive_;
      }
      if (ended) {
        sink.done();
        return true;
      }
      if (!WaitForWork(next_keepalive)) return false;
      if (Clock::now() >= next_keepalive) {
        if (!write(": keepalive\n\n")) return false;
        next_keepalive = Clock::now() + keepalive_;
      }
    }
  }

  // False when no eventfd could be made (out of file descriptors).
  bool ok() const { return wake_fd_ >= 0; }
  void set_subscription(uint64_t id) { subscription_ = id; }
  uint64_t subscription() const { return subscription_; }
  void set_socket(int fd) { socket_ = fd; }
  // Unblocks a write to a client that stopped reading (Shutdown, past its grace). Called
  // while the stream is registered: its connection, hence `socket_`, is still open.
  void ShutdownSocket() {
    if (socket_ >= 0) shutdown(socket_, SHUT_RDWR);
  }

 private:
  void Wake() {
    const uint64_t one = 1;
    // Never blocks (EFD_NONBLOCK); a full counter means a wake-up is pending anyway.
    [[maybe_unused]] const ssize_t ignored = write(wake_fd_, &one, sizeof(one));
  }

  // Waits for queued events, a client that went away (false) or `until`.
  bool WaitForWork(Clock::time_point until) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {socket_, POLLRDHUP, 0}};
    const nfds_t count = socket_ >= 0 ? 2 : 1;
    const int ready = poll(fds, count, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (ready < 0) return errno == EINTR;
    // An SSE client sends nothing after its request: a hang-up or half-close means it left.
    if (count == 2 && (fds[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      return false;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      uint64_t counter = 0;
      [[maybe_unused]] const ssize_t ignored = read(wake_fd_, &counter, sizeof(counter));
    }
    return true;
  }

  EventQueue queue_;
  const std::chrono::milliseconds keepalive_;
  const int wake_fd_;
  uint64_t subscription_ = 0;  // set before the stream is served
  int socket_ = -1;            // likewise
};

EventStreams::EventStreams(Engine& engine, ServerCounters& counters,
                           const EventStreamLimits& limits)
    : engine_(engine), counters_(counters), limits_(limits) {}

EventStreams::~EventStreams() { Shutdown(); }

std::optional<std::pair<int, std::string>> EventStreams::Reserve() {
  MutexLock lock(&mu_);
  if (shutting_down_) {
    return std::make_pair(
        503, ErrorJson(proto::ErrorCode::kShuttingDown, "the server is shutting down"));
  }
  if (reserved_ >= limits_.max_streams) {
    counters_.http_refused_streams.fetch_add(1, std::memory_order_relaxed);
    return std::make_pair(
        503, ErrorJson(proto::ErrorCode::kOverloaded,
                       "already " + std::to_string(limits_.max_streams) +
                           " subscription streams open, as many as the server serves at once "
                           "(--http-max-streams); close one or retry later"));
  }
  ++reserved_;
  return std::nullopt;
}

void EventStreams::Register(Stream* stream) {
  bool shutting_down = false;
  {
    MutexLock lock(&mu_);
    streaming_.insert(stream);
    counters_.http_open_streams.fetch_add(1, std::memory_order_relaxed);
    shutting_down = shutting_down_;
  }
  if (shutting_down) stream->End(proto::ErrorCode::kShuttingDown, "the server is shutting down");
}

void EventStreams::Release(Stream* stream) {
  MutexLock lock(&mu_);
  if (stream != nullptr && streaming_.erase(stream) == 1) {
    counters_.http_open_streams.fetch_sub(1, std::memory_order_relaxed);
  }
  --reserved_;
  released_.SignalAll();
}

void EventStreams::Serve(const httplib::Request& request, httplib::Response& response,
                         const std::string& module, const std::string& pstate) {
  auto fail = [&](int status, std::string body) {
    response.status = status;
    if (status == 503) response.set_header("Retry-After", "1");
    response.set_content(std::move(body), "application/json");
  };
  auto invalid = [&](const Status& status) {
    fail(400, ErrorJson(proto::ErrorCode::kInvalidArgument, status.message()));
  };
  Result<Value> path_value = JsonParam(request, "path", Value(Value::List{}));
  if (!path_value.ok()) return invalid(path_value.status());
  Result<Path> path = Path::FromValue(*path_value);
  if (!path.ok()) {
    return invalid(Status::InvalidArgument("invalid path " + path_value->ToString() + ": " +
                                           path.status().message()));
  }
  SubscribeOptions options;
  if (request.has_param("partition_key")) {
    Result<Value> key = JsonParam(request, "partition_key", Value());
    if (!key.ok()) return invalid(key.status());
    options.partition_key = *key;
  }
  const std::string one = Param(request, "one").value_or("false");
  if (one != "true" && one != "false") {
    return invalid(
        Status::InvalidArgument("parameter \"one\" is \"" + one + "\", not true or false"));
  }
  options.one = one == "true";

  if (auto refused = Reserve()) return fail(refused->first, std::move(refused->second));
  auto stream = std::make_shared<Stream>(limits_.max_pending_events, limits_.keepalive);
  if (!stream->ok()) {
    Release(nullptr);
    return fail(500, ErrorJson(proto::ErrorCode::kInternal,
                               "cannot open a subscription stream: out of file descriptors"));
  }
  Result<uint64_t> id =
      engine_.Subscribe(module, pstate, *path, options,
                        [stream](const SubscriptionEvent& event) { stream->OnEvent(event); });
  if (!id.ok()) {
    Release(nullptr);
    const proto::ErrorCode code = proto::ErrorCodeFor(id.status());
    return fail(HttpStatusFor(code), ErrorJson(code, id.status().message()));
  }
  stream->set_subscription(*id);
  stream->set_socket(ConnectionSocket(request));
  Register(stream.get());
  // Owned by the response's content provider: when httplib is done with the response
  // (written, or the client gone), the subscription ends and the place is given back.
  class Holder {
   public:
    Holder(EventStreams& owner, std::shared_ptr<Stream> stream)
        : owner_(owner), stream_(std::move(stream)) {}
    ~Holder() {
      owner_.engine_.Unsubscribe(stream_->subscription());
      owner_.Release(stream_.get());
    }
    Holder(const Holder&) = delete;
    Holder& operator=(const Holder&) = delete;
    Stream& stream() { return *stream_; }

   private:
    EventStreams& owner_;
    std::shared_ptr<Stream> stream_;
  };
  auto holder = std::make_shared<Holder>(*this, stream);
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");  // nginx: pass events on as they come
  response.set_chunked_content_provider(
      "text/event-stream",
      [holder](size_t, httplib::DataSink& sink) { return holder->stream().Run(sink); });
}

void EventStreams::Shutdown() {
  MutexLock lock(&mu_);
  shutting_down_ = true;
  for (Stream* stream : streaming_) {
    stream->End(proto::ErrorCode::kShuttingDown, "the server is shutting down");
  }
  const Clock::time_point grace = Clock::now() + kShutdownGrace;
  while (reserved_ > 0 && Clock::now() < grace) released_.WaitUntil(&mu_, grace);
  // Streams still writing are stuck on clients that stopped reading.
  for (Stream* stream : streaming_) stream->ShutdownSocket();
  while (reserved_ > 0) released_.Wait(&mu_);
}

}  // namespace strata::server::http
