// NodeChannel: one node's blocking connection to another node's binary protocol listener,
// for the requests nodes send each other (a follower's fetches from its leader:
// docs/protocol.md, "Cluster requests"). It does the Hello handshake at connect and sends
// one request at a time; every call has a deadline and a failed call closes the
// connection (the next call reconnects). One owner thread makes the calls; Interrupt()
// may come from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "strata/protocol/frame.h"
#include "strata/protocol/messages.h"
#include "strata/status.h"

namespace strata::cluster {

class NodeChannel {
 public:
  // `address` is "HOST:PORT"; `client_name` goes in the Hello ("stratad-node/n1").
  NodeChannel(std::string address, std::string client_name);
  ~NodeChannel();
  NodeChannel(const NodeChannel&) = delete;
  NodeChannel& operator=(const NodeChannel&) = delete;

  const std::string& address() const { return address_; }

  // Sends `body` and returns the response (an error response is returned as a Response
  // with `error` set). kTimeout when no answer came within `timeout`, kIOError when the
  // connection failed or closed, kCorruption when the answer does not decode; each closes
  // the connection.
  Result<protocol::Response> Call(protocol::RequestBody body, std::chrono::milliseconds timeout);

  // Closes the connection (the next Call reconnects).
  void Close();

  // Any thread: ends the call in progress, if any, at once (kIOError), e.g. when the leader
  // it waits on is no longer the one to follow. The next Call reconnects.
  void Interrupt();

 private:
  struct Socket;
  Status Connect(std::chrono::steady_clock::time_point deadline);
  Result<protocol::Response> RoundTrip(const protocol::Request& request,
                                       std::chrono::steady_clock::time_point deadline);

  const std::string address_;
  const std::string client_name_;
  std::mutex mu_;                   // guards socket_'s replacement against Interrupt
  std::unique_ptr<Socket> socket_;  // null while closed
  uint64_t next_id_ = 1;
  // The largest answer read: the peer's max_frame_size from its Welcome (it sends no more).
  uint32_t max_frame_size_ = protocol::kDefaultMaxFrameSize;
};

}  // namespace strata::cluster
