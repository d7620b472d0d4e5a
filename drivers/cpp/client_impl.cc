#include "client_impl.h"

#include <algorithm>
#include <cstring>
#include <future>
#include <memory>

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include "strata/path.h"
#include "strata/protocol/frame.h"

namespace strata {
namespace {

namespace proto = protocol;

constexpr size_t kReadChunk = 256 << 10;    // free space offered to each read
constexpr size_t kMaxWriteBatch = 4 << 20;  // bytes gathered into one write
constexpr std::chrono::milliseconds kMaxBackoff{2000};

// The request's name for messages: index = RequestBody alternative.
const char* RequestName(const proto::RequestBody& body) {
  static constexpr const char* kNames[] = {
      "Hello",      "Deploy",          "ListModules", "Describe",  "Destroy",      "Append",
      "Select",     "ReadDepot",       "Stats",       "Update",    "Recompute",    "Invoke",
      "SelectPage", "Subscribe",       "Unsubscribe", "Placement", "ReplicaFetch", "ReplicaEpoch",
      "ModuleFile", "ReplicaSnapshot", "Rebalance"};
  static_assert(std::size(kNames) == std::variant_size_v<proto::RequestBody>);
  return kNames[body.index()];
}

// What makes `body` invalid before it is sent, or nullopt. The server checks all of this
// too; checking here gives a kArgument error without a round trip.
std::optional<std::string> CheckRequest(const proto::RequestBody& body) {
  return std::visit(
      [](const auto& r) -> std::optional<std::string> {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, proto::Hello>) {
          return "Hello is sent by the driver itself when it connects";
        } else if constexpr (std::is_same_v<T, proto::DeployRequest>) {
          if (r.path.empty() == r.so_bytes.empty()) {
            return "deploy needs exactly one of a server path and the plugin's bytes";
          }
          if (r.partitions < 1 || r.partitions > proto::kMaxPartitions) {
            return "partitions must be 1 to " + std::to_string(proto::kMaxPartitions) + ", got " +
                   std::to_string(r.partitions);
          }
          if (Status valid = proto::Validate(r); !valid.ok()) return valid.message();
        } else if constexpr (std::is_same_v<T, proto::UpdateRequest>) {
          if (r.path.empty() == r.so_bytes.empty()) {
            return "update needs exactly one of a server path and the plugin's bytes";
          }
          if (r.partitions < 0 || r.partitions > proto::kMaxPartitions) {
            return "partitions must be 0 (keep) or 1 to " + std::to_string(proto::kMaxPartitions) +
                   ", got " + std::to_string(r.partitions);
          }
          for (const std::string& name : r.drop) {
            if (name.empty()) return "a name to drop is empty";
          }
        } else if constexpr (std::is_same_v<T, proto::RecomputeRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.pstates.empty()) return "no PStates to recompute (module '" + r.module + "')";
          for (const std::string& name : r.pstates) {
            if (name.empty()) return "a PState name is empty (module '" + r.module + "')";
          }
        } else if constexpr (std::is_same_v<T, proto::DescribeRequest> ||
                             std::is_same_v<T, proto::DestroyRequest>) {
          if (r.module.empty()) return "the module name is empty";
        } else if constexpr (std::is_same_v<T, proto::AppendRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.depot.empty()) return "the depot name is empty (module '" + r.module + "')";
          if (r.records.empty()) return "no records to append to " + r.module + " " + r.depot;
          if (static_cast<uint8_t>(r.ack) >
              static_cast<uint8_t>(proto::AckLevel::kProcessedStreams)) {
            return "ack level " + std::to_string(static_cast<int>(r.ack)) + " is not 0 to 3";
          }
        } else if constexpr (std::is_same_v<T, proto::SelectRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.pstate.empty()) return "the PState name is empty (module '" + r.module + "')";
          Result<Path> path = Path::FromValue(r.path);
          if (!path.ok()) return "invalid path: " + path.status().message();
          Status valid = path->Validate();
          if (!valid.ok()) return "invalid path: " + valid.message();
        } else if constexpr (std::is_same_v<T, proto::ReadDepotRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.depot.empty()) return "the depot name is empty (module '" + r.module + "')";
          if (r.partition < 0) return "partition must be >= 0, got " + std::to_string(r.partition);
          if (r.from < 0) return "from must be >= 0, got " + std::to_string(r.from);
          if (r.to < r.from) {
            return "to (" + std::to_string(r.to) + ") is below from (" + std::to_string(r.from) +
                   ")";
          }
          if (r.limit < 1) return "limit must be >= 1, got " + std::to_string(r.limit);
        } else if constexpr (std::is_same_v<T, proto::InvokeRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.query.empty()) return "the query name is empty (module '" + r.module + "')";
          if (r.timeout_ms < 1 || r.timeout_ms > proto::kMaxInvokeTimeoutMs) {
            return "timeout_ms must be 1 to " + std::to_string(proto::kMaxInvokeTimeoutMs) +
                   ", got " + std::to_string(r.timeout_ms) + " (query " + r.module + "/" + r.query +
                   ")";
          }
        } else if constexpr (std::is_same_v<T, proto::SelectPageRequest>) {
          if (r.module.empty()) return "the module name is empty";
          if (r.pstate.empty()) return "the PState name is empty (module '" + r.module + "')";
          if (r.limit < 1 || r.limit > proto::kMaxPageLimit) {
            return "limit must be 1 to " + std::to_string(proto::kMaxPageLimit) + ", got " +
                   std::to_string(r.limit);
          }
          Result<Path> path = Path::FromValue(r.path);
          if (!path.ok()) return "invalid path: " + path.status().message();
          Status valid = path->Validate();
          if (!valid.ok()) return "invalid path: " + valid.message();
        }
        return std::nullopt;
      },
      body);
}

