// One client connection: reads frames, runs the handshake, dispatches requests and writes
// their responses back in completion order (request ids pair them up; docs/protocol.md).
//
// Threading: a connection belongs to one io_context, run by one thread; every member
// function runs on that thread (engine and pool completions are posted to it), so the
// state below needs no lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include "dispatcher.h"
#include "log.h"
#include "strata/protocol/messages.h"
#include "strata/thread_annotations.h"
#include "subscription_outbox.h"

namespace strata::server {

struct ConnectionLimits {
  uint32_t max_frame_size = 0;
  uint32_t max_in_flight = 0;
  uint64_t max_queued_bytes = 0;
  std::chrono::seconds idle_timeout{300};
  std::chrono::seconds write_timeout{30};
  // A request frame must be complete this long after its first byte arrived (time the
  // server itself stops reading the connection does not count).
  std::chrono::seconds frame_timeout{30};
  SubscriptionLimits subscriptions;
  protocol::Welcome welcome;  // the handshake answer
};

// The server-wide budget of memory for request frames being received: every connection
// reads into a buffer of kInitialReadBuffer bytes of its own, and what a buffer grows
// beyond that (for a frame larger than it, as its bytes arrive) is taken from this budget
// and given back when the frame is done or the connection closes. Thread-safe.
class FrameBudget {
 public:
  explicit FrameBudget(uint64_t cap) : cap_(cap) {}
  FrameBudget(const FrameBudget&) = delete;
  FrameBudget& operator=(const FrameBudget&) = delete;

