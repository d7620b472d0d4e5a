#include "connection.h"

#include <cstring>
#include <utility>

#include <asio/post.hpp>
#include <asio/write.hpp>

#include "strata/protocol/frame.h"

namespace strata::server {

namespace proto = protocol;

namespace {

constexpr size_t kMinReadSpace = 16 << 10;

uint32_t LengthPrefix(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

}  // namespace

bool FrameBudget::TryTake(uint64_t bytes) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > cap_ || used > cap_ - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

Connection::Connection(asio::ip::tcp::socket socket, Dispatcher& dispatcher,
                       ServerCounters& counters, const ConnectionLimits& limits,
                       FrameBudget& frame_budget, std::function<void(Connection*)> on_closed)
    : socket_(std::move(socket)),
      dispatcher_(dispatcher),
      counters_(counters),
      limits_(limits),
      frame_budget_(frame_budget),
      on_closed_(std::move(on_closed)),
      idle_timer_(socket_.get_executor()),
      write_timer_(socket_.get_executor()),
      frame_timer_(socket_.get_executor()) {
  counters_.open_connections.fetch_add(1);
  counters_.total_connections.fetch_add(1);
}

Connection::~Connection() {
  // Closed connections were uncounted by Close; one that never started (its setup failed)
  // or was never closed (the server stopped) is uncounted here.
  if (!closed_) counters_.open_connections.fetch_sub(1);
  frame_budget_.Give(budget_held_);
}

template <typename Body>
void Connection::Guarded(Body&& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    CloseAfterException(e.what());
  } catch (...) {
    CloseAfterException("an exception that is not a std::exception");
  }
}

void Connection::CloseAfterException(const char* what) noexcept {
  try {
    LogError("connection " + peer_ + ": internal error: " + what + "; closing it");
  } catch (...) {
    // Out of memory for the log line too: close without it.
  }
  Close(LogLevel::kError, "");
}

void Connection::Start() {
  Guarded([&] { BeginServing(); });
}

void Connection::BeginServing() {
  std::error_code ec;
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  const asio::ip::tcp::endpoint remote = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("unknown peer")
             : remote.address().to_string() + ":" + std::to_string(remote.port());
  read_buffer_.resize(kInitialReadBuffer);
  last_activity_ = std::chrono::steady_clock::now();
  ArmIdleTimer();
  StartRead();
}

void Connection::Drain() {
  if (closed_) return;
  // Already finishing (EOF, a bad frame): what is buffered behind it is not answered.
  const bool serving = !finishing_;
  finishing_ = true;
  // Wakes a pending read with end-of-file; requests already read still complete.
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ignored);
  Guarded([&] {
    if (serving) RefuseBufferedRequests();
    if (outbox_) {
      dispatcher_.ReleaseSubscriptions(
          outbox_->EndAll({proto::ErrorCode::kShuttingDown,
                           "the server is shutting down: subscribe again after reconnecting"}));
      PushUpdates();
    }
    CloseWhenDone();
  });
}

void Connection::RefuseBufferedRequests() {
  coalescing_ = true;  // one gathered write for all the refusals
  while (!closed_) {
    proto::FrameView frame;
    size_t consumed = 0;
    std::string error;
    if (proto::DecodeFrame(read_buffer_.data() + read_begin_, BufferedBytes(),
                           limits_.max_frame_size, &frame, &consumed,
                           &error) != proto::DecodeState::kComplete) {
      break;  // an incomplete or bad frame: nothing more can be answered
    }
    read_begin_ += consumed;
    std::variant<proto::Request, proto::RequestError> decoded =
        proto::DecodeRequest(frame.data, frame.size);
    std::optional<uint64_t> id;
    if (const auto* request = std::get_if<proto::Request>(&decoded)) {
      id = request->id;
    } else {
      id = std::get<proto::RequestError>(decoded).id;
    }
    if (!id.has_value()) break;  // unreadable: the client learns no more from a response
    Send(ErrorResponse(*id, proto::ErrorCode::kShuttingDown,
                       "the server is shutting down: request " + std::to_string(*id) +
                           " was received but not executed; send it again after reconnecting"));
  }
  coalescing_ = false;
  StartWrite();
}

void Connection::Abort() {
  Guarded([&] { Close(LogLevel::kWarning, "closed at the shutdown deadline"); });
}

