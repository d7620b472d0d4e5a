#include "client_router.h"

#include <algorithm>
#include <charconv>
#include <future>
#include <type_traits>
#include <utility>
#include <variant>

#include <asio/post.hpp>

namespace strata {
namespace {

namespace proto = protocol;
using Clock = std::chrono::steady_clock;

// Without a request_timeout, a request stops retrying after this long.
constexpr std::chrono::seconds kRetryBudgetWithoutTimeout{30};

// The module a request is about ("" when none: it goes to the home node).
std::string ModuleOf(const proto::RequestBody& body) {
  return std::visit(
      [](const auto& r) -> std::string {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, proto::AppendRequest> ||
                      std::is_same_v<T, proto::SelectRequest> ||
                      std::is_same_v<T, proto::SelectPageRequest> ||
                      std::is_same_v<T, proto::ReadDepotRequest> ||
                      std::is_same_v<T, proto::InvokeRequest> ||
                      std::is_same_v<T, proto::SubscribeRequest> ||
                      std::is_same_v<T, proto::DescribeRequest> ||
                      std::is_same_v<T, proto::DestroyRequest> ||
                      std::is_same_v<T, proto::RecomputeRequest> ||
                      std::is_same_v<T, proto::StatsRequest>) {
          return r.module;
        } else {
          return "";
        }
      },
      body);
}

// Whether sending `body` twice changes nothing: it may be sent again after the connection it
// was written on broke.
bool Resendable(const proto::RequestBody& body) {
  return std::holds_alternative<proto::SelectRequest>(body) ||
         std::holds_alternative<proto::SelectPageRequest>(body) ||
         std::holds_alternative<proto::ReadDepotRequest>(body) ||
         std::holds_alternative<proto::InvokeRequest>(body) ||
         std::holds_alternative<proto::DescribeRequest>(body) ||
         std::holds_alternative<proto::ListModulesRequest>(body) ||
         std::holds_alternative<proto::StatsRequest>(body) ||
         std::holds_alternative<proto::PlacementRequest>(body) ||
         std::holds_alternative<proto::SubscribeRequest>(body);
}

ClientError ConnectionError(std::string message) {
  return ClientError(ErrorKind::kConnection, proto::ErrorCode::kNone, std::move(message));
}

}  // namespace

bool SplitAddress(const std::string& address, std::string* host, uint16_t* port) {
  size_t colon = std::string::npos;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return false;
    }
    *host = address.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = address.find(':');
    // An IPv6 literal must be bracketed: "::1:7450" has no one meaning.
    if (colon == std::string::npos || colon == 0 || address.find(':', colon + 1) != address.npos) {
      return false;
    }
    *host = address.substr(0, colon);
  }
  const char* begin = address.data() + colon + 1;
  const char* end = address.data() + address.size();
  unsigned value = 0;
  auto [at, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || at != end || begin == end || value == 0 || value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return !host->empty();
}

struct ClientRouter::Routed {
  proto::RequestBody request;
  std::optional<Client::SubscriptionHandler> on_update;
  Callback done;
  std::string module;
  bool resendable = false;
  Clock::time_point deadline;
  int redirects = 0;
  int attempts = 0;  // sends so far
  std::chrono::milliseconds backoff = kFirstBackoff;
  std::unique_ptr<asio::steady_timer> timer;
  uint64_t wait_id = 0;
};

ClientRouter::ClientRouter(ClientOptions options, asio::io_context& io,
                           std::thread::id io_thread_id)
    : options_(std::move(options)), io_(io), io_thread_id_(io_thread_id) {
  std::string first = options_.host;
  if (first.find(':') != std::string::npos) first = "[" + first + "]";  // IPv6 literal
  seeds_.push_back(first + ":" + std::to_string(options_.port));
  for (const std::string& seed : options_.seeds) {
    if (std::find(seeds_.begin(), seeds_.end(), seed) == seeds_.end()) seeds_.push_back(seed);
  }
}

std::shared_ptr<Client::Impl> ClientRouter::ConnectionTo(const std::string& address) {
  MutexLock lock(&mutex_);
  if (closed_) return nullptr;
  auto it = connections_.find(address);
  if (it != connections_.end()) return it->second;
  ClientOptions options = options_;
  options.seeds.clear();
  options.io_thread = nullptr;
  if (!SplitAddress(address, &options.host, &options.port)) return nullptr;
  auto impl = std::make_shared<Client::Impl>(std::move(options), io_, io_thread_id_);
  connections_.emplace(address, impl);
  return impl;
}

