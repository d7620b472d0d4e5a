#include "wire.h"

#include <utility>

#include "strata/client.h"

namespace strata::crash_test {
namespace {

namespace proto = protocol;

constexpr int64_t kReadPage = 1000;

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

Status Wire::Open(uint16_t port) {
  ClientOptions options;
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
                                                      std::vector<Value> records) {
  return Unwrap(client_->AppendBatch(module, depot, std::move(records), proto::AckLevel::kProcessed));
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
  std::vector<std::vector<proto::DepotRecord>> out(partitions);
  for (int p = 0; p < partitions; ++p) {
    for (int64_t from = 0;;) {
      STRATA_ASSIGN_OR_RETURN(
          std::vector<proto::DepotRecord> page,
          Unwrap(client_->ReadDepot(module, depot, p, from, INT64_MAX, kReadPage)));
      if (page.empty()) break;
      for (proto::DepotRecord& r : page) {
        if (r.offset != from) {
          return Status::Internal(module + " " + depot + " partition " + std::to_string(p) +
                                  ": expected offset " + std::to_string(from) + ", read " +
                                  std::to_string(r.offset));
        }
        ++from;
        out[p].push_back(std::move(r));
      }
    }
  }
  return out;
}

Result<proto::StatsResult> Wire::Stats() { return Unwrap(client_->Stats()); }

}  // namespace strata::crash_test