  // Takes `bytes` unless the budget would then exceed its cap; true when taken.
  bool TryTake(uint64_t bytes);
  void Give(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t cap() const { return cap_; }

 private:
  const uint64_t cap_;
  std::atomic<uint64_t> used_{0};
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // A connection's own read buffer, not taken from the FrameBudget.
  static constexpr size_t kInitialReadBuffer = 64 << 10;

  // `on_closed` runs once, on the connection's thread, when the socket is closed.
  // `frame_budget` outlives the connection.
  Connection(asio::ip::tcp::socket socket, Dispatcher& dispatcher, ServerCounters& counters,
             const ConnectionLimits& limits, FrameBudget& frame_budget,
             std::function<void(Connection*)> on_closed);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Every handler of a connection (these three and its completions) runs guarded: an
  // exception (bad_alloc, a bug) closes this connection with a log line and never
  // reaches the io thread, which goes on serving its other connections.

  // Sets TCP_NODELAY, arms the idle timer and starts reading. On the connection's thread.
  void Start();
  // Graceful stop: no more requests are read; in-flight requests finish, their responses
  // are written, requests received but not started (buffered behind the in-flight cap) are
  // answered SHUTTING_DOWN without being executed, then the socket closes. Post it to the
  // connection's executor.
  void Drain();
  // Closes the socket now (shutdown deadline passed). Post it to the executor.
  void Abort();
  asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  template <typename Body>
  void Guarded(Body&& body) noexcept;
  void CloseAfterException(const char* what) noexcept;
  void BeginServing();
  bool CanProcess() const;
  void Resume();
  void StartRead();
  void OnRead(const std::error_code& ec, size_t bytes);
  void ProcessFrames();
  // Sets the read buffer's size, taking what it grows beyond kInitialReadBuffer from the
  // FrameBudget and giving back what a shrink frees; false (nothing changed) when the
  // budget cannot give the growth.
  bool ResizeReadBuffer(size_t size);
  void ReleaseReadBuffer();
  // The frame at the front of the read buffer is incomplete: closes the connection with
  // OVERLOADED because the FrameBudget cannot hold its next bytes.
  void FailFrameOverBudget();
  void HandleFrame(const uint8_t* data, size_t size);
  void HandleHello(uint64_t id, const protocol::Hello& hello);
  // Answers every complete request frame left in the read buffer SHUTTING_DOWN (Drain).
  void RefuseBufferedRequests();
  // The connection's subscriptions, made at its first Subscribe.
  std::shared_ptr<SubscriptionOutbox> Outbox();
  // Moves subscription updates from the outbox to the write queue while the queue holds
  // less than kPushWindow bytes: a reader that does not keep up leaves them in the outbox,
  // which collapses them (SubscriptionOutbox).
  void PushUpdates();
  static constexpr uint64_t kPushWindow = 256 << 10;
  // Any thread: queues a response for the connection's thread; one post per batch.
  void PostReply(protocol::Response response);
  void OnReplies();
  void Send(const protocol::Response& response);
  void StartWrite();
  void OnWrite(const std::error_code& ec, size_t bytes);
  void FailAndClose(protocol::ErrorCode code, std::string message);
  void CloseWhenDone();
  void Close(LogLevel level, std::string_view why);  // why empty: nothing to log
  void ArmIdleTimer();
  void OnIdleTimer(const std::error_code& ec);
  // The write deadline: one timer per connection, armed when a write starts and none is
  // armed, never cancelled per write (that cost a timer operation and a handler per
  // response); when it fires it closes a write that started write_timeout ago, or re-arms
  // for the write in progress, or lapses.
  void ArmWriteTimer(std::chrono::steady_clock::time_point at);
  void OnWriteTimer(const std::error_code& ec);
  // The frame deadline, kept like the write deadline: armed when a frame starts and none
  // is armed; when it fires it closes a connection whose pending frame started
  // frame_timeout ago while the server was reading, or re-arms, or lapses.
  void ArmFrameTimer(std::chrono::steady_clock::time_point at);
  void OnFrameTimer(const std::error_code& ec);
  size_t BufferedBytes() const { return read_end_ - read_begin_; }

  asio::ip::tcp::socket socket_;
  Dispatcher& dispatcher_;
  ServerCounters& counters_;
  const ConnectionLimits& limits_;
  FrameBudget& frame_budget_;
  std::function<void(Connection*)> on_closed_;
  std::string peer_;

  // Received bytes not yet parsed are read_buffer_[read_begin_, read_end_).
  std::vector<uint8_t> read_buffer_;
  size_t read_begin_ = 0;
  size_t read_end_ = 0;
  uint64_t budget_held_ = 0;  // taken from frame_budget_: read_buffer_ beyond kInitialReadBuffer
  bool reading_ = false;
  // Reading stopped at the in-flight or queued-bytes cap; the pending frame's clock
  // restarts when reading resumes.
  bool read_paused_ = false;
  // Bytes of an incomplete frame are buffered; it started arriving at frame_started_.
  bool frame_pending_ = false;
  std::chrono::steady_clock::time_point frame_started_;
  bool frame_timer_armed_ = false;
  bool processing_ = false;  // inside ProcessFrames (replies are posted, never nested)
  // Send queues without writing; whoever set it starts the write when its batch is done.
  bool coalescing_ = false;
  bool handshaken_ = false;
  // No more requests are accepted (drain, EOF, bad frame); the socket closes once the
  // in-flight requests are answered and every queued response is written.
  bool finishing_ = false;
  bool closed_ = false;
  uint32_t in_flight_ = 0;
  std::shared_ptr<SubscriptionOutbox> outbox_;  // null until the first Subscribe

  // Frames (length prefix included) waiting for the next write, and those being written.
  std::vector<std::string> queued_;
  std::vector<std::string> writing_;
  uint64_t queued_bytes_ = 0;  // over queued_ and writing_
  bool write_pending_ = false;
  std::chrono::steady_clock::time_point write_started_;  // of the write in progress
  bool write_timer_armed_ = false;

  // Responses completed on other threads (engine, pool) for this thread to send; an
  // OnReplies is posted when the first one arrives and takes all that came meanwhile.
  Mutex replies_mu_;
  std::vector<protocol::Response> replies_ GUARDED_BY(replies_mu_);
  bool replies_posted_ GUARDED_BY(replies_mu_) = false;

  asio::steady_timer idle_timer_;
  asio::steady_timer write_timer_;
  asio::steady_timer frame_timer_;
  std::chrono::steady_clock::time_point last_activity_;
};

}  // namespace strata::server
