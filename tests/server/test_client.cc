#include "test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <gtest/gtest.h>

#include "strata/protocol/frame.h"

namespace strata::server_test {

namespace proto = protocol;

TestClient::~TestClient() { Close(); }

void TestClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
    next_id_ = other.next_id_;
  }
  return *this;
}

TestClient::TestClient(TestClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), next_id_(other.next_id_) {}

Status TestClient::Connect(uint16_t port, std::chrono::milliseconds timeout, int receive_buffer) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Status::IOError(std::string("socket: ") + std::strerror(errno));
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (receive_buffer > 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IOError("connect to port " + std::to_string(port) + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status TestClient::Handshake() {
  proto::Hello hello;
  hello.client_name = "server_test";
  Result<proto::Response> response = Call(hello);
  if (!response.ok()) return response.status();
  if (response->error) return Status::Internal("handshake refused: " + response->error->message);
  const auto* welcome = std::get_if<proto::Welcome>(&response->body);
  if (welcome == nullptr) return Status::Internal("handshake answered without a Welcome");
  if (welcome->protocol_version != proto::kProtocolVersion) {
    return Status::Internal("Welcome with protocol version " +
                            std::to_string(welcome->protocol_version));
  }
  return Status::Ok();
}

Status TestClient::SendRaw(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("send: ") + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status TestClient::Send(const proto::Request& request) {
  const std::string payload = proto::EncodeRequest(request);
  std::string frame;
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
  return SendRaw(frame);
}

Status TestClient::ReadExactly(char* data, size_t size) {
  size_t got = 0;
  while (got < size) {
    const ssize_t n = recv(fd_, data + got, size - got, 0);
    if (n == 0) return Status::IOError("the server closed the connection");
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(std::string("recv: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<proto::Response> TestClient::Receive() {
  unsigned char prefix[4];
  STRATA_RETURN_IF_ERROR(ReadExactly(reinterpret_cast<char*>(prefix), sizeof prefix));
  const uint32_t size =
      prefix[0] | prefix[1] << 8 | prefix[2] << 16 | static_cast<uint32_t>(prefix[3]) << 24;
  if (size == 0 || size > (64u << 20)) {
    return Status::Corruption("response frame of " + std::to_string(size) + " bytes");
  }
  std::string payload(size, '\0');
  STRATA_RETURN_IF_ERROR(ReadExactly(payload.data(), size));
  return proto::DecodeResponse(reinterpret_cast<const uint8_t*>(payload.data()), size);
}

Result<proto::Response> TestClient::Call(proto::RequestBody body) {
  proto::Request request;
  request.id = NextId();
  request.body = std::move(body);
  STRATA_RETURN_IF_ERROR(Send(request));
  while (true) {
    STRATA_ASSIGN_OR_RETURN(proto::Response response, Receive());
    if (response.id == request.id) return response;
    if (response.id == 0 && response.error) {
      return Status::IOError("connection-level error " +
                             std::string(proto::ErrorCodeName(response.error->code)) + ": " +
                             response.error->message);
    }
  }
}

bool TestClient::WaitForClose() {
  char buf[4096];
  while (true) {
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == ECONNRESET || errno == EPIPE;
    }
  }
}

void TestClient::ShutdownWrite() { shutdown(fd_, SHUT_WR); }

TestClient ConnectedTestClient(uint16_t port) {
  TestClient client;
  Status connected = client.Connect(port);
  EXPECT_TRUE(connected.ok()) << connected.ToString();
  Status hello = client.Handshake();
  EXPECT_TRUE(hello.ok()) << hello.ToString();
  return client;
}

Result<std::map<int, std::map<int64_t, Value>>> ReadAllSentences(TestClient& client,
                                                                 int partitions) {
  std::map<int, std::map<int64_t, Value>> out;
  for (int p = 0; p < partitions; ++p) {
    for (int64_t from = 0;;) {
      protocol::ReadDepotRequest request;
      request.module = "wordcount";
      request.depot = "*sentences";
      request.partition = p;
      request.from = from;
      request.limit = 1000;
      Result<protocol::Response> r = client.Call(request);
      if (!r.ok()) return r.status();
      if (r->error) {
        return Status(StatusCode::kIOError, std::string(protocol::ErrorCodeName(r->error->code)) +
                                                ": " + r->error->message);
      }
      const auto& records = std::get<protocol::DepotRecords>(r->body).records;
      for (const auto& record : records) out[p][record.offset] = record.value;
      if (records.empty()) break;
      from = records.back().offset + 1;
    }
  }
  return out;
}

}  // namespace strata::server_test