ClientError Error(ErrorKind kind, std::string message) {
  return ClientError{kind, proto::ErrorCode::kNone, std::move(message)};
}

}  // namespace

Client::Impl::Impl(ClientOptions options, asio::io_context& io, std::thread::id io_thread_id)
    : options_(std::move(options)),
      io_(io),
      io_thread_id_(io_thread_id),
      resolver_(io_),
      socket_(io_),
      connect_timer_(io_),
      backoff_timer_(io_),
      deadline_timer_(io_),
      read_buffer_(kReadChunk) {}

void Client::Impl::Close() {
  {
    MutexLock lock(&mutex_);
    if (closing_) return;
    closing_ = true;
  }
  if (OnIoThread()) {
    // Destroying a Client from a callback of another Client on the same shared thread.
    Shutdown();
    return;
  }
  std::promise<void> shut;
  asio::post(io_, [self = shared_from_this(), &shut] {
    self->Shutdown();
    shut.set_value();
  });
  shut.get_future().wait();
}

std::optional<ClientError> Client::Impl::ConnectOnce() {
  auto result = std::make_shared<std::promise<std::optional<ClientError>>>();
  std::future<std::optional<ClientError>> future = result->get_future();
  asio::post(io_, [self = shared_from_this(), result] {
    self->BeginConnect(
        1, [result](std::optional<ClientError> error) { result->set_value(std::move(error)); });
  });
  return future.get();
}