std::optional<ClientError> ClientRouter::ConnectFirst() {
  std::optional<ClientError> last;
  std::string tried;
  for (const std::string& seed : seeds_) {
    std::shared_ptr<Client::Impl> impl = ConnectionTo(seed);
    if (impl == nullptr) {
      last = ClientError(ErrorKind::kArgument, proto::ErrorCode::kNone,
                         "Connect: seed address '" + seed + "' is not HOST:PORT");
    } else {
      last = impl->ConnectOnce();
      if (!last) {
        MutexLock lock(&mutex_);
        home_ = seed;
        return std::nullopt;
      }
    }
    if (!tried.empty()) tried += "; ";
    tried += last->message;
  }
  if (seeds_.size() > 1) last->message = "no seed answered: " + tried;
  return last;
}

proto::Welcome ClientRouter::welcome() const {
  std::shared_ptr<Client::Impl> home;
  {
    MutexLock lock(&mutex_);
    auto it = connections_.find(home_);
    if (it != connections_.end()) home = it->second;
  }
  return home ? home->welcome() : proto::Welcome{};
}

std::string ClientRouter::LeaderOf(const std::string& module) const {
  MutexLock lock(&mutex_);
  auto it = leaders_.find(module);
  return it == leaders_.end() ? "" : it->second;
}

void ClientRouter::Submit(proto::RequestBody request, Callback done) {
  auto routed = std::make_shared<Routed>();
  routed->module = ModuleOf(request);
  routed->resendable = Resendable(request);
  routed->request = std::move(request);
  routed->done = std::move(done);
  const auto budget = options_.request_timeout.count() > 0
                          ? std::chrono::duration_cast<Clock::duration>(options_.request_timeout)
                          : std::chrono::duration_cast<Clock::duration>(kRetryBudgetWithoutTimeout);
  routed->deadline = Clock::now() + budget;
  const std::string address = AddressFor(*routed);
  Send(std::move(routed), address);
}

void ClientRouter::SubmitSubscribe(proto::SubscribeRequest request,
                                   Client::SubscriptionHandler on_update, Callback done) {
  auto routed = std::make_shared<Routed>();
  routed->module = request.module;
  routed->resendable = true;
  routed->request = std::move(request);
  routed->on_update = std::move(on_update);
  routed->done = std::move(done);
  const auto budget = options_.request_timeout.count() > 0
                          ? std::chrono::duration_cast<Clock::duration>(options_.request_timeout)
                          : std::chrono::duration_cast<Clock::duration>(kRetryBudgetWithoutTimeout);
  routed->deadline = Clock::now() + budget;
  const std::string address = AddressFor(*routed);
  Send(std::move(routed), address);
}

std::string ClientRouter::AddressFor(const Routed& routed) {
  MutexLock lock(&mutex_);
  if (const auto* un = std::get_if<proto::UnsubscribeRequest>(&routed.request)) {
    auto it = subscriptions_.find(un->subscription);
    if (it != subscriptions_.end()) return it->second;
  }
  if (!routed.module.empty()) {
    auto it = leaders_.find(routed.module);
    if (it != leaders_.end()) return it->second;
  }
  if (routed.attempts == 0 && !home_.empty()) return home_;
  // A retry without a known leader: the next seed or other known node, in turn.
  std::vector<std::string> candidates = seeds_;
  for (const auto& [address, connection] : connections_) {
    if (std::find(candidates.begin(), candidates.end(), address) == candidates.end()) {
      candidates.push_back(address);
    }
  }
  return candidates[next_seed_++ % candidates.size()];
}

void ClientRouter::Send(std::shared_ptr<Routed> routed, const std::string& address) {
  std::shared_ptr<Client::Impl> connection = ConnectionTo(address);
  if (connection == nullptr) {
    bool closed = false;
    {
      MutexLock lock(&mutex_);
      closed = closed_;
    }
    Callback done = std::move(routed->done);
    done(closed ? ConnectionError("the client is closing")
                : ClientError(
                      ErrorKind::kProtocol, proto::ErrorCode::kNone,
                      "the server named the leader '" + address + "', which is not HOST:PORT"));
    return;
  }
  ++routed->attempts;
  Callback answered = [self = shared_from_this(), routed,
                       address](ClientResult<proto::ResponseBody> result) {
    self->OnAnswer(routed, address, std::move(result));
  };
  if (routed->on_update) {
    connection->SubmitSubscribe(std::get<proto::SubscribeRequest>(routed->request),
                                *routed->on_update, std::move(answered));
  } else {
    connection->Submit(routed->request, std::move(answered));
  }
}

void ClientRouter::Remember(const std::string& module, const std::string& address) {
  if (module.empty()) return;
  MutexLock lock(&mutex_);
  leaders_[module] = address;
}

void ClientRouter::Forget(const std::string& module, const std::string& address) {
  MutexLock lock(&mutex_);
  auto it = leaders_.find(module);
  if (it != leaders_.end() && it->second == address) leaders_.erase(it);
}

