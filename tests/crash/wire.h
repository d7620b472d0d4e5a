// The crash harness's connection to stratad: strata::Client (drivers/cpp) behind calls
// that return Status / Result, like the embedded engine's calls the oracle makes, so the
// harness's checks read the same for both.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/path.h"
#include "strata/protocol/messages.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {
class Client;
}  // namespace strata

namespace strata::crash_test {

// One connection. A server error keeps its wire code (StatusCodeFor); a connection that
// broke or could not be made is kIOError. Not thread-safe: one thread uses one Wire.
class Wire {
 public:
  Wire();
  ~Wire();
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;

  // Connects to 127.0.0.1:port. A request after the connection broke tries once to
  // reconnect, then fails with kIOError (a killed server stays dead until the next round).
  // `request_timeout` bounds each request (the driver's default unless given; the lifecycle
  // rounds wait out whole rescales).
  Status Open(uint16_t port, std::chrono::milliseconds request_timeout = {});

  // Appends with the given ack level; per-record failures are in the results.
  Result<std::vector<protocol::AppendResult>> Append(
      const std::string& module, const std::string& depot, std::vector<Value> records,
      protocol::AckLevel level = protocol::AckLevel::kProcessed);
  Result<protocol::ModuleInfo> Deploy(const std::string& path, int partitions);
  Result<std::vector<protocol::ModuleInfo>> Modules();
  Result<std::vector<Value>> Select(const std::string& module, const std::string& pstate,
                                    const Path& path, std::optional<Value> partition_key);
  // Every record of the depot: entry p is partition p in offset order, offsets checked
  // dense from 0.
  Result<std::vector<std::vector<protocol::DepotRecord>>> ReadWholeDepot(const std::string& module,
                                                                         const std::string& depot,
                                                                         int partitions);
  Result<protocol::StatsResult> Stats();
  Result<protocol::ModuleInfo> Describe(const std::string& module);
  // Client::Update and Client::Recompute (docs/protocol.md).
  Result<protocol::Updated> Update(const std::string& path, const std::vector<std::string>& drop,
                                   int partitions);
  Result<protocol::RecomputeStarted> Recompute(const std::string& module,
                                               std::vector<std::string> pstates);
  // Client::Invoke with its default timeout.
  Result<Value> Invoke(const std::string& module, const std::string& query,
                       std::vector<Value> args);

 private:
  std::unique_ptr<Client> client_;
};

}  // namespace strata::crash_test
