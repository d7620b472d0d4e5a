// Client::Impl: the connection state machine behind strata::Client (private).
//
// Threading: the Client's connection lives on one I/O thread (an io_context run by
// ClientIoThread; its own, or one shared with other Clients). Callers hand requests over through a
// mutex-guarded inbox (Submit); everything else — the socket, the send queue, the in-flight table,
// the timers and the reconnect state — belongs to the I/O thread and is touched only there, so it
// needs no lock. Completion callbacks run on the I/O thread.
//
// A request's life: Submit encodes it (on the caller's thread) and puts it in the inbox;
// Drain moves it into pending_ and the send queue; PumpWrites sends queued frames in one
// gathered write while fewer than the server's max_in_flight are outstanding; the
// response with its id completes it. A timeout or a lost connection completes it with an
// error instead; a request that was written (even partly) is never written again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "strata/client.h"
#include "strata/protocol/messages.h"
#include "strata/thread_annotations.h"

namespace strata {

struct ClientIoThread::State {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{asio::make_work_guard(io)};
  std::thread thread;
  // Set when the last handle was dropped on the thread itself, which then deletes this
  // State after run() returns (~ClientIoThread).
  std::atomic<bool> orphaned{false};
};

// Owned by shared pointers: the Client's, and one in every completion handler queued on the
// I/O thread, so a handler that runs after Close still finds its Impl.
class Client::Impl : public std::enable_shared_from_this<Client::Impl> {
 public:
  using Callback = std::function<void(ClientResult<protocol::ResponseBody>)>;

  // Nothing is connected yet. `io` must outlive the Impl: the owner keeps its
  // ClientIoThread until the Impl is closed, and the thread joins only after the handlers
  // (and with them the last references to the Impl) are gone.
  Impl(ClientOptions options, asio::io_context& io, std::thread::id io_thread_id);
  ~Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // One connection attempt with the handshake, bounded by connect_timeout. Blocks the
  // calling thread (never the I/O thread) until it succeeded (nullopt) or failed.
  std::optional<ClientError> ConnectOnce();

  // Sends `request` (encoded on the calling thread). `done` runs exactly once: on the I/O
  // thread, or on the calling thread when the request is refused before it is queued
  // (invalid arguments, client closing). Thread-safe.
  void Submit(protocol::RequestBody request, Callback done);

  // Submit for a SubscribeRequest: when its Subscribed response arrives, `on_update` is
  // registered (on the I/O thread, before any later frame is handled) for the updates
  // pushed with its id, then `done` runs.
  void SubmitSubscribe(protocol::SubscribeRequest request, SubscriptionHandler on_update,
                       Callback done);

  // Fails every request not yet answered with kConnection, closes the socket and cancels
  // the timers; returns when that is done. Must not run on the I/O thread (inside a
  // callback). Requests submitted afterwards fail with kConnection. Idempotent.
  void Close();

  // The Welcome of the current (or last) connection. Thread-safe.
  protocol::Welcome welcome() const;
  // True on the I/O thread: a blocking call there would wait for itself.
  bool OnIoThread() const { return std::this_thread::get_id() == io_thread_id_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class State : uint8_t { kDisconnected, kConnecting, kConnected, kClosed };

  struct Submission {
    uint64_t id = 0;
    std::string frame;  // length prefix + payload
    const char* what = "";
    Callback done;
    std::optional<Clock::time_point> deadline;
    std::optional<ClientError> refused;  // invalid before sending: fails in Drain
  };
  struct Pending {
    std::string frame;  // until written
    const char* what = "";
    Callback done;  // empty once completed by a timeout (the response is still due)
    bool written = false;
  };

  // --- I/O thread only -------------------------------------------------------------------
  void Drain();
  void BeginConnect(int attempts, std::function<void(std::optional<ClientError>)> done);
  void Attempt();
  void OnConnected(uint64_t generation);
  void AttemptFailed(ClientError error);
  void ConnectFinished(std::optional<ClientError> error);
  void StartRead(uint64_t generation);
  void OnRead(uint64_t generation, const std::error_code& ec, size_t bytes);
  // Takes every complete frame off the read buffer. Returns false when the connection was
  // closed while handling them.
  bool ProcessFrames(uint64_t generation);
  void HandleFrame(const uint8_t* data, size_t size);
  void HandleHandshake(protocol::Response response);
  void PumpWrites();
  void OnWritten(uint64_t generation, const std::error_code& ec);
  void ConnectionLost(ClientError error);
  void CloseSocket();
  void ArmDeadlineTimer();
  void OnDeadline(const std::error_code& ec);
  void TrimDeadlines();
  void FailUnwritten(const ClientError& error);
  void Shutdown();
  uint32_t MaxResponseSize() const;
  std::string Where() const;

  const ClientOptions options_;
  asio::io_context& io_;
  const std::thread::id io_thread_id_;

  State state_ = State::kDisconnected;
  // Bumped whenever the socket is closed or a new attempt starts: a completion handler
  // that captured an older generation belongs to a dead connection and does nothing.
  uint64_t generation_ = 0;
  int attempts_left_ = 0;
  int attempts_made_ = 0;
  std::chrono::milliseconds backoff_{0};
  std::function<void(std::optional<ClientError>)> on_connect_done_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer connect_timer_;  // the current attempt's deadline
  asio::steady_timer backoff_timer_;  // the wait before the next attempt
  uint32_t max_frame_size_ = 0;       // from the Welcome (0: none)
  uint32_t max_in_flight_ = 0;        // from the Welcome (0: none)

  // Delivers a pushed SubscriptionUpdate to its handler (dropping it when it ended).
  void HandlePush(protocol::SubscriptionUpdate update);
  // Ends every subscription with `error` (the connection is gone).
  void EndSubscriptions(const ClientError& error);

  std::unordered_map<uint64_t, Pending> pending_;  // queued or written, not yet answered
  std::unordered_map<uint64_t, SubscriptionHandler> subscriptions_;  // by subscription id
  std::deque<uint64_t> send_queue_;  // ids not yet written, in submission order; ids no
                                     // longer in pending_ (timed out) are skipped
  size_t in_flight_ = 0;             // written and not answered (timed-out ones included)
  // (deadline, id) in submission order; request_timeout is fixed, so the deadlines are
  // ascending and one timer on the front serves them all.
  std::deque<std::pair<Clock::time_point, uint64_t>> deadlines_;
  asio::steady_timer deadline_timer_;
  bool deadline_timer_armed_ = false;

  bool write_active_ = false;
  std::vector<std::string> write_frames_;  // frames of the write in progress
  std::vector<asio::const_buffer> write_buffers_;

  // Bytes received and not yet parsed are read_buffer_[read_begin_, read_end_).
  std::vector<uint8_t> read_buffer_;
  size_t read_begin_ = 0;
  size_t read_end_ = 0;

  // --- Shared with callers ---------------------------------------------------------------
  mutable Mutex mutex_;
  std::vector<Submission> inbox_ GUARDED_BY(mutex_);
  bool drain_posted_ GUARDED_BY(mutex_) = false;  // A Drain is queued on io_.
  bool closing_ GUARDED_BY(mutex_) = false;       // Close has begun.
  protocol::Welcome welcome_ GUARDED_BY(mutex_);
  std::atomic<uint64_t> next_id_{1};  // id 0 is the handshake's
};

}  // namespace strata
