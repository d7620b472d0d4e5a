// The public strata::Client: typed calls built on Impl::Submit (client_impl.h).
#include "strata/client.h"

#include <memory>
#include <string_view>
#include <thread>

#include "client_impl.h"
#include "client_router.h"

namespace strata {
namespace {

namespace proto = protocol;
using Body = Client::Body;

ClientError ProtocolError(std::string message) {
  return ClientError{ErrorKind::kProtocol, proto::ErrorCode::kNone, std::move(message)};
}

ClientError ArgumentError(std::string message) {
  return ClientError{ErrorKind::kArgument, proto::ErrorCode::kNone, std::move(message)};
}

// The name of a response body alternative, for messages.
const char* BodyName(const Body& body) {
  static constexpr const char* kNames[] = {
      "no body",        "Welcome",        "ModuleInfo",       "ModuleList",
      "Destroyed",      "Appended",       "Selected",         "DepotRecords",
      "StatsResult",    "Updated",        "RecomputeStarted", "Invoked",
      "SelectedPage",   "Subscribed",     "Unsubscribed",     "SubscriptionUpdate",
      "Placement",      "ReplicaEntries", "ReplicaEpochEnd",  "ModuleFile",
      "ReplicaSnapshot"};
  static_assert(std::size(kNames) == std::variant_size_v<Body>);
  return kNames[body.index()];
}

// The body of type B, or the error; a body of another type is a kProtocol error.
template <typename B>
ClientResult<B> Take(ClientResult<Body> result, const char* expected) {
  if (!result.ok()) return result.error();
  if (B* body = std::get_if<B>(&result.value())) return std::move(*body);
  return ProtocolError(std::string("expected a ") + expected + " response, the server sent " +
                       BodyName(result.value()));
}

ClientResult<std::vector<proto::AppendResult>> TakeAppended(ClientResult<Body> result,
                                                            size_t records) {
  ClientResult<proto::Appended> appended = Take<proto::Appended>(std::move(result), "Appended");
  if (!appended.ok()) return appended.error();
  if (appended->results.size() != records) {
    return ProtocolError("the server answered an append of " + std::to_string(records) +
                         " records with " + std::to_string(appended->results.size()) + " results");
  }
  return std::move(appended->results);
}

ClientResult<std::vector<Value>> TakeSelected(ClientResult<Body> result) {
  if (!result.ok()) return result.error();
  if (auto* selected = std::get_if<proto::Selected>(&result.value()))
    return std::move(selected->values);
  return ProtocolError(std::string("expected a Selected response, the server sent ") +
                       BodyName(result.value()));
}

proto::AppendRequest AppendBody(const std::string& module, const std::string& depot,
                                std::vector<Value> records, Client::AckLevel ack) {
  return proto::AppendRequest{module, depot, std::move(records), ack};
}

// A select request, or the reason the path is invalid (its builder misuse is not part of
// the wire form, so it is checked here).
ClientResult<proto::SelectRequest> SelectBody(const std::string& module, const std::string& pstate,
                                              const Path& path, std::optional<Value> partition_key,
                                              bool one) {
  Status valid = path.Validate();
  if (!valid.ok()) return ArgumentError("Select: invalid path: " + valid.message());
  return proto::SelectRequest{module, pstate, path.ToValue(), std::move(partition_key), one};
}

ClientResult<Value> TakeInvoked(ClientResult<Body> result) {
  ClientResult<proto::Invoked> invoked = Take<proto::Invoked>(std::move(result), "Invoked");
  if (!invoked.ok()) return invoked.error();
  return std::move(invoked->result);
}

proto::InvokeRequest InvokeBody(const std::string& module, const std::string& query,
                                std::vector<Value> args, int64_t timeout_ms) {
  return proto::InvokeRequest{module, query, std::move(args), timeout_ms};
}

proto::UpdateRequest UpdateBody(std::string path, std::string so_bytes,
                                const ClientUpdateOptions& options) {
  return proto::UpdateRequest{std::move(path), std::move(so_bytes), options.drop,
                              options.partitions, options.new_topologies_from_end};
}

// Sends `body` and waits for its response. On the I/O thread (inside a callback) that wait
// could never end, so it is refused there.
ClientResult<Body> CallSync(ClientRouter& impl, proto::RequestBody body) {
  if (impl.OnIoThread()) {
    return ArgumentError(
        "a blocking call inside a driver callback would wait for itself; use "
        "the async form");
  }
  auto promise = std::make_shared<std::promise<ClientResult<Body>>>();
  std::future<ClientResult<Body>> future = promise->get_future();
  impl.Submit(std::move(body),
              [promise](ClientResult<Body> result) { promise->set_value(std::move(result)); });
  return future.get();
}

template <typename T>
std::future<ClientResult<T>> Ready(ClientError error) {
  std::promise<ClientResult<T>> promise;
  promise.set_value(std::move(error));
  return promise.get_future();
}

// Sends `body` without waiting; the future holds the body of type B (named `expected` in
// the error when the server sends another).
template <typename B>
std::future<ClientResult<B>> SendTyped(ClientRouter& impl, proto::RequestBody body,
                                       const char* expected) {
  auto promise = std::make_shared<std::promise<ClientResult<B>>>();
  std::future<ClientResult<B>> future = promise->get_future();
  impl.Submit(std::move(body), [promise, expected](ClientResult<Body> result) {
    promise->set_value(Take<B>(std::move(result), expected));
  });
  return future;
}

}  // namespace

std::string ClientError::ToString() const {
  std::string_view prefix;
  switch (kind) {
    case ErrorKind::kServer:
      return std::string(proto::ErrorCodeName(code)) + ": " + message;
    case ErrorKind::kConnection:
      prefix = "connection: ";
      break;
    case ErrorKind::kTimeout:
      prefix = "timeout: ";
      break;
    case ErrorKind::kProtocol:
      prefix = "protocol: ";
      break;
    case ErrorKind::kArgument:
      prefix = "invalid argument: ";
      break;
  }
  return std::string(prefix) + message;
}

ClientIoThread::ClientIoThread(std::unique_ptr<State> state) : state_(std::move(state)) {}

std::shared_ptr<ClientIoThread> ClientIoThread::Start() {
  auto state = std::make_unique<State>();
  State* s = state.get();
  s->thread = std::thread([s] {
    s->io.run();
    if (s->orphaned.load(std::memory_order_acquire)) delete s;
  });
  return std::shared_ptr<ClientIoThread>(new ClientIoThread(std::move(state)));
}

// Runs when the last Client and handle are gone: their connections are closed, so the
// queued handlers finish (releasing the last Impl references) and run() returns. When
// that happens on the thread itself (the last Client destroyed inside a callback of a
// Client already closed), it cannot join itself: it lets go and the thread frees its
// state once run() returns.
ClientIoThread::~ClientIoThread() {
  state_->work.reset();
  if (std::this_thread::get_id() == state_->thread.get_id()) {
    state_->thread.detach();
    state_.release()->orphaned.store(true, std::memory_order_release);
    return;
  }
  state_->thread.join();
}

Client::Client(std::shared_ptr<ClientIoThread> io_thread, std::shared_ptr<ClientRouter> router)
    : io_thread_(std::move(io_thread)), impl_(std::move(router)) {}

Client::~Client() { impl_->Close(); }

ClientResult<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.host.empty()) return ArgumentError("Connect: the host is empty");
  std::shared_ptr<ClientIoThread> io_thread =
      options.io_thread ? options.io_thread : ClientIoThread::Start();
  ClientOptions impl_options = options;
  impl_options.io_thread = nullptr;  // the Client holds it, so that it outlives the Impl
  ClientIoThread::State& io = *io_thread->state_;
  if (std::this_thread::get_id() == io.thread.get_id()) {
    return ArgumentError(
        "Connect: called inside a callback on the I/O thread it would use; it "
        "would wait for itself");
  }
  auto impl = std::make_shared<ClientRouter>(std::move(impl_options), io.io, io.thread.get_id());
  if (std::optional<ClientError> error = impl->ConnectFirst()) {
    impl->Close();
    return std::move(*error);
  }
  return std::unique_ptr<Client>(new Client(std::move(io_thread), std::move(impl)));
}

