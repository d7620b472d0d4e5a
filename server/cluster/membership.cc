#include "membership.h"

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

namespace strata::cluster {

std::string Incarnation(const NodeInfo& node) {
  return std::to_string(node.pid) + "@" + node.started;
}

bool ValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::string NodeInfoJson(const NodeInfo& node) {
  return nlohmann::json{{"advertise", node.advertise},
                        {"http", node.http},
                        {"pid", node.pid},
                        {"started", node.started}}
      .dump();
}

Result<NodeInfo> ParseNodeInfo(const std::string& id, std::string_view json) {
  try {
    const nlohmann::json doc = nlohmann::json::parse(json);
    NodeInfo node;
    node.id = id;
    node.advertise = doc.at("advertise").get<std::string>();
    node.http = doc.at("http").get<std::string>();
    node.pid = doc.at("pid").get<int64_t>();
    node.started = doc.at("started").get<std::string>();
    return node;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption("znode " + std::string(kNodesPath) + "/" + id +
                              " does not hold a node's registration: " + e.what());
  }
}

std::string IsoTimeNow() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

namespace {

// Set by a watch on the event thread, awaited by the registering thread.
struct Flag {
  std::mutex mu;
  std::condition_variable cv;
  bool set = false;
};

}  // namespace

Status RegisterNode(ZkClient& client, const NodeInfo& node,
                    std::chrono::milliseconds wait_for_stale) {
  if (!ValidNodeId(node.id)) {
    return Status::InvalidArgument("node-id '" + node.id +
                                   "' must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -");
  }
  STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kNodesPath)));
  const std::string path = std::string(kNodesPath) + "/" + node.id;
  const auto deadline = std::chrono::steady_clock::now() + wait_for_stale;
  for (;;) {
    Result<std::string> created = client.Create(path, NodeInfoJson(node), CreateMode::kEphemeral);
    if (created.ok()) return Status::Ok();
    if (created.status().code() != StatusCode::kAlreadyExists) return created.status();
    // Taken: wait for the holder's session to end (a crashed predecessor's does within
    // its session timeout), watching the znode rather than polling it.
    auto gone = std::make_shared<Flag>();
    Result<ZnodeData> holder = client.Get(path, [gone](const WatchEvent&) {
      std::lock_guard<std::mutex> lock(gone->mu);
      gone->set = true;
      gone->cv.notify_all();
    });
    if (!holder.ok()) {
      if (holder.status().code() == StatusCode::kNotFound) continue;  // just went
      return holder.status();
    }
    std::unique_lock<std::mutex> lock(gone->mu);
    if (!gone->cv.wait_until(lock, deadline, [&] { return gone->set; })) {
      Result<NodeInfo> other = ParseNodeInfo(node.id, holder->data);
      return Status::AlreadyExists("node-id " + node.id + " is already registered by " +
                                   (other.ok() ? other->advertise : "another process") +
                                   " (ZooKeeper session " +
                                   std::to_string(holder->ephemeral_owner) + ")");
    }
  }
}

Result<std::vector<NodeInfo>> ListNodes(ZkClient& client, Watch on_change) {
  STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kNodesPath)));
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                          client.Children(std::string(kNodesPath), std::move(on_change)));
  std::sort(ids.begin(), ids.end());
  std::vector<NodeInfo> nodes;
  for (const std::string& id : ids) {
    Result<ZnodeData> data = client.Get(std::string(kNodesPath) + "/" + id);
    if (!data.ok() && data.status().code() == StatusCode::kNotFound) continue;  // left since
    if (!data.ok()) return data.status();
    STRATA_ASSIGN_OR_RETURN(NodeInfo node, ParseNodeInfo(id, data->data));
    node.session = data->ephemeral_owner;
    nodes.push_back(std::move(node));
  }
  return nodes;
}

}  // namespace strata::cluster
