// A minimal blocking protocol client for the server tests (the real driver is
// drivers/cpp): one TCP socket to 127.0.0.1, frames encoded and decoded with
// strata_protocol. Every blocking call gives up after a receive/send timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "strata/protocol/messages.h"
#include "strata/status.h"

namespace strata::server_test {

class TestClient {
 public:
  TestClient() = default;
  ~TestClient();
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Connects to 127.0.0.1:port; `timeout` bounds every later send and receive. A
  // `receive_buffer` > 0 sets SO_RCVBUF (bytes) before connecting: a small window makes the
  // server's writes stall after a few frames (a slow reader).
  Status Connect(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(30),
                 int receive_buffer = 0);
  // Sends Hello and checks the Welcome.
  Status Handshake();

  // Sends one request (id chosen by the caller) without waiting.
  Status Send(const protocol::Request& request);
  Status SendRaw(const std::string& bytes);
  // The next response frame (kIOError on close or timeout; kCorruption if undecodable).
  Result<protocol::Response> Receive();
  // Sends `body` with a fresh id and returns the response with that id.
  Result<protocol::Response> Call(protocol::RequestBody body);

  // True when the server closed the connection (read returns 0 or a reset), skipping
  // whatever frames arrive first; false on timeout.
  bool WaitForClose();
  // Half-closes the sending side.
  void ShutdownWrite();
  // Closes the socket (unread data makes the kernel reset the connection).
  void Close();
  int fd() const { return fd_; }
  uint64_t NextId() { return next_id_++; }

 private:
  Status ReadExactly(char* data, size_t size);

  int fd_ = -1;
  uint64_t next_id_ = 1;
};

// A client connected to 127.0.0.1:port that has said Hello; a (non-fatal) test failure
// when either step fails.
TestClient ConnectedTestClient(uint16_t port);

// Every record of wordcount's *sentences over `partitions` partitions, read page by page:
// partition -> offset -> record; the error (the call's, or the server's as kIOError) that
// stopped the reading otherwise.
Result<std::map<int, std::map<int64_t, Value>>> ReadAllSentences(TestClient& client,
                                                                 int partitions);

}  // namespace strata::server_test