proto::Welcome Client::server_info() const { return impl_->welcome(); }

// --- Asynchronous -----------------------------------------------------------------------

void Client::SendAsync(proto::RequestBody request, std::function<void(ClientResult<Body>)> done) {
  impl_->Submit(std::move(request), std::move(done));
}

std::future<ClientResult<Body>> Client::SendAsync(proto::RequestBody request) {
  auto promise = std::make_shared<std::promise<ClientResult<Body>>>();
  std::future<ClientResult<Body>> future = promise->get_future();
  impl_->Submit(std::move(request),
                [promise](ClientResult<Body> result) { promise->set_value(std::move(result)); });
  return future;
}

std::future<ClientResult<std::vector<proto::AppendResult>>> Client::AppendAsync(
    const std::string& module, const std::string& depot, std::vector<Value> records,
    Client::AckLevel ack) {
  using R = ClientResult<std::vector<proto::AppendResult>>;
  auto promise = std::make_shared<std::promise<R>>();
  std::future<R> future = promise->get_future();
  const size_t count = records.size();
  impl_->Submit(AppendBody(module, depot, std::move(records), ack),
                [promise, count](ClientResult<Body> result) {
                  promise->set_value(TakeAppended(std::move(result), count));
                });
  return future;
}

std::future<ClientResult<std::vector<Value>>> Client::SelectAsync(
    const std::string& module, const std::string& pstate, const Path& path,
    std::optional<Value> partition_key) {
  using R = ClientResult<std::vector<Value>>;
  ClientResult<proto::SelectRequest> request =
      SelectBody(module, pstate, path, std::move(partition_key), false);
  if (!request.ok()) return Ready<std::vector<Value>>(request.error());
  auto promise = std::make_shared<std::promise<R>>();
  std::future<R> future = promise->get_future();
  impl_->Submit(std::move(request).value(), [promise](ClientResult<Body> result) {
    promise->set_value(TakeSelected(std::move(result)));
  });
  return future;
}