void Client::Impl::Submit(proto::RequestBody request, Callback done) {
  const char* what = RequestName(request);
  std::optional<std::string> invalid = CheckRequest(request);
  Submission s;
  if (!invalid) {
    s.id = next_id_.fetch_add(1, std::memory_order_relaxed);
    const std::string payload = proto::EncodeRequest(proto::Request{s.id, std::move(request)});
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &s.frame);
  }
  s.what = what;
  s.done = std::move(done);

  // Refused requests go through the inbox too, so their callback runs on the I/O thread,
  // never inside Submit, and Shutdown fails whatever the inbox still holds: no callback
  // of this Client runs after Close returns.
  if (invalid) s.refused = Error(ErrorKind::kArgument, std::string(what) + ": " + *invalid);
  bool queued = false;
  bool post_drain = false;
  {
    MutexLock lock(&mutex_);
    if (!closing_) {
      // Taken under the lock, so deadlines are ascending in inbox order.
      if (!invalid && options_.request_timeout.count() > 0) {
        s.deadline = Clock::now() + options_.request_timeout;
      }
      inbox_.push_back(std::move(s));
      queued = true;
      post_drain = !drain_posted_;
      drain_posted_ = true;
    }
  }
  if (!queued) {
    s.done(Error(ErrorKind::kConnection, std::string(what) + ": the client is closing"));
  } else if (post_drain) {
    asio::post(io_, [self = shared_from_this()] { self->Drain(); });
  }
}

proto::Welcome Client::Impl::welcome() const {
  MutexLock lock(&mutex_);
  return welcome_;
}

void Client::Impl::Drain() {
  std::vector<Submission> batch;
  {
    MutexLock lock(&mutex_);
    batch.swap(inbox_);
    drain_posted_ = false;
  }
  std::vector<std::pair<Callback, ClientError>> refused;
  for (Submission& s : batch) {
    if (s.refused) {
      refused.emplace_back(std::move(s.done), std::move(*s.refused));
      continue;
    }
    if (state_ == State::kClosed) {
      s.done(Error(ErrorKind::kConnection, std::string(s.what) + ": the client is closing"));
      continue;
    }
    if (s.deadline) deadlines_.emplace_back(*s.deadline, s.id);
    send_queue_.push_back(s.id);
    pending_.emplace(s.id, Pending{std::move(s.frame), s.what, std::move(s.done), false});
  }
  ArmDeadlineTimer();
  if (refused.size() < batch.size()) {  // something to send
    if (state_ == State::kDisconnected) {
      BeginConnect(std::max(1, options_.reconnect_attempts), nullptr);
    } else if (state_ == State::kConnected) {
      PumpWrites();
    }
  }
  for (auto& [done, error] : refused) done(std::move(error));
}

// --- Connecting -------------------------------------------------------------------------

void Client::Impl::BeginConnect(int attempts,
                                std::function<void(std::optional<ClientError>)> done) {
  state_ = State::kConnecting;
  attempts_left_ = attempts;
  attempts_made_ = 0;
  backoff_ = options_.reconnect_backoff;
  on_connect_done_ = std::move(done);
  Attempt();
}

void Client::Impl::Attempt() {
  --attempts_left_;
  ++attempts_made_;
  const uint64_t generation = ++generation_;
  read_begin_ = read_end_ = 0;
  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait(
      [this, self = shared_from_this(), generation](const std::error_code& ec) {
        if (ec || generation != generation_) return;
        AttemptFailed(Error(ErrorKind::kConnection,
                            "no answer from " + Where() + " within the connect timeout of " +
                                std::to_string(options_.connect_timeout.count()) + " ms"));
      });
  resolver_.async_resolve(
      options_.host, std::to_string(options_.port),
      [this, self = shared_from_this(), generation](const std::error_code& ec,
                                                    asio::ip::tcp::resolver::results_type results) {
        if (generation != generation_) return;
        if (ec) {
          AttemptFailed(Error(ErrorKind::kConnection,
                              "cannot resolve host '" + options_.host + "': " + ec.message()));
          return;
        }
        asio::async_connect(
            socket_, results,
            [this, self = shared_from_this(), generation](const std::error_code& ec,
                                                          const asio::ip::tcp::endpoint&) {
              if (generation != generation_) return;
              if (ec) {
                AttemptFailed(Error(ErrorKind::kConnection,
                                    "cannot connect to " + Where() + ": " + ec.message()));
                return;
              }
              OnConnected(generation);
            });
      });
}

