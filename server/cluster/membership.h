// Membership: the live nodes of the cluster, one EPHEMERAL znode each,
// /nodes/<node-id> holding {"advertise":"HOST:PORT","http":"HOST:PORT","pid":N,
// "started":"ISO time"} (docs/cluster.md). A node is a member exactly as long as the
// ZooKeeper session that registered it lives.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "zk_client.h"

namespace strata::cluster {

inline constexpr std::string_view kNodesPath = "/nodes";

struct NodeInfo {
  std::string id;
  std::string advertise;  // the protocol address other nodes and clients use
  std::string http;       // the HTTP listener ("" with --http off)
  int64_t pid = 0;
  std::string started;  // ISO 8601 UTC, e.g. 2026-12-07T16:00:00Z
  int64_t session = 0;  // the ZooKeeper session holding the registration (read back only)

  bool operator==(const NodeInfo&) const = default;
};

// The node's incarnation, "<pid>@<started>": a restarted node has a new one (docs/cluster.md,
// "The controller").
std::string Incarnation(const NodeInfo& node);

// True for a node id of 1 to 64 characters of [A-Za-z0-9_-].
bool ValidNodeId(std::string_view id);

// The znode's JSON, and back (kCorruption naming the node when it is not such JSON).
std::string NodeInfoJson(const NodeInfo& node);
Result<NodeInfo> ParseNodeInfo(const std::string& id, std::string_view json);

// "2026-12-07T16:00:00Z" for now.
std::string IsoTimeNow();

// Registers `node` in `client`'s session. When /nodes/<id> exists already — a live node
// with that id, or the registration of a process that died less than a session timeout
// ago — waits up to `wait_for_stale` for it to go, then refuses: kAlreadyExists
// "node-id X is already registered by HOST:PORT".
Status RegisterNode(ZkClient& client, const NodeInfo& node,
                    std::chrono::milliseconds wait_for_stale);

// The live nodes, by id. `on_change`, when set, fires once on the next join or leave.
Result<std::vector<NodeInfo>> ListNodes(ZkClient& client, Watch on_change = nullptr);

}  // namespace strata::cluster
