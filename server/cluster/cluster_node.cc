#include "cluster_node.h"

namespace strata::cluster {
namespace {

// After a failed refresh or rejoin, the pause before the next attempt.
constexpr std::chrono::milliseconds kRetryPause{500};

std::string NodeIds(const std::vector<NodeInfo>& nodes) {
  std::string ids;
  for (const NodeInfo& node : nodes) ids += (ids.empty() ? "" : ", ") + node.id;
  return ids;
}

}  // namespace

ClusterNode::ClusterNode(const ClusterNodeOptions& options) : options_(options) {
  view_.node = options.self.id;
}

Result<std::unique_ptr<ClusterNode>> ClusterNode::Join(const ClusterNodeOptions& options) {
  std::unique_ptr<ClusterNode> node(new ClusterNode(options));
  STRATA_RETURN_IF_ERROR(node->Connect());
  const ClusterView view = node->View();
  if (options.log_info) {
    options.log_info("cluster: node " + options.self.id + " joined " + options.url.ToString() +
                     " (" + std::to_string(view.nodes.size()) + " node(s): " + NodeIds(view.nodes) +
                     "), controller is " + view.controller);
  }
  node->thread_ = std::thread([n = node.get()] { n->Run(); });
  return node;
}

ClusterNode::~ClusterNode() { Leave(); }

void ClusterNode::Leave() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  election_.reset();
  client_.reset();
  MutexLock lock(&mu_);
  view_.controller.clear();
  view_.is_controller = false;
  view_.nodes.clear();
}

ClusterView ClusterNode::View() const {
  MutexLock lock(&mu_);
  return view_;
}

// Cut off from the ensemble, the node cannot know who the controller is, nor stay sure that
// it is itself (its session may expire meanwhile and another candidate take over): its view
// says no controller until it is connected again (Refresh) or has rejoined.
void ClusterNode::OnConnection(bool connected) {
  if (connected) return Wake(/*expired=*/false);
  MutexLock lock(&mu_);
  lost_ = true;  // the node's thread logs it
  ++disconnects_;
  lost_controller_ = lost_controller_ || view_.is_controller;
  view_.controller.clear();
  view_.is_controller = false;
  cv_.SignalAll();
}

void ClusterNode::Wake(bool expired) {
  MutexLock lock(&mu_);
  (expired ? expired_ : refresh_) = true;
  cv_.SignalAll();
}

Status ClusterNode::Connect() {
  ZkClientOptions client_options;
  client_options.url = options_.url;
  client_options.session_timeout = options_.session_timeout;
  client_options.connect_timeout = options_.connect_timeout;
  client_options.on_session_expired = [this] { Wake(/*expired=*/true); };
  client_options.on_connection_change = [this](bool connected) { OnConnection(connected); };
  STRATA_ASSIGN_OR_RETURN(client_, ZkClient::Connect(client_options));
  // A registration left by a previous run of this node (killed less than a session timeout
  // ago) goes within the session timeout; a live node's stays and refuses this one.
  STRATA_RETURN_IF_ERROR(RegisterNode(*client_, options_.self, client_->session_timeout()));
  STRATA_ASSIGN_OR_RETURN(election_,
                          ControllerElection::Enter(*client_, options_.self.id,
                                                    [this](bool) { Wake(/*expired=*/false); }));
  return Refresh();
}

Status ClusterNode::Refresh() {
  uint64_t disconnects = 0;
  {
    MutexLock lock(&mu_);
    disconnects = disconnects_;
  }
  STRATA_ASSIGN_OR_RETURN(std::vector<NodeInfo> nodes,
                          ListNodes(*client_, [this](const WatchEvent&) { Wake(false); }));
  STRATA_ASSIGN_OR_RETURN(std::string controller, ControllerElection::CurrentController(*client_));
  const bool is_controller = election_->IsController();
  std::vector<std::string> lines;
  {
    MutexLock lock(&mu_);
    // Cut off while reading: what it read may be stale; the reconnection refreshes again.
    if (disconnects != disconnects_) return Status::Ok();
    const bool first = view_.nodes.empty();
    if (!first && NodeIds(nodes) != NodeIds(view_.nodes)) {
      lines.push_back("cluster: live nodes now " + std::to_string(nodes.size()) + ": " +
                      NodeIds(nodes));
    }
    if (!first && controller != view_.controller) {
      lines.push_back("cluster: controller is now " + (controller.empty() ? "none" : controller) +
                      (controller == options_.self.id ? " (this node)" : ""));
    }
    view_.nodes = std::move(nodes);
    view_.controller = std::move(controller);
    view_.is_controller = is_controller;
  }
  if (options_.log_info) {
    for (const std::string& line : lines) options_.log_info(line);
  }
  return Status::Ok();
}

void ClusterNode::Run() {
  for (;;) {
    bool expired = false;
    bool refresh = false;
    bool lost = false;
    bool lost_controller = false;
    {
      MutexLock lock(&mu_);
      while (!refresh_ && !expired_ && !lost_ && !stop_) cv_.Wait(&mu_);
      if (stop_) return;
      expired = expired_;
      refresh = refresh_;
      lost = lost_;
      lost_controller = lost_controller_;
      expired_ = false;
      refresh_ = false;
      lost_ = false;
      lost_controller_ = false;
    }
    if (lost && options_.log_warning) {
      options_.log_warning("cluster: node " + options_.self.id +
                           " lost its connection to ZooKeeper (reconnecting)" +
                           (lost_controller ? ": not acting as controller until it is back" : ""));
    }
    if (!expired && !refresh) continue;
    Status status;
    if (expired) {
      // Session expiry: the ensemble deleted this node's registration and candidacy with
      // the session, and every watch. Rejoin as at the start with a new session: register
      // again (waiting out nothing: the old registration is already gone) and enter the
      // election again, at the end of the line.
      if (options_.log_warning) {
        options_.log_warning("cluster: the ZooKeeper session of node " + options_.self.id +
                             " expired (cut off longer than the session timeout): rejoining "
                             "with a new session");
      }
      {
        MutexLock lock(&mu_);
        view_.controller.clear();
        view_.is_controller = false;
        view_.nodes.clear();
      }
      election_.reset();
      client_.reset();
      status = Connect();
      if (status.ok() && options_.log_info) {
        const ClusterView view = View();
        options_.log_info("cluster: node " + options_.self.id + " rejoined, controller is " +
                          view.controller);
      }
    } else {
      status = Refresh();
    }
    if (!status.ok()) {
      if (options_.log_warning) {
        options_.log_warning("cluster: " + status.message() + "; retrying");
      }
      if (expired) {
        // A failed rejoin: drop what it set up and try it again from the start.
        election_.reset();
        client_.reset();
      }
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, kRetryPause);
      (expired ? expired_ : refresh_) = true;
    }
  }
}

}  // namespace strata::cluster