void Client::Impl::OnConnected(uint64_t generation) {
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  const std::string payload = proto::EncodeRequest(
      proto::Request{0, proto::Hello{proto::kProtocolVersion, options_.client_name}});
  write_frames_.clear();
  write_frames_.emplace_back();
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                     &write_frames_[0]);
  write_active_ = true;
  asio::async_write(socket_, asio::buffer(write_frames_[0]),
                    [this, self = shared_from_this(), generation](
                        const std::error_code& ec, size_t) { OnWritten(generation, ec); });
  StartRead(generation);
}

void Client::Impl::AttemptFailed(ClientError error) {
  CloseSocket();
  if (state_ != State::kConnecting) return;
  if (attempts_left_ <= 0) {
    if (attempts_made_ > 1) {
      error.message += " (" + std::to_string(attempts_made_) + " attempts)";
    }
    ConnectFinished(std::move(error));
    return;
  }
  backoff_timer_.expires_after(backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  const uint64_t generation = generation_;
  backoff_timer_.async_wait(
      [this, self = shared_from_this(), generation](const std::error_code& ec) {
        if (ec || generation != generation_ || state_ != State::kConnecting) return;
        Attempt();
      });
}

void Client::Impl::ConnectFinished(std::optional<ClientError> error) {
  connect_timer_.cancel();
  state_ = error ? State::kDisconnected : State::kConnected;
  if (error) FailUnwritten(*error);
  if (auto done = std::move(on_connect_done_)) {
    on_connect_done_ = nullptr;
    done(std::move(error));
  }
  if (state_ == State::kConnected) PumpWrites();
}

// --- Reading ----------------------------------------------------------------------------

void Client::Impl::StartRead(uint64_t generation) {
  if (read_begin_ == read_end_) {
    read_begin_ = read_end_ = 0;
    // Give back what one large response made the buffer grow to.
    if (read_buffer_.size() > 4 * kReadChunk) {
      read_buffer_.resize(kReadChunk);
      read_buffer_.shrink_to_fit();
    }
  }
  if (read_buffer_.size() - read_end_ < kReadChunk / 4) {
    // Move the partial frame to the front; grow only when that is not enough.
    std::memmove(read_buffer_.data(), read_buffer_.data() + read_begin_, read_end_ - read_begin_);
    read_end_ -= read_begin_;
    read_begin_ = 0;
    if (read_buffer_.size() - read_end_ < kReadChunk / 4)
      read_buffer_.resize(read_end_ + kReadChunk);
  }
  socket_.async_read_some(
      asio::buffer(read_buffer_.data() + read_end_, read_buffer_.size() - read_end_),
      [this, self = shared_from_this(), generation](const std::error_code& ec, size_t bytes) {
        OnRead(generation, ec, bytes);
      });
}

void Client::Impl::OnRead(uint64_t generation, const std::error_code& ec, size_t bytes) {
  if (generation != generation_) return;
  if (ec) {
    const std::string why =
        ec == asio::error::eof ? "the server closed the connection" : ec.message();
    ConnectionLost(Error(ErrorKind::kConnection, "connection to " + Where() + " lost: " + why));
    return;
  }
  read_end_ += bytes;
  if (!ProcessFrames(generation)) return;
  if (state_ == State::kConnected) {
    TrimDeadlines();
    PumpWrites();
  }
  StartRead(generation);
}

bool Client::Impl::ProcessFrames(uint64_t generation) {
  while (read_begin_ < read_end_) {
    proto::FrameView frame;
    size_t consumed = 0;
    std::string error;
    const proto::DecodeState decoded =
        proto::DecodeFrame(read_buffer_.data() + read_begin_, read_end_ - read_begin_,
                           MaxResponseSize(), &frame, &consumed, &error);
    if (decoded == proto::DecodeState::kNeedMore) {
      if (read_end_ - read_begin_ >= proto::kLengthPrefixSize) {
        // Make room for the whole frame, so the next read can complete it.
        uint32_t length = 0;
        std::memcpy(&length, read_buffer_.data() + read_begin_, sizeof length);
        const size_t need = read_begin_ + proto::kLengthPrefixSize + length;
        if (need > read_buffer_.size()) read_buffer_.resize(need + kReadChunk / 4);
      }
      return true;
    }
    if (decoded == proto::DecodeState::kBad) {
      ConnectionLost(Error(ErrorKind::kProtocol, "the server sent a bad frame: " + error));
      return false;
    }
    HandleFrame(frame.data, frame.size);
    if (generation != generation_) return false;
    read_begin_ += consumed;
  }
  return true;
}

void Client::Impl::HandleFrame(const uint8_t* data, size_t size) {
  Result<proto::Response> decoded = proto::DecodeResponse(data, size);
  if (!decoded.ok()) {
    ConnectionLost(Error(ErrorKind::kProtocol, "the server sent a response that does not decode: " +
                                                   decoded.status().message()));
    return;
  }
  proto::Response response = std::move(decoded).value();
  if (state_ == State::kConnecting) {
    HandleHandshake(std::move(response));
    return;
  }
  if (auto* update = std::get_if<proto::SubscriptionUpdate>(&response.body)) {
    return HandlePush(std::move(*update));
  }
  if (response.id == 0) {
    // A connection-level error (BAD_FRAME, FRAME_TOO_LARGE): the server closes next.
    ClientError error{ErrorKind::kServer, proto::ErrorCode::kInternal,
                      "the server sent a response with id 0 and no error"};
    if (response.error) error = {ErrorKind::kServer, response.error->code, response.error->message};
    ConnectionLost(std::move(error));
    return;
  }
  auto it = pending_.find(response.id);
  if (it == pending_.end() || !it->second.written) {
    ConnectionLost(Error(ErrorKind::kProtocol, "the server answered request id " +
                                                   std::to_string(response.id) +
                                                   ", which is not outstanding"));
    return;
  }
  Callback done = std::move(it->second.done);
  pending_.erase(it);
  --in_flight_;
  if (const auto* gone = std::get_if<proto::Unsubscribed>(&response.body)) {
    subscriptions_.erase(gone->subscription);
  }
  if (!done) return;  // timed out earlier: the caller has its answer
  if (response.error) {
    ClientError error(ErrorKind::kServer, response.error->code, std::move(response.error->message));
    error.leader = std::move(response.error->leader);
    done(std::move(error));
  } else {
    done(std::move(response.body));
  }
}

void Client::Impl::SubmitSubscribe(proto::SubscribeRequest request, SubscriptionHandler on_update,
                                   Callback done) {
  Submit(std::move(request), [self = shared_from_this(), on_update = std::move(on_update),
                              done = std::move(done)](ClientResult<proto::ResponseBody> result) {
    if (result.ok()) {
      if (const auto* subscribed = std::get_if<proto::Subscribed>(&result.value())) {
        self->subscriptions_[subscribed->subscription] = on_update;
      }
    }
    done(std::move(result));
  });
}

void Client::Impl::HandlePush(proto::SubscriptionUpdate update) {
  auto it = subscriptions_.find(update.subscription);
  if (it == subscriptions_.end()) return;  // unsubscribed meanwhile
  if (update.ended) {
    SubscriptionHandler handler = std::move(it->second);
    subscriptions_.erase(it);
    return handler(std::move(update));
  }
  it->second(std::move(update));
}

void Client::Impl::EndSubscriptions(const ClientError& error) {
  std::unordered_map<uint64_t, SubscriptionHandler> ended;
  ended.swap(subscriptions_);
  for (auto& [id, handler] : ended) handler(error);
}

void Client::Impl::HandleHandshake(proto::Response response) {
  if (response.id != 0) {
    AttemptFailed(Error(ErrorKind::kProtocol, "the server answered id " +
                                                  std::to_string(response.id) +
                                                  " before the handshake's Welcome"));
    return;
  }
  if (response.error) {
    AttemptFailed(ClientError{ErrorKind::kServer, response.error->code,
                              "handshake refused: " + response.error->message});
    return;
  }
  auto* welcome = std::get_if<proto::Welcome>(&response.body);
  if (welcome == nullptr || welcome->protocol_version != proto::kProtocolVersion) {
    AttemptFailed(Error(ErrorKind::kProtocol, welcome == nullptr
                                                  ? "the handshake's answer is not a Welcome"
                                                  : "the server speaks protocol version " +
                                                        std::to_string(welcome->protocol_version) +
                                                        ", this driver version 1"));
    return;
  }
  max_frame_size_ = welcome->max_frame_size;
  max_in_flight_ = welcome->max_in_flight;
  {
    MutexLock lock(&mutex_);
    welcome_ = *welcome;
  }
  ConnectFinished(std::nullopt);
}

// --- Writing ----------------------------------------------------------------------------

void Client::Impl::PumpWrites() {
  if (state_ != State::kConnected || write_active_) return;
  std::vector<std::pair<Callback, ClientError>> refused;
  size_t bytes = 0;
  write_frames_.clear();
  while (!send_queue_.empty() && (max_in_flight_ == 0 || in_flight_ < max_in_flight_) &&
         bytes < kMaxWriteBatch) {
    const uint64_t id = send_queue_.front();
    send_queue_.pop_front();
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;  // timed out while queued
    Pending& p = it->second;
    const size_t payload = p.frame.size() - proto::kLengthPrefixSize;
    if (max_frame_size_ != 0 && payload > max_frame_size_) {
      refused.emplace_back(
          std::move(p.done),
          Error(ErrorKind::kArgument, std::string(p.what) + ": the request is " +
                                          std::to_string(payload) +
                                          " bytes, above the server's max_frame_size of " +
                                          std::to_string(max_frame_size_) +
                                          " (split the batch, or deploy by server path)"));
      pending_.erase(it);
      continue;
    }
    p.written = true;
    ++in_flight_;
    bytes += p.frame.size();
    write_frames_.push_back(std::move(p.frame));
    p.frame = std::string();
  }
  if (!write_frames_.empty()) {
    write_buffers_.clear();
    for (const std::string& f : write_frames_) write_buffers_.push_back(asio::buffer(f));
    write_active_ = true;
    const uint64_t generation = generation_;
    asio::async_write(socket_, write_buffers_,
                      [this, self = shared_from_this(), generation](
                          const std::error_code& ec, size_t) { OnWritten(generation, ec); });
  }
  for (auto& [done, error] : refused) done(std::move(error));
}

void Client::Impl::OnWritten(uint64_t generation, const std::error_code& ec) {
  if (generation != generation_) return;
  write_active_ = false;
  write_frames_.clear();
  if (ec) {
    ConnectionLost(Error(ErrorKind::kConnection,
                         "connection to " + Where() + " lost while sending: " + ec.message()));
    return;
  }
  PumpWrites();
}

// --- Failures, timeouts, shutdown -------------------------------------------------------

void Client::Impl::ConnectionLost(ClientError error) {
  if (state_ == State::kConnecting) {
    AttemptFailed(std::move(error));
    return;
  }
  CloseSocket();
  state_ = State::kDisconnected;
  // Requests written on this connection may or may not have been applied: fail them, never
  // re-send. Requests still queued were never written and go out on the next connection.
  std::vector<Callback> failed;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!it->second.written) {
      ++it;
      continue;
    }
    if (it->second.done) failed.push_back(std::move(it->second.done));
    it = pending_.erase(it);
  }
  in_flight_ = 0;
  EndSubscriptions(ClientError{error.kind, error.code,
                               error.message + " (the subscription ended: subscribe again)"});
  if (error.kind == ErrorKind::kConnection) {
    error.message += " (the request may or may not have been applied)";
  }
  error.maybe_applied = true;
  for (Callback& done : failed) done(error);
  if (state_ == State::kDisconnected && !pending_.empty()) {
    BeginConnect(std::max(1, options_.reconnect_attempts), nullptr);
  }
}