bool ClientRouter::KnowsSeveralNodes() const {
  MutexLock lock(&mutex_);
  return seeds_.size() > 1 || redirected_;
}

void ClientRouter::OnAnswer(std::shared_ptr<Routed> routed, const std::string& address,
                            ClientResult<proto::ResponseBody> result) {
  if (result.ok()) {
    if (const auto* subscribed = std::get_if<proto::Subscribed>(&result.value())) {
      MutexLock lock(&mutex_);
      subscriptions_[subscribed->subscription] = address;
    } else if (const auto* gone = std::get_if<proto::Unsubscribed>(&result.value())) {
      MutexLock lock(&mutex_);
      subscriptions_.erase(gone->subscription);
    } else if (const auto* info = std::get_if<proto::ModuleInfo>(&result.value());
               info != nullptr && std::holds_alternative<proto::DeployRequest>(routed->request)) {
      Remember(info->name, address);  // the node that received the deploy leads the module
    } else if (std::holds_alternative<proto::Destroyed>(result.value())) {
      Forget(routed->module, address);
    }
    {
      MutexLock lock(&mutex_);
      if (home_.empty()) home_ = address;  // the old one failed: this one answers
    }
    Callback done = std::move(routed->done);
    return done(std::move(result));
  }
  ClientError error = result.error();
  bool closed = false;
  {
    MutexLock lock(&mutex_);
    closed = closed_;
  }
  if (!closed && error.kind == ErrorKind::kServer && error.code == proto::ErrorCode::kNotLeader) {
    if (!error.leader.empty() && routed->redirects < kMaxRedirects) {
      ++routed->redirects;
      {
        MutexLock lock(&mutex_);
        redirected_ = true;
      }
      Remember(routed->module, error.leader);
      return Send(std::move(routed), error.leader);
    }
    if (error.leader.empty()) {
      Forget(routed->module, address);
      return RetryLater(std::move(routed), std::move(error));
    }
  } else if (!closed && error.kind == ErrorKind::kConnection && KnowsSeveralNodes() &&
             (!error.maybe_applied || routed->resendable)) {
    Forget(routed->module, address);
    {
      // The home node is gone: requests about no module start at the next seed.
      MutexLock lock(&mutex_);
      if (home_ == address) home_.clear();
    }
    return RetryLater(std::move(routed), std::move(error));
  } else if (!closed && error.kind == ErrorKind::kTimeout && KnowsSeveralNodes()) {
    // A node that does not answer in time may be stopped or cut off: the next request asks
    // the other nodes, which name the current leader once the cluster moved on (this one's
    // outcome is unknown: it fails, not re-sent).
    Forget(routed->module, address);
    MutexLock lock(&mutex_);
    if (home_ == address) home_.clear();
  }
  Callback done = std::move(routed->done);
  done(std::move(error));
}

void ClientRouter::RetryLater(std::shared_ptr<Routed> routed, ClientError error) {
  if (Clock::now() + routed->backoff >= routed->deadline) {
    error.message +=
        " (retried " + std::to_string(routed->attempts) + " times within the request's timeout)";
    Callback done = std::move(routed->done);
    return done(std::move(error));
  }
  routed->timer = std::make_unique<asio::steady_timer>(io_);
  routed->timer->expires_after(routed->backoff);
  routed->backoff = std::min(routed->backoff * 2, kMaxBackoff);
  routed->wait_id = ++next_wait_;
  waiting_.emplace(routed->wait_id, routed);
  routed->timer->async_wait([self = shared_from_this(), routed](const std::error_code&) {
    if (self->waiting_.erase(routed->wait_id) == 0) return;  // failed by Close
    const std::string address = self->AddressFor(*routed);
    self->Send(routed, address);
  });
}

void ClientRouter::Close() {
  std::vector<std::shared_ptr<Client::Impl>> connections;
  {
    MutexLock lock(&mutex_);
    if (closed_) return;
    closed_ = true;
    for (auto& [address, connection] : connections_) connections.push_back(connection);
  }
  auto fail_waiting = [this] {
    std::map<uint64_t, std::shared_ptr<Routed>> waiting;
    waiting.swap(waiting_);
    for (auto& [id, routed] : waiting) {
      routed->timer->cancel();
      Callback done = std::move(routed->done);
      done(ConnectionError("the client was closed before the response"));
    }
  };
  if (OnIoThread()) {
    fail_waiting();
  } else {
    std::promise<void> failed;
    asio::post(io_, [self = shared_from_this(), &fail_waiting, &failed] {
      fail_waiting();
      failed.set_value();
    });
    failed.get_future().wait();
  }
  for (const auto& connection : connections) connection->Close();
}

}  // namespace strata