bool Connection::CanProcess() const {
  return in_flight_ < limits_.max_in_flight && queued_bytes_ < limits_.max_queued_bytes;
}

void Connection::Resume() {
  if (processing_ || closed_ || finishing_) return;
  ProcessFrames();
  StartRead();
}

void Connection::StartRead() {
  if (reading_ || finishing_ || closed_) return;
  const size_t buffered = BufferedBytes();
  if (read_begin_ > 0) {
    std::memmove(read_buffer_.data(), read_buffer_.data() + read_begin_, buffered);
    read_begin_ = 0;
    read_end_ = buffered;
  }
  if (read_buffer_.size() > kInitialReadBuffer && buffered + kMinReadSpace <= kInitialReadBuffer) {
    // A large frame is done: give its memory back to the budget, also before pausing (a
    // paused connection must not hold the server-wide budget for a frame it no longer has).
    ResizeReadBuffer(kInitialReadBuffer);
  }
  if (!CanProcess()) {
    read_paused_ = true;
    return;
  }
  if (read_paused_) {
    // The client could not send while the server did not read: its frame's time restarts.
    read_paused_ = false;
    frame_started_ = std::chrono::steady_clock::now();
  }
  // The buffer grows with the bytes that arrived (at most doubling), never to a frame's
  // declared length up front: a length prefix alone costs the server nothing. Past the
  // pending frame's end it keeps only kMinReadSpace for the frames that follow.
  const size_t wanted = read_end_ + kMinReadSpace;
  if (read_buffer_.size() < wanted) {
    size_t grown = 2 * read_buffer_.size();
    if (buffered >= proto::kLengthPrefixSize) {
      const size_t frame_end = proto::kLengthPrefixSize + LengthPrefix(read_buffer_.data());
      grown = std::min(grown, frame_end + kMinReadSpace);
    }
    if (!ResizeReadBuffer(std::max(grown, wanted))) return FailFrameOverBudget();
  }

  reading_ = true;
  socket_.async_read_some(
      asio::buffer(read_buffer_.data() + read_end_, read_buffer_.size() - read_end_),
      [self = shared_from_this()](const std::error_code& ec, size_t bytes) {
        self->Guarded([&] { self->OnRead(ec, bytes); });
      });
}

void Connection::OnRead(const std::error_code& ec, size_t bytes) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    if (ec == asio::error::eof || finishing_) {
      finishing_ = true;    // the client is done sending: answer what it sent, then close
      ReleaseReadBuffer();  // nothing more is parsed
      CloseWhenDone();
    } else if (ec != asio::error::operation_aborted) {
      Close(LogLevel::kInfo, "read failed: " + ec.message());
    }
    return;
  }
  if (finishing_) {
    ReleaseReadBuffer();  // not read or parsed any more (after FailAndClose or Drain)
    return CloseWhenDone();
  }
  read_end_ += bytes;
  last_activity_ = std::chrono::steady_clock::now();
  Resume();
}

bool Connection::ResizeReadBuffer(size_t size) {
  const uint64_t held = size > kInitialReadBuffer ? size - kInitialReadBuffer : 0;
  if (held > budget_held_ && !frame_budget_.TryTake(held - budget_held_)) return false;
  try {
    read_buffer_.resize(size);
    read_buffer_.shrink_to_fit();
  } catch (...) {
    if (held > budget_held_) frame_budget_.Give(held - budget_held_);
    throw;
  }
  if (held < budget_held_) frame_budget_.Give(budget_held_ - held);
  budget_held_ = held;
  return true;
}

void Connection::ReleaseReadBuffer() {
  // No read is pending on a closed socket, so nothing writes into the buffer any more.
  std::vector<uint8_t>().swap(read_buffer_);
  read_begin_ = read_end_ = 0;
  frame_budget_.Give(budget_held_);
  budget_held_ = 0;
}

void Connection::FailFrameOverBudget() {
  const size_t buffered = BufferedBytes();
  const uint32_t declared = LengthPrefix(read_buffer_.data() + read_begin_);
  FailAndClose(proto::ErrorCode::kOverloaded,
               "request frames being received hold " + std::to_string(frame_budget_.used()) +
                   " bytes of the server's " + std::to_string(frame_budget_.cap()) +
                   " (--max-partial-frame-bytes), too few for more of this frame of " +
                   std::to_string(declared) + " bytes (" + std::to_string(buffered) +
                   " received); retry later");
}