void Client::Impl::CloseSocket() {
  ++generation_;
  std::error_code ignored;
  resolver_.cancel();
  socket_.close(ignored);
  connect_timer_.cancel();
  write_active_ = false;
  write_frames_.clear();
  read_begin_ = read_end_ = 0;
}

void Client::Impl::FailUnwritten(const ClientError& error) {
  std::vector<Callback> failed;
  for (uint64_t id : send_queue_) {
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.written) continue;
    failed.push_back(std::move(it->second.done));
    pending_.erase(it);
  }
  send_queue_.clear();
  for (Callback& done : failed) done(error);
}

void Client::Impl::ArmDeadlineTimer() {
  if (deadline_timer_armed_ || deadlines_.empty() || state_ == State::kClosed) return;
  deadline_timer_armed_ = true;
  deadline_timer_.expires_at(deadlines_.front().first);
  deadline_timer_.async_wait(
      [this, self = shared_from_this()](const std::error_code& ec) { OnDeadline(ec); });
}

void Client::Impl::OnDeadline(const std::error_code& ec) {
  deadline_timer_armed_ = false;
  if (ec || state_ == State::kClosed) return;
  const auto now = Clock::now();
  std::vector<std::pair<Callback, ClientError>> expired;
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    const uint64_t id = deadlines_.front().second;
    deadlines_.pop_front();
    auto it = pending_.find(id);
    if (it == pending_.end() || !it->second.done) continue;
    Pending& p = it->second;
    ClientError error = Error(
        ErrorKind::kTimeout,
        std::string(p.what) + ": no response from " + Where() + " within " +
            std::to_string(options_.request_timeout.count()) + " ms" +
            (p.written ? " (the request may still be applied)" : " (the request was not sent)"));
    error.maybe_applied = p.written;
    expired.emplace_back(std::move(p.done), std::move(error));
    // A written request keeps its in-flight slot until the server answers it.
    if (!p.written) pending_.erase(it);
  }
  ArmDeadlineTimer();
  for (auto& [done, error] : expired) done(std::move(error));
}

