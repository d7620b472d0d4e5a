// A request to change a group's in-sync replicas: /isr-change/req-<sequence> (persistent,
// sequential), written by the group's leader and holding
// {"module":M,"group":G,"epoch":E,"isr":[NODE,...][,"resign":true]} (docs/cluster.md, "The
// controller"). The controller applies it only when E is the group's current epoch, the ISR
// holds the leader (without it when the leader resigns: it cannot lead, and another member
// takes over) and is a subset of the replicas; it deletes every request it read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"

namespace strata::cluster {

inline constexpr std::string_view kIsrChangePath = "/isr-change";
inline constexpr std::string_view kIsrChangePrefix = "req-";

struct IsrChangeRequest {
  std::string name;  // the znode's name, "req-<10 digits>" (not in the JSON)
  std::string module;
  int group = 0;
  int64_t epoch = 0;  // the leader epoch the requester leads
  std::vector<std::string> isr;
  // The leader cannot lead (its module does not start): `isr` is the ISR without it, and
  // its first live member in replica order leads at epoch + 1.
  bool resign = false;

  bool operator==(const IsrChangeRequest&) const = default;
};

std::string IsrChangeRequestJson(const IsrChangeRequest& request);
// kCorruption naming /isr-change/<name> when `json` is not a request.
Result<IsrChangeRequest> ParseIsrChangeRequest(const std::string& name, std::string_view json);

}  // namespace strata::cluster
