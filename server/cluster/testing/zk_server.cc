#include "zk_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace strata::cluster::testing {
namespace {

struct Connected {
  std::mutex mu;
  std::condition_variable cv;
  int state = 0;
};

void OnSessionEvent(zhandle_t*, int type, int state, const char*, void* context) {
  if (type != ZOO_SESSION_EVENT) return;
  auto* connected = static_cast<Connected*>(context);
  std::lock_guard<std::mutex> lock(connected->mu);
  connected->state = state;
  connected->cv.notify_all();
}

void DropLogLine(const char*) {}

// Opens a handle to `hosts` (resuming `session` when given) and waits until it is
// connected, or learns that the session expired. Returns the handle (the caller closes
// it), or nullptr after `timeout`; connected.state tells which.
zhandle_t* ConnectHandle(const std::string& hosts, const clientid_t* session, Connected& connected,
                         std::chrono::milliseconds timeout) {
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  zhandle_t* handle =
      zookeeper_init2(hosts.c_str(), &OnSessionEvent, 10000, session, &connected, 0, &DropLogLine);
  if (handle == nullptr) return nullptr;
  std::unique_lock<std::mutex> lock(connected.mu);
  if (connected.cv.wait_for(lock, timeout, [&] {
        return connected.state == ZOO_CONNECTED_STATE ||
               connected.state == ZOO_EXPIRED_SESSION_STATE;
      })) {
    return handle;
  }
  lock.unlock();
  zookeeper_close(handle);
  return nullptr;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

uint16_t UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::unique_ptr<ZooKeeperServer>> ZooKeeperServer::Start() {
  std::unique_ptr<ZooKeeperServer> server(new ZooKeeperServer());
  char dir[] = "/tmp/strata-zk-XXXXXX";
  if (mkdtemp(dir) == nullptr) return Status::IOError("mkdtemp: " + std::string(strerror(errno)));
  server->dir_ = dir;
  // The port is free when chosen but may be taken before the server binds it: a server
  // that exits early is started again on another one.
  Status launched;
  for (int attempt = 0; attempt < 3; ++attempt) {
    launched = server->Launch(UnusedPort());
    if (launched.ok()) return server;
  }
  return launched;
}

Status ZooKeeperServer::Launch(uint16_t port) {
  port_ = port;
  const std::string log = dir_ + "/zookeeper.log";
  pid_ = fork();
  if (pid_ == 0) {
    // The server dies with the test, even when the test is killed (a ctest timeout).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
    }
    const std::string port_text = std::to_string(port);
    execl(STRATA_ZK_LOCAL_SCRIPT, STRATA_ZK_LOCAL_SCRIPT, "run", dir_.c_str(), port_text.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid_ < 0) return Status::IOError("fork: " + std::string(strerror(errno)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::IOError("ZooKeeper on port " + std::to_string(port) +
                             " exited at start; its log:\n" + ReadText(log));
    }
    Connected connected;
    if (zhandle_t* handle =
            ConnectHandle(address(), nullptr, connected, std::chrono::milliseconds(500))) {
      zookeeper_close(handle);
      return Status::Ok();
    }
  }
  // Still running but not answering: end it before Start launches another, which would
  // overwrite pid_ and leave this JVM running until the test process exits.
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return Status::Timeout("ZooKeeper on port " + std::to_string(port) +
                         " accepted no client within 30 s; its log:\n" + ReadText(log));
}

ZooKeeperServer::~ZooKeeperServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

ClusterUrl ZooKeeperServer::Url(const std::string& root) const {
  ClusterUrl url;
  url.servers = {address()};
  url.root = root;
  return url;
}

Status ExpireSession(const ClusterUrl& url, const ZkSession& session) {
  clientid_t id{};
  id.client_id = session.id;
  std::memcpy(id.passwd, session.password.data(),
              std::min(session.password.size(), sizeof id.passwd));
  // Resuming a session moves it to the new connection, and the owner's reconnection may
  // take it back before the close: close until resuming finds the session expired.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    Connected connected;
    zhandle_t* handle =
        ConnectHandle(url.ServersText(), &id, connected, std::chrono::milliseconds(5000));
    if (handle == nullptr) continue;
    const bool expired = connected.state == ZOO_EXPIRED_SESSION_STATE;
    zookeeper_close(handle);
    if (expired) return Status::Ok();
  }
  return Status::Timeout("could not end session " + std::to_string(session.id) + " at " +
                         url.ServersText() + " within 20 s");
}

bool ZooKeeperServer::Pause() { return pid_ > 0 && kill(pid_, SIGSTOP) == 0; }

bool ZooKeeperServer::Resume() { return pid_ > 0 && kill(pid_, SIGCONT) == 0; }

}  // namespace strata::cluster::testing