void Client::Impl::TrimDeadlines() {
  while (!deadlines_.empty() && !pending_.contains(deadlines_.front().second))
    deadlines_.pop_front();
}

void Client::Impl::Shutdown() {
  const ClientError error =
      Error(ErrorKind::kConnection, "the client was closed before the response");
  std::vector<Submission> unsent;
  {
    MutexLock lock(&mutex_);
    unsent.swap(inbox_);
  }
  state_ = State::kClosed;
  CloseSocket();
  backoff_timer_.cancel();
  deadline_timer_.cancel();
  std::vector<Callback> failed;
  for (auto& [id, p] : pending_) {
    if (p.done) failed.push_back(std::move(p.done));
  }
  pending_.clear();
  send_queue_.clear();
  deadlines_.clear();
  in_flight_ = 0;
  auto connect_done = std::move(on_connect_done_);
  on_connect_done_ = nullptr;
  if (connect_done) connect_done(error);
  for (Callback& done : failed) done(error);
  EndSubscriptions(Error(ErrorKind::kConnection, "the client was closed"));
  for (Submission& s : unsent) {
    s.done(s.refused ? std::move(*s.refused) : error);
  }
}

uint32_t Client::Impl::MaxResponseSize() const {
  return max_frame_size_ != 0 ? max_frame_size_ : proto::kDefaultMaxFrameSize;
}

std::string Client::Impl::Where() const {
  return options_.host + ":" + std::to_string(options_.port);
}

}  // namespace strata