std::future<ClientResult<Value>> Client::InvokeAsync(const std::string& module,
                                                     const std::string& query,
                                                     std::vector<Value> args, int64_t timeout_ms) {
  auto promise = std::make_shared<std::promise<ClientResult<Value>>>();
  std::future<ClientResult<Value>> future = promise->get_future();
  impl_->Submit(
      InvokeBody(module, query, std::move(args), timeout_ms),
      [promise](ClientResult<Body> result) { promise->set_value(TakeInvoked(std::move(result))); });
  return future;
}

void Client::InvokeAsync(const std::string& module, const std::string& query,
                         std::vector<Value> args, int64_t timeout_ms,
                         std::function<void(ClientResult<Value>)> done) {
  impl_->Submit(InvokeBody(module, query, std::move(args), timeout_ms),
                [done = std::move(done)](ClientResult<Body> result) {
                  done(TakeInvoked(std::move(result)));
                });
}

std::future<ClientResult<proto::Updated>> Client::UpdateAsync(std::string path,
                                                              const ClientUpdateOptions& options) {
  if (path.empty()) return Ready<proto::Updated>(ArgumentError("Update: the plugin path is empty"));
  return SendTyped<proto::Updated>(*impl_, UpdateBody(std::move(path), "", options), "Updated");
}

std::future<ClientResult<proto::Updated>> Client::UpdateBytesAsync(
    std::string so_bytes, const ClientUpdateOptions& options) {
  if (so_bytes.empty()) {
    return Ready<proto::Updated>(ArgumentError("UpdateBytes: the plugin's bytes are empty"));
  }
  return SendTyped<proto::Updated>(*impl_, UpdateBody("", std::move(so_bytes), options), "Updated");
}

