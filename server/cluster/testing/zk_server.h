// A real standalone ZooKeeper server for tests: started by scripts/zk-local.sh run on a
// free 127.0.0.1 port with a fresh temporary directory, ready once a client connected,
// killed (and its directory removed) by the destructor. Library strata_testing_zookeeper.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cluster_url.h"
#include "strata/status.h"
#include "zk_client.h"

namespace strata::cluster::testing {

class ZooKeeperServer {
 public:
  // kTimeout (with the server's log) when it did not accept a client within 30 s.
  static Result<std::unique_ptr<ZooKeeperServer>> Start();
  ~ZooKeeperServer();
  ZooKeeperServer(const ZooKeeperServer&) = delete;
  ZooKeeperServer& operator=(const ZooKeeperServer&) = delete;

  // "127.0.0.1:PORT".
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  uint16_t port() const { return port_; }
  // zk://127.0.0.1:PORT<root>, e.g. Url("/strata").
  ClusterUrl Url(const std::string& root) const;
  // The url as text, for --cluster.
  std::string UrlText(const std::string& root) const { return Url(root).ToString(); }
  // SIGSTOP / SIGCONT of the server: its clients lose their connections (and, paused past
  // their session timeout, their sessions when it resumes); false when the signal failed.
  bool Pause();
  bool Resume();

 private:
  ZooKeeperServer() = default;
  Status Launch(uint16_t port);

  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Ends `session` as its expiry would: opens the session again in a handle of its own (its
// id and password) and closes it. The session's ephemeral znodes go; its owner learns that
// its session expired when it next hears from the ensemble (on_session_expired).
Status ExpireSession(const ClusterUrl& url, const ZkSession& session);

// A loopback port that nothing listens on, for "ZooKeeper unreachable".
uint16_t UnusedPort();

// Polls `condition` every 20 ms until it holds (true) or `timeout` passed (false).
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace strata::cluster::testing