void Connection::ProcessFrames() {
  processing_ = true;
  coalescing_ = true;  // responses answered here leave in one gathered write
  while (!finishing_ && !closed_ && CanProcess()) {
    proto::FrameView frame;
    size_t consumed = 0;
    std::string error;
    const proto::DecodeState state =
        proto::DecodeFrame(read_buffer_.data() + read_begin_, BufferedBytes(),
                           limits_.max_frame_size, &frame, &consumed, &error);
    if (state == proto::DecodeState::kNeedMore) break;
    if (state == proto::DecodeState::kBad) {
      const bool too_large =
          LengthPrefix(read_buffer_.data() + read_begin_) > limits_.max_frame_size;
      FailAndClose(too_large ? proto::ErrorCode::kFrameTooLarge : proto::ErrorCode::kBadFrame,
                   error);
      break;
    }
    HandleFrame(frame.data, frame.size);
    if (closed_ || finishing_) break;  // the buffer may be released (FailAndClose)
    read_begin_ += consumed;
    frame_pending_ = false;
  }
  if (read_begin_ == read_end_) read_begin_ = read_end_ = 0;
  if (!closed_ && !finishing_ && !frame_pending_ && BufferedBytes() > 0) {
    frame_pending_ = true;
    frame_started_ = std::chrono::steady_clock::now();
    if (!frame_timer_armed_) ArmFrameTimer(frame_started_ + limits_.frame_timeout);
  }
  coalescing_ = false;
  processing_ = false;
  StartWrite();
}

void Connection::HandleFrame(const uint8_t* data, size_t size) {
  const auto started = std::chrono::steady_clock::now();
  std::variant<proto::Request, proto::RequestError> decoded = proto::DecodeRequest(data, size);
  if (auto* bad = std::get_if<proto::RequestError>(&decoded)) {
    if (bad->id.has_value()) {
      // The frame is intact (only its content is wrong): answer and keep the connection.
      Send(ErrorResponse(*bad->id, bad->error.code, std::move(bad->error.message)));
    } else {
      FailAndClose(bad->error.code, "undecodable request: " + bad->error.message);
    }
    return;
  }
  proto::Request& request = std::get<proto::Request>(decoded);
  // Each decoded request's latency, up to its response queued for writing (Send) or handed
  // to this connection by another thread (PostReply).
  const std::string_view kind = RequestKindName(request.body);
  auto observe = [this, kind, started] {
    counters_.ObserveRequest("binary", kind, std::chrono::steady_clock::now() - started);
  };
  if (const auto* hello = std::get_if<proto::Hello>(&request.body)) {
    HandleHello(request.id, *hello);
    return observe();
  }
  if (!handshaken_) {
    Send(ErrorResponse(request.id, proto::ErrorCode::kHandshakeRequired,
                       "the first request on a connection must be Hello"));
    return observe();
  }
  if (std::optional<proto::Response> answer = dispatcher_.AnswerInline(request)) {
    Send(*answer);
    return observe();
  }
  ++in_flight_;
  Reply reply = [self = shared_from_this(), kind, started](proto::Response response) {
    self->PostReply(std::move(response));
    self->counters_.ObserveRequest("binary", kind, std::chrono::steady_clock::now() - started);
  };
  if (auto* subscribe = std::get_if<proto::SubscribeRequest>(&request.body)) {
    return dispatcher_.Subscribe(request.id, std::move(*subscribe), Outbox(), std::move(reply));
  }
  if (auto* unsubscribe = std::get_if<proto::UnsubscribeRequest>(&request.body)) {
    return dispatcher_.Unsubscribe(request.id, *unsubscribe, Outbox(), std::move(reply));
  }
  dispatcher_.Dispatch(std::move(request), peer_, std::move(reply));
}

std::shared_ptr<SubscriptionOutbox> Connection::Outbox() {
  if (!outbox_) {
    std::weak_ptr<Connection> weak = weak_from_this();
    outbox_ = std::make_shared<SubscriptionOutbox>(limits_.subscriptions, [weak] {
      if (auto self = weak.lock()) {
        asio::post(self->executor(), [self] { self->Guarded([&] { self->PushUpdates(); }); });
      }
    });
  }
  return outbox_;
}

