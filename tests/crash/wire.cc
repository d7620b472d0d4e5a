#include "wire.h"

#include <utility>

#include "example_harness.h"
#include "strata/client.h"

namespace strata::crash_test {
namespace {

namespace proto = protocol;

Status ToStatus(const ClientError& error) {
  StatusCode code = StatusCode::kInternal;
  if (error.kind == ErrorKind::kServer) code = proto::StatusCodeFor(error.code);
  if (error.kind == ErrorKind::kConnection) code = StatusCode::kIOError;
  return Status(code, error.ToString());
}

template <typename T>
Result<T> Unwrap(ClientResult<T> result) {
  if (!result.ok()) return ToStatus(result.error());
  return std::move(result).value();
}

}  // namespace

Wire::Wire() = default;
Wire::~Wire() = default;

Status Wire::Open(uint16_t port, std::chrono::milliseconds request_timeout) {
  ClientOptions options;
  if (request_timeout.count() > 0) options.request_timeout = request_timeout;
  options.port = port;
  options.client_name = "crash_test";
  options.reconnect_attempts = 1;
  auto client = Client::Connect(options);
  if (!client.ok()) return ToStatus(client.error());
  client_ = std::move(*client);
  return Status::Ok();
}

Result<std::vector<proto::AppendResult>> Wire::Append(const std::string& module,
                                                      const std::string& depot,
                                                      std::vector<Value> records,
                                                      proto::AckLevel level) {
  return Unwrap(client_->AppendBatch(module, depot, std::move(records), level));
}

Result<proto::ModuleInfo> Wire::Deploy(const std::string& path, int partitions) {
  return Unwrap(client_->Deploy(path, partitions));
}

Result<std::vector<proto::ModuleInfo>> Wire::Modules() { return Unwrap(client_->Modules()); }

Result<std::vector<Value>> Wire::Select(const std::string& module, const std::string& pstate,
                                        const Path& path, std::optional<Value> partition_key) {
  return Unwrap(client_->Select(module, pstate, path, std::move(partition_key)));
}

Result<std::vector<std::vector<proto::DepotRecord>>> Wire::ReadWholeDepot(const std::string& module,
                                                                          const std::string& depot,
                                                                          int partitions) {
  return examples_test::ReadDepotByPages<proto::DepotRecord>(
      module, depot, partitions, [&](int p, int64_t from) {
        return Unwrap(
            client_->ReadDepot(module, depot, p, from, INT64_MAX, examples_test::kDepotReadPage));
      });
}

Result<proto::StatsResult> Wire::Stats() { return Unwrap(client_->Stats()); }

Result<proto::ModuleInfo> Wire::Describe(const std::string& module) {
  return Unwrap(client_->Describe(module));
}

Result<proto::Updated> Wire::Update(const std::string& path, const std::vector<std::string>& drop,
                                    int partitions) {
  ClientUpdateOptions options;
  options.drop = drop;
  options.partitions = partitions;
  return Unwrap(client_->Update(path, options));
}

Result<proto::RecomputeStarted> Wire::Recompute(const std::string& module,
                                                std::vector<std::string> pstates) {
  return Unwrap(client_->Recompute(module, std::move(pstates)));
}

Result<Value> Wire::Invoke(const std::string& module, const std::string& query,
                           std::vector<Value> args) {
  return Unwrap(client_->Invoke(module, query, std::move(args)));
}

}  // namespace strata::crash_test
