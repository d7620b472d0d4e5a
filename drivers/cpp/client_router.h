// ClientRouter: the connections of one strata::Client, one Client::Impl per node address, and
// which node to send each request to (private; docs/drivers/cpp.md, "Clusters").
//
// A request about one module goes to the address remembered for the module, else to the
// node the Client connected to first. A NOT_LEADER answer with a leader address is followed
// (at most kMaxRedirects per request) and remembered for the module. A NOT_LEADER without
// one, and — once the router knows more than one address (several seeds, or a redirect) — a
// connection that could not be made or broke, forget the module's address and retry after a
// backoff (50 ms, then 100 ms) through the next known address, until the request's
// deadline (request_timeout after it was submitted). A request that was written on a
// connection that broke is retried only when it cannot change anything (reads, queries,
// describe, stats, placement, subscribe); the others fail with the connection error.
//
// Threading: Submit and Close may be called from any thread; the routing of answers, the
// retry timers and `waiting_` belong to the I/O thread. The address tables are guarded by
// mutex_ (callers read them to pick a first address).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "client_impl.h"
#include "strata/client.h"
#include "strata/protocol/messages.h"
#include "strata/thread_annotations.h"

namespace strata {

class ClientRouter : public std::enable_shared_from_this<ClientRouter> {
 public:
  using Callback = Client::Impl::Callback;
  static constexpr int kMaxRedirects = 3;
  static constexpr std::chrono::milliseconds kFirstBackoff{50};
  static constexpr std::chrono::milliseconds kMaxBackoff{100};

  // `options.host:port` then `options.seeds` are the seed addresses. Nothing is connected.
  ClientRouter(ClientOptions options, asio::io_context& io, std::thread::id io_thread_id);
  ClientRouter(const ClientRouter&) = delete;
  ClientRouter& operator=(const ClientRouter&) = delete;

  // Connects to the first seed that answers the handshake (one attempt each, in order);
  // it becomes the home node (requests about no module, Welcome). Blocks the caller (never
  // the I/O thread). The error of the last seed when none answered.
  std::optional<ClientError> ConnectFirst();

  // As Client::Impl::Submit, routed as above. `done` runs exactly once.
  void Submit(protocol::RequestBody request, Callback done);
  // A subscription, routed by its module; `on_update` is registered on the connection that
  // answered Subscribed (Unsubscribe is then sent there).
  void SubmitSubscribe(protocol::SubscribeRequest request, Client::SubscriptionHandler on_update,
                       Callback done);

  // Fails the requests waiting for a retry and closes every connection; no callback runs
  // after it returns. Must not run on the I/O thread unless every connection is idle.
  void Close();

  protocol::Welcome welcome() const;
  bool OnIoThread() const { return std::this_thread::get_id() == io_thread_id_; }

  // For tests: the address remembered for `module` ("" when none).
  std::string LeaderOf(const std::string& module) const;

 private:
  struct Routed;

  std::shared_ptr<Client::Impl> ConnectionTo(const std::string& address);
  void Send(std::shared_ptr<Routed> routed, const std::string& address);
  void OnAnswer(std::shared_ptr<Routed> routed, const std::string& address,
                ClientResult<protocol::ResponseBody> result);
  void RetryLater(std::shared_ptr<Routed> routed, ClientError error);
  std::string AddressFor(const Routed& routed);
  void Remember(const std::string& module, const std::string& address);
  void Forget(const std::string& module, const std::string& address);
  bool KnowsSeveralNodes() const;

  const ClientOptions options_;
  asio::io_context& io_;
  const std::thread::id io_thread_id_;
  std::vector<std::string> seeds_;  // "HOST:PORT", host:port first

  mutable Mutex mutex_;
  std::map<std::string, std::shared_ptr<Client::Impl>> connections_ GUARDED_BY(mutex_);
  std::map<std::string, std::string> leaders_ GUARDED_BY(mutex_);     // module -> address
  std::map<uint64_t, std::string> subscriptions_ GUARDED_BY(mutex_);  // id -> address
  std::string home_ GUARDED_BY(mutex_);         // the address ConnectFirst reached
  size_t next_seed_ GUARDED_BY(mutex_) = 0;     // where the next retry without a leader goes
  bool redirected_ GUARDED_BY(mutex_) = false;  // a NOT_LEADER named a leader once
  bool closed_ GUARDED_BY(mutex_) = false;

  // I/O thread only: requests waiting for their retry, by a serial number.
  std::map<uint64_t, std::shared_ptr<Routed>> waiting_;
  uint64_t next_wait_ = 0;
};

// Splits "host:port" ("[v6]:port"); false when it has no valid port.
bool SplitAddress(const std::string& address, std::string* host, uint16_t* port);

}  // namespace strata
