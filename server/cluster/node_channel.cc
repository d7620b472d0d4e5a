#include "node_channel.h"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "strata/protocol/frame.h"

namespace strata::cluster {

namespace proto = strata::protocol;
using Clock = std::chrono::steady_clock;

struct NodeChannel::Socket {
  asio::io_context io;
  asio::ip::tcp::socket socket{io};
  std::string buffer;  // received bytes not yet consumed

  // Runs the io_context until `done` or the deadline; on the deadline, cancels the
  // operations and returns false.
  bool RunUntil(const bool& done, Clock::time_point deadline) {
    io.restart();
    while (!done) {
      const auto now = Clock::now();
      if (now >= deadline) {
        std::error_code ignored;
        socket.cancel(ignored);
        io.restart();
        io.run_for(std::chrono::milliseconds(100));  // let the cancelled handlers run
        return false;
      }
      io.run_one_for(deadline - now);
    }
    return true;
  }
};

NodeChannel::NodeChannel(std::string address, std::string client_name)
    : address_(std::move(address)), client_name_(std::move(client_name)) {}

NodeChannel::~NodeChannel() = default;

void NodeChannel::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  socket_.reset();
}

void NodeChannel::Interrupt() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!socket_) return;
  // Run by the owner's io_context loop (RunUntil), which fails the operation in progress.
  Socket* s = socket_.get();
  asio::post(s->io, [s] {
    std::error_code ignored;
    s->socket.close(ignored);
  });
}

Status NodeChannel::Connect(Clock::time_point deadline) {
  const size_t colon = address_.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("node address " + address_ + " is not HOST:PORT");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    socket_ = std::make_unique<Socket>();  // published first: Interrupt reaches the connect
  }
  Socket& socket = *socket_;
  const auto fail = [this](Status st) {
    Close();
    return st;
  };
  std::error_code ec;
  asio::ip::tcp::resolver resolver(socket.io);
  auto endpoints = resolver.resolve(address_.substr(0, colon), address_.substr(colon + 1), ec);
  if (ec) return fail(Status::IOError("resolving " + address_ + ": " + ec.message()));
  bool done = false;
  asio::async_connect(socket.socket, endpoints,
                      [&](const std::error_code& error, const asio::ip::tcp::endpoint&) {
                        ec = error;
                        done = true;
                      });
  if (!socket.RunUntil(done, deadline)) {
    return fail(Status::Timeout("connecting to " + address_ + " timed out"));
  }
  if (ec) return fail(Status::IOError("connecting to " + address_ + ": " + ec.message()));
  socket.socket.set_option(asio::ip::tcp::no_delay(true), ec);
  proto::Request hello;
  hello.id = 0;
  hello.body = proto::Hello{proto::kProtocolVersion, client_name_};
  Result<proto::Response> welcome = RoundTrip(hello, deadline);
  if (!welcome.ok()) return welcome.status();
  if (welcome->error) {
    Close();
    return Status::IOError("node " + address_ +
                           " refused the handshake: " + welcome->error->message);
  }
  if (const auto* w = std::get_if<proto::Welcome>(&welcome->body); w && w->max_frame_size > 0) {
    max_frame_size_ = w->max_frame_size;
  }
  return Status::Ok();
}

Result<proto::Response> NodeChannel::RoundTrip(const proto::Request& request,
                                               Clock::time_point deadline) {
  std::string frame;
  const std::string payload = proto::EncodeRequest(request);
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
  Socket& s = *socket_;
  std::error_code ec;
  bool done = false;
  asio::async_write(s.socket, asio::buffer(frame), [&](const std::error_code& error, size_t) {
    ec = error;
    done = true;
  });
  const auto fail = [this](Status st) -> Result<proto::Response> {
    Close();
    return st;
  };
  if (!s.RunUntil(done, deadline)) return fail(Status::Timeout("sending to " + address_));
  if (ec) return fail(Status::IOError("sending to " + address_ + ": " + ec.message()));
  // Read until a whole frame answering this request is buffered (other ids: none are in
  // flight on this channel, so any other id is a protocol error).
  char chunk[64 * 1024];
  while (true) {
    proto::FrameView view;
    size_t consumed = 0;
    std::string error;
    const proto::DecodeState state =
        proto::DecodeFrame(reinterpret_cast<const uint8_t*>(s.buffer.data()), s.buffer.size(),
                           max_frame_size_, &view, &consumed, &error);
    if (state == proto::DecodeState::kBad) {
      return fail(Status::Corruption("a frame from " + address_ + ": " + error));
    }
    if (state == proto::DecodeState::kComplete) {
      Result<proto::Response> response = proto::DecodeResponse(view.data, view.size);
      s.buffer.erase(0, consumed);
      if (!response.ok()) return fail(response.status());
      if (response->id != request.id) {
        return fail(Status::Corruption("node " + address_ + " answered request " +
                                       std::to_string(response->id) + ", not " +
                                       std::to_string(request.id)));
      }
      return response;
    }
    done = false;
    size_t got = 0;
    s.socket.async_read_some(asio::buffer(chunk), [&](const std::error_code& error, size_t n) {
      ec = error;
      got = n;
      done = true;
    });
    if (!s.RunUntil(done, deadline)) {
      return fail(Status::Timeout("no answer from " + address_ + " in time"));
    }
    if (ec) return fail(Status::IOError("reading from " + address_ + ": " + ec.message()));
    s.buffer.append(chunk, got);
  }
}

Result<proto::Response> NodeChannel::Call(proto::RequestBody body,
                                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (!socket_) STRATA_RETURN_IF_ERROR(Connect(deadline));
  proto::Request request;
  request.id = next_id_++;
  request.body = std::move(body);
  return RoundTrip(request, deadline);
}

}  // namespace strata::cluster