void Connection::PushUpdates() {
  if (!outbox_ || closed_ || queued_bytes_ >= kPushWindow) return;
  std::vector<std::string> frames = outbox_->Take(kPushWindow - queued_bytes_);
  if (frames.empty()) return;
  for (std::string& frame : frames) {
    queued_bytes_ += frame.size();
    queued_.push_back(std::move(frame));
  }
  if (!coalescing_) StartWrite();
}

void Connection::PostReply(proto::Response response) {
  bool post = false;
  {
    MutexLock lock(&replies_mu_);
    replies_.push_back(std::move(response));
    post = !replies_posted_;
    replies_posted_ = true;
  }
  if (!post) return;  // the pending OnReplies takes this one too
  try {
    asio::post(executor(),
               [self = shared_from_this()] { self->Guarded([&] { self->OnReplies(); }); });
  } catch (...) {
    // Not posted: the next reply posts again and delivers this one with it.
    MutexLock lock(&replies_mu_);
    replies_posted_ = false;
    throw;
  }
}

void Connection::HandleHello(uint64_t id, const proto::Hello& hello) {
  if (hello.protocol_version != proto::kProtocolVersion) {
    Send(ErrorResponse(id, proto::ErrorCode::kUnsupportedVersion,
                       "protocol version " + std::to_string(hello.protocol_version) +
                           " is not supported; this server speaks version " +
                           std::to_string(proto::kProtocolVersion)));
    finishing_ = true;
    return CloseWhenDone();
  }
  handshaken_ = true;
  proto::Response welcome;
  welcome.id = id;
  welcome.body = limits_.welcome;
  Send(welcome);
}

void Connection::OnReplies() {
  std::vector<proto::Response> replies;
  {
    MutexLock lock(&replies_mu_);
    replies.swap(replies_);
    replies_posted_ = false;
  }
  in_flight_ -= static_cast<uint32_t>(replies.size());
  if (closed_) return;
  coalescing_ = true;  // one gathered write for the whole batch
  for (const proto::Response& response : replies) {
    Send(response);
    // Its updates may follow now that the client will see Subscribed first.
    if (const auto* subscribed = std::get_if<proto::Subscribed>(&response.body)) {
      outbox_->Announce(subscribed->subscription);
    }
  }
  PushUpdates();
  coalescing_ = false;
  StartWrite();
  if (finishing_) return CloseWhenDone();
  Resume();
}

void Connection::Send(const proto::Response& response) {
  if (closed_) return;
  counters_.requests.fetch_add(1, std::memory_order_relaxed);  // answered, errors included
  std::string payload = proto::EncodeResponse(response);
  if (payload.size() > limits_.max_frame_size) {
    payload = proto::EncodeResponse(ErrorResponse(
        response.id, proto::ErrorCode::kInvalidArgument,
        "the response to request " + std::to_string(response.id) + " would be " +
            std::to_string(payload.size()) + " bytes, above the max frame size " +
            std::to_string(limits_.max_frame_size) + "; ask for less (e.g. a smaller limit)"));
  }
  std::string frame;
  frame.reserve(proto::kLengthPrefixSize + payload.size());
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
  queued_bytes_ += frame.size();
  queued_.push_back(std::move(frame));
  if (!coalescing_) StartWrite();
}

void Connection::StartWrite() {
  if (write_pending_ || queued_.empty() || closed_) return;
  writing_.swap(queued_);
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(writing_.size());
  for (const std::string& frame : writing_) buffers.push_back(asio::buffer(frame));
  write_pending_ = true;
  write_started_ = std::chrono::steady_clock::now();
  if (!write_timer_armed_) ArmWriteTimer(write_started_ + limits_.write_timeout);
  asio::async_write(socket_, buffers,
                    [self = shared_from_this()](const std::error_code& ec, size_t bytes) {
                      self->Guarded([&] { self->OnWrite(ec, bytes); });
                    });
}

void Connection::OnWrite(const std::error_code& ec, size_t /*bytes*/) {
  write_pending_ = false;
  if (closed_) return;
  if (ec) return Close(LogLevel::kInfo, "write failed: " + ec.message());
  for (const std::string& frame : writing_) queued_bytes_ -= frame.size();
  writing_.clear();
  last_activity_ = std::chrono::steady_clock::now();
  PushUpdates();
  StartWrite();
  if (finishing_) return CloseWhenDone();
  Resume();
}