std::future<ClientResult<proto::RecomputeStarted>> Client::RecomputeAsync(
    const std::string& module, std::vector<std::string> pstates) {
  return SendTyped<proto::RecomputeStarted>(
      *impl_, proto::RecomputeRequest{module, std::move(pstates)}, "RecomputeStarted");
}

// --- Synchronous ------------------------------------------------------------------------

ClientResult<proto::ModuleInfo> Client::Deploy(const std::string& path, int partitions,
                                               int replication, int min_isr) {
  if (path.empty()) return ArgumentError("Deploy: the plugin path is empty");
  return Take<proto::ModuleInfo>(
      CallSync(*impl_, proto::DeployRequest{path, "", partitions, replication, min_isr}),
      "ModuleInfo");
}

ClientResult<proto::ModuleInfo> Client::DeployBytes(std::string so_bytes, int partitions,
                                                    int replication, int min_isr) {
  if (so_bytes.empty()) return ArgumentError("DeployBytes: the plugin's bytes are empty");
  return Take<proto::ModuleInfo>(
      CallSync(*impl_,
               proto::DeployRequest{"", std::move(so_bytes), partitions, replication, min_isr}),
      "ModuleInfo");
}

ClientResult<proto::Placement> Client::Rebalance() {
  return Take<proto::Placement>(CallSync(*impl_, proto::RebalanceRequest{}), "Placement");
}

ClientResult<proto::Placement> Client::Placement() {
  return Take<proto::Placement>(CallSync(*impl_, proto::PlacementRequest{}), "Placement");
}

ClientResult<proto::Updated> Client::Update(const std::string& path,
                                            const ClientUpdateOptions& options) {
  if (path.empty()) return ArgumentError("Update: the plugin path is empty");
  return Take<proto::Updated>(CallSync(*impl_, UpdateBody(path, "", options)), "Updated");
}

ClientResult<proto::Updated> Client::UpdateBytes(std::string so_bytes,
                                                 const ClientUpdateOptions& options) {
  if (so_bytes.empty()) return ArgumentError("UpdateBytes: the plugin's bytes are empty");
  return Take<proto::Updated>(CallSync(*impl_, UpdateBody("", std::move(so_bytes), options)),
                              "Updated");
}

ClientResult<proto::RecomputeStarted> Client::Recompute(const std::string& module,
                                                        std::vector<std::string> pstates) {
  return Take<proto::RecomputeStarted>(
      CallSync(*impl_, proto::RecomputeRequest{module, std::move(pstates)}), "RecomputeStarted");
}

ClientResult<std::vector<proto::ModuleInfo>> Client::Modules() {
  ClientResult<proto::ModuleList> list =
      Take<proto::ModuleList>(CallSync(*impl_, proto::ListModulesRequest{}), "ModuleList");
  if (!list.ok()) return list.error();
  return std::move(list->modules);
}

ClientResult<proto::ModuleInfo> Client::Describe(const std::string& module) {
  return Take<proto::ModuleInfo>(CallSync(*impl_, proto::DescribeRequest{module}), "ModuleInfo");
}

ClientResult<proto::Destroyed> Client::Destroy(const std::string& module) {
  return Take<proto::Destroyed>(CallSync(*impl_, proto::DestroyRequest{module, module}),
                                "Destroyed");
}

ClientResult<proto::AppendResult> Client::Append(const std::string& module,
                                                 const std::string& depot, Value record,
                                                 Client::AckLevel ack) {
  std::vector<Value> records;
  records.push_back(std::move(record));
  ClientResult<std::vector<proto::AppendResult>> results =
      AppendBatch(module, depot, std::move(records), ack);
  if (!results.ok()) return results.error();
  proto::AppendResult& result = results->front();
  if (result.failure) {
    return ClientError{ErrorKind::kServer, result.failure->code, result.failure->message};
  }
  return std::move(result);
}

ClientResult<std::vector<proto::AppendResult>> Client::AppendBatch(const std::string& module,
                                                                   const std::string& depot,
                                                                   std::vector<Value> records,
                                                                   Client::AckLevel ack) {
  const size_t count = records.size();
  return TakeAppended(CallSync(*impl_, AppendBody(module, depot, std::move(records), ack)), count);
}

ClientResult<std::vector<Value>> Client::Select(const std::string& module,
                                                const std::string& pstate, const Path& path,
                                                std::optional<Value> partition_key) {
  ClientResult<proto::SelectRequest> request =
      SelectBody(module, pstate, path, std::move(partition_key), false);
  if (!request.ok()) return request.error();
  return TakeSelected(CallSync(*impl_, std::move(request).value()));
}

ClientResult<Value> Client::SelectOne(const std::string& module, const std::string& pstate,
                                      const Path& path, std::optional<Value> partition_key) {
  ClientResult<proto::SelectRequest> request =
      SelectBody(module, pstate, path, std::move(partition_key), true);
  if (!request.ok()) return request.error();
  ClientResult<std::vector<Value>> values =
      TakeSelected(CallSync(*impl_, std::move(request).value()));
  if (!values.ok()) return values.error();
  if (values->size() != 1) {
    return ProtocolError("select_one answered with " + std::to_string(values->size()) +
                         " values instead of one");
  }
  return std::move(values->front());
}

ClientResult<Value> Client::Invoke(const std::string& module, const std::string& query,
                                   std::vector<Value> args, int64_t timeout_ms) {
  return TakeInvoked(CallSync(*impl_, InvokeBody(module, query, std::move(args), timeout_ms)));
}

ClientResult<proto::Subscribed> Client::Subscribe(const std::string& module,
                                                  const std::string& pstate, const Path& path,
                                                  SubscriptionHandler on_update,
                                                  const ClientSubscribeOptions& options) {
  Status valid = path.Validate();
  if (!valid.ok()) return ArgumentError("Subscribe: invalid path: " + valid.message());
  if (!on_update) return ArgumentError("Subscribe: on_update is empty");
  if (impl_->OnIoThread()) {
    return ArgumentError("a blocking call inside a driver callback would wait for itself");
  }
  auto promise = std::make_shared<std::promise<ClientResult<Body>>>();
  std::future<ClientResult<Body>> future = promise->get_future();
  impl_->SubmitSubscribe(
      proto::SubscribeRequest{module, pstate, path.ToValue(), options.partition_key, options.one},
      std::move(on_update),
      [promise](ClientResult<Body> result) { promise->set_value(std::move(result)); });
  return Take<proto::Subscribed>(future.get(), "Subscribed");
}

ClientResult<proto::Unsubscribed> Client::Unsubscribe(uint64_t subscription) {
  return Take<proto::Unsubscribed>(CallSync(*impl_, proto::UnsubscribeRequest{subscription}),
                                   "Unsubscribed");
}

ClientResult<proto::SelectedPage> Client::SelectPage(const std::string& module,
                                                     const std::string& pstate, const Path& path,
                                                     std::string token, int64_t limit) {
  Status valid = path.Validate();
  if (!valid.ok()) return ArgumentError("SelectPage: invalid path: " + valid.message());
  return Take<proto::SelectedPage>(
      CallSync(*impl_,
               proto::SelectPageRequest{module, pstate, path.ToValue(), std::move(token), limit}),
      "SelectedPage");
}

ClientResult<std::vector<proto::DepotRecord>> Client::ReadDepot(const std::string& module,
                                                                const std::string& depot,
                                                                int partition, int64_t from,
                                                                int64_t to, int64_t limit) {
  ClientResult<proto::DepotRecords> records = Take<proto::DepotRecords>(
      CallSync(*impl_, proto::ReadDepotRequest{module, depot, partition, from, to, limit}),
      "DepotRecords");
  if (!records.ok()) return records.error();
  return std::move(records->records);
}

ClientResult<proto::StatsResult> Client::Stats(const std::string& module, int64_t failures_from,
                                               int64_t failures_limit) {
  return Take<proto::StatsResult>(
      CallSync(*impl_, proto::StatsRequest{module, failures_from, failures_limit}), "StatsResult");
}

}  // namespace strata