void Connection::FailAndClose(proto::ErrorCode code, std::string message) {
  LogWarning("connection " + peer_ + ": " + message + "; closing it");
  Send(ErrorResponse(0, code, std::move(message)));
  finishing_ = true;
  // Nothing more is read or parsed: the buffer and its share of the server-wide budget go
  // back now, not when the requests in flight have drained (a pending read still writes
  // into the buffer: OnRead releases it then).
  if (!reading_) ReleaseReadBuffer();
  CloseWhenDone();
}

void Connection::CloseWhenDone() {
  if (closed_ || in_flight_ > 0 || write_pending_ || !queued_.empty()) return;
  if (outbox_ && outbox_->pending_bytes() > 0) return;  // the ended updates of a drain
  Close(LogLevel::kInfo, "");
}

void Connection::Close(LogLevel level, std::string_view why) {
  if (closed_) return;
  closed_ = true;
  if (outbox_) dispatcher_.ReleaseSubscriptions(outbox_->Close());
  try {
    if (!why.empty()) Log(level, "connection " + peer_ + ": " + std::string(why) + "; closed");
  } catch (...) {
    // Out of memory for the log line: the socket is closed all the same.
  }
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  idle_timer_.cancel();
  write_timer_.cancel();
  frame_timer_.cancel();
  ReleaseReadBuffer();
  queued_.clear();
  writing_.clear();
  counters_.open_connections.fetch_sub(1);
  on_closed_(this);
}

void Connection::ArmIdleTimer() {
  idle_timer_.expires_at(last_activity_ + limits_.idle_timeout);
  idle_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    self->Guarded([&] { self->OnIdleTimer(ec); });
  });
}

void Connection::OnIdleTimer(const std::error_code& ec) {
  if (ec || closed_) return;
  const auto now = std::chrono::steady_clock::now();
  // A request being processed or a response being written is not idleness; a stalled
  // write has its own deadline.
  if (in_flight_ > 0 || write_pending_ || (outbox_ && outbox_->open() > 0)) last_activity_ = now;
  if (now >= last_activity_ + limits_.idle_timeout) {
    return Close(LogLevel::kInfo, "idle for " + std::to_string(limits_.idle_timeout.count()) + "s");
  }
  ArmIdleTimer();
}

void Connection::ArmWriteTimer(std::chrono::steady_clock::time_point at) {
  write_timer_armed_ = true;
  write_timer_.expires_at(at);
  write_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    self->Guarded([&] { self->OnWriteTimer(ec); });
  });
}

void Connection::OnWriteTimer(const std::error_code& ec) {
  write_timer_armed_ = false;
  if (ec || closed_ || !write_pending_) return;
  const auto deadline = write_started_ + limits_.write_timeout;
  if (std::chrono::steady_clock::now() < deadline) return ArmWriteTimer(deadline);
  Close(LogLevel::kWarning, "a response write made no progress for " +
                                std::to_string(limits_.write_timeout.count()) +
                                "s (the client does not read)");
}

void Connection::ArmFrameTimer(std::chrono::steady_clock::time_point at) {
  frame_timer_armed_ = true;
  frame_timer_.expires_at(at);
  frame_timer_.async_wait([self = shared_from_this()](const std::error_code& ec) {
    self->Guarded([&] { self->OnFrameTimer(ec); });
  });
}

void Connection::OnFrameTimer(const std::error_code& ec) {
  frame_timer_armed_ = false;
  if (ec || closed_ || finishing_ || !frame_pending_) return;
  const auto now = std::chrono::steady_clock::now();
  // Not reading (a cap is reached): the wait is the server's, and the clock restarts when
  // reading resumes.
  if (!reading_) return ArmFrameTimer(now + limits_.frame_timeout);
  const auto deadline = frame_started_ + limits_.frame_timeout;
  if (now < deadline) return ArmFrameTimer(deadline);
  const size_t buffered = BufferedBytes();
  std::string size = "an unknown number of";
  if (buffered >= proto::kLengthPrefixSize) {
    size =
        std::to_string(proto::kLengthPrefixSize + LengthPrefix(read_buffer_.data() + read_begin_));
  }
  Close(LogLevel::kWarning, "a request frame was not complete " +
                                std::to_string(limits_.frame_timeout.count()) +
                                "s after its first byte arrived (" + std::to_string(buffered) +
                                " of its " + size + " bytes received; --frame-timeout)");
}

}  // namespace strata::server
