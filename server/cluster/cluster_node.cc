#include "cluster_node.h"

#include <charconv>
#include <thread>

namespace strata::cluster {
namespace {

// After a failed refresh or rejoin, the pause before the next attempt.
constexpr std::chrono::milliseconds kRetryPause{500};
// After the controller found the state changed under it, the pause before it reads again
// (short: the change is usually another writer's, already done; it bounds a loop while the
// election has not yet noticed that this node lost the office).
constexpr std::chrono::milliseconds kReconcilePause{50};

std::string NodeIds(const std::vector<NodeInfo>& nodes) {
  std::string ids;
  for (const NodeInfo& node : nodes) ids += (ids.empty() ? "" : ", ") + node.id;
  return ids;
}

bool ValidZnodeName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

// A group's znode name as its number; false for another name.
bool ParseGroup(const std::string& name, int* group) {
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(name.data(), end, *group);
  return ec == std::errc() && ptr == end && *group >= 0 && std::to_string(*group) == name;
}

// The controller's reads and writes that lost a race: read again and reconcile again.
bool LostRace(const Status& status) {
  return status.code() == StatusCode::kAborted || status.code() == StatusCode::kAlreadyExists ||
         status.code() == StatusCode::kNotFound;
}

}  // namespace

const GroupView* ClusterView::FindGroup(const std::string& module, int group) const {
  for (const GroupView& view : groups) {
    if (view.module == module && view.group == group) return &view;
  }
  return nullptr;
}

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
    left_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
  controller_.reset();
  election_.reset();
  std::unique_ptr<ZkClient> client;
  MutexLock lock(&mu_);
  while (users_ > 0) view_cv_.Wait(&mu_);
  client = std::move(client_);
  // Closed without the lock: closing waits for a running watch, which takes it.
  lock.Unlock();
  client.reset();
  lock.Lock();
  armed_.clear();
  view_.controller.clear();
  view_.is_controller = false;
  view_.nodes.clear();
  view_.modules.clear();
  view_.groups.clear();
  view_cv_.SignalAll();
}

ClusterView ClusterNode::View() const {
  MutexLock lock(&mu_);
  return view_;
}

Status ClusterNode::WithClient(const std::function<Status(ZkClient&)>& operation) {
  ZkClient* client = nullptr;
  {
    MutexLock lock(&mu_);
    if (left_ || !client_) {
      return Status::Aborted("cluster node " + options_.self.id + " has left the cluster");
    }
    client = client_.get();
    ++users_;
  }
  Status status = operation(*client);
  MutexLock lock(&mu_);
  --users_;
  view_cv_.SignalAll();
  return status;
}

Status ClusterNode::CreateModule(const ModuleSpec& spec) {
  if (!ValidZnodeName(spec.name)) {
    return Status::InvalidArgument("module name '" + spec.name +
                                   "' must be non-empty and hold no '/'");
  }
  return WithClient([&](ZkClient& client) {
    STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kModulesPath)));
    Result<std::string> created =
        client.Create(ModulePath(spec.name), ModuleSpecJson(spec), CreateMode::kPersistent);
    if (created.status().code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("module " + spec.name + " exists in the cluster (" +
                                   ModulePath(spec.name) + ")");
    }
    return created.status();
  });
}

Status ClusterNode::DeleteModule(const std::string& name) {
  if (!ValidZnodeName(name)) {
    return Status::InvalidArgument("module name '" + name + "' must be non-empty and hold no '/'");
  }
  return WithClient([&](ZkClient& client) { return client.Delete(ModulePath(name)); });
}

Status ClusterNode::RequestIsrChange(const std::string& module, int group, int64_t epoch,
                                     const std::vector<std::string>& isr, bool resign) {
  const IsrChangeRequest request{"", module, group, epoch, isr, resign};
  return WithClient([&](ZkClient& client) {
    STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kIsrChangePath)));
    return client
        .Create(std::string(kIsrChangePath) + "/" + std::string(kIsrChangePrefix),
                IsrChangeRequestJson(request), CreateMode::kPersistentSequential)
        .status();
  });
}

Status ClusterNode::RequestRebalance(std::chrono::milliseconds timeout) {
  STRATA_RETURN_IF_ERROR(WithClient([&](ZkClient& client) {
    Result<std::string> created =
        client.Create(std::string(kRebalancePath), "", CreateMode::kPersistent);
    return created.ok() || created.status().code() == StatusCode::kAlreadyExists ? Status::Ok()
                                                                                 : created.status();
  }));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    bool pending = true;
    STRATA_RETURN_IF_ERROR(WithClient([&](ZkClient& client) -> Status {
      STRATA_ASSIGN_OR_RETURN(pending, client.Exists(std::string(kRebalancePath)));
      return Status::Ok();
    }));
    if (!pending) return Status::Ok();
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Timeout("the controller did not take the rebalance within " +
                             std::to_string(timeout.count()) + " ms (is there a controller?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Result<GroupView> ClusterNode::WaitForGroup(const std::string& module, int group,
                                            const std::function<bool(const GroupView&)>& predicate,
                                            std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  MutexLock lock(&mu_);
  for (;;) {
    const GroupView* found = view_.FindGroup(module, group);
    if (found && predicate(*found)) return *found;
    if (!view_cv_.WaitUntil(&mu_, deadline)) {
      found = view_.FindGroup(module, group);
      if (found && predicate(*found)) return *found;
      return Status::Timeout(
          "module " + module + " group " + std::to_string(group) + " did not reach the state " +
          "waited for within " + std::to_string(timeout.count()) + " ms (" +
          (found ? "last: " + GroupStateJson(found->state) : std::string("no state")) + ")");
    }
  }
}

Watch ClusterNode::Arm(const std::string& key) {
  MutexLock lock(&mu_);
  if (!armed_.insert(key).second) return nullptr;
  return [this, key](const WatchEvent&) {
    {
      MutexLock lock(&mu_);
      armed_.erase(key);
    }
    Wake(/*expired=*/false);
  };
}

void ClusterNode::Disarm(const std::string& key) {
  MutexLock lock(&mu_);
  armed_.erase(key);
}

void ClusterNode::SetView(const std::function<void(ClusterView&)>& update) {
  ClusterView changed;
  {
    MutexLock lock(&mu_);
    ClusterView before = view_;
    update(view_);
    if (view_ == before) return;
    changed = view_;
    view_cv_.SignalAll();
  }
  if (options_.on_view_change) options_.on_view_change(changed);
}

// Cut off from the ensemble, the node cannot know who the controller is, nor stay sure that
// it is itself (its session may expire meanwhile and another candidate take over): its view
// says no controller until it is connected again (Refresh) or has rejoined.
void ClusterNode::OnConnection(bool connected) {
  if (connected) return Wake(/*expired=*/false);
  MutexLock lock(&mu_);
  current_.store(false, std::memory_order_release);  // under mu_: ordered with Refresh's store
  lost_ = true;  // the node's thread logs it and tells on_view_change
  ++disconnects_;
  lost_controller_ = lost_controller_ || view_.is_controller;
  view_.controller.clear();
  view_.is_controller = false;
  view_cv_.SignalAll();
  cv_.SignalAll();
}

void ClusterNode::Wake(bool expired) {
  if (expired) current_.store(false, std::memory_order_release);
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
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<ZkClient> client, ZkClient::Connect(client_options));
  {
    MutexLock lock(&mu_);
    while (users_ > 0) view_cv_.Wait(&mu_);
    std::swap(client_, client);
    armed_.clear();  // the new session has no watch yet
  }
  // The previous session's client, closed without the lock: closing waits for a running
  // watch, which takes it.
  client.reset();
  // A registration left by a previous run of this node (killed less than a session timeout
  // ago) goes within the session timeout; a live node's stays and refuses this one.
  STRATA_RETURN_IF_ERROR(RegisterNode(*client_, options_.self, client_->session_timeout()));
  STRATA_ASSIGN_OR_RETURN(election_,
                          ControllerElection::Enter(*client_, options_.self.id,
                                                    [this](bool) { Wake(/*expired=*/false); }));
  controller_ = std::make_unique<Controller>(*client_, election_->candidate(), options_.log_info,
                                             options_.log_warning);
  return Refresh();
}

Result<std::map<std::string, ModuleSpec>> ClusterNode::ReadModules(
    std::set<std::string>* unreadable) {
  const std::string path(kModulesPath);
  STRATA_RETURN_IF_ERROR(client_->CreateAll(path));
  const std::string key = "children " + path;
  Result<std::vector<std::string>> names = client_->Children(path, Arm(key));
  if (!names.ok()) {
    Disarm(key);
    return names.status();
  }
  std::map<std::string, ModuleSpec> modules;
  for (const std::string& name : *names) {
    Result<ZnodeData> data = client_->Get(ModulePath(name));
    if (!data.ok() && data.status().code() == StatusCode::kNotFound) continue;  // deleted since
    if (!data.ok()) return data.status();
    Result<ModuleSpec> spec = ParseModuleSpec(name, data->data);
    if (!spec.ok()) {
      if (options_.log_warning) options_.log_warning("cluster: " + spec.status().message());
      unreadable->insert(name);
      continue;
    }
    spec->created = data->created_zxid;
    modules[name] = std::move(spec).value();
  }
  return modules;
}

Result<std::vector<GroupView>> ClusterNode::ReadGroups(
    std::set<std::pair<std::string, int>>* unreadable) {
  const std::string root(kGroupsPath);
  STRATA_RETURN_IF_ERROR(client_->CreateAll(root));
  const std::string root_key = "children " + root;
  Result<std::vector<std::string>> modules = client_->Children(root, Arm(root_key));
  if (!modules.ok()) {
    Disarm(root_key);
    return modules.status();
  }
  std::sort(modules->begin(), modules->end());
  std::vector<GroupView> groups;
  for (const std::string& module : *modules) {
    const std::string module_path = root + "/" + module;
    const std::string module_key = "children " + module_path;
    Result<std::vector<std::string>> names = client_->Children(module_path, Arm(module_key));
    if (!names.ok()) Disarm(module_key);
    if (!names.ok() && names.status().code() == StatusCode::kNotFound) continue;
    if (!names.ok()) return names.status();
    std::vector<GroupView> of_module;
    for (const std::string& name : *names) {
      GroupView group;
      group.module = module;
      if (!ParseGroup(name, &group.group)) continue;
      const std::string path = module_path + "/" + name;
      const std::string key = "data " + path;
      Result<ZnodeData> data = client_->Get(path, Arm(key));
      if (!data.ok()) Disarm(key);
      if (!data.ok() && data.status().code() == StatusCode::kNotFound) continue;
      if (!data.ok()) return data.status();
      Result<GroupState> state = ParseGroupState(path, data->data);
      if (!state.ok()) {
        if (options_.log_warning) options_.log_warning("cluster: " + state.status().message());
        unreadable->insert({module, group.group});
        continue;
      }
      group.state = std::move(state).value();
      group.version = data->version;
      of_module.push_back(std::move(group));
    }
    std::sort(of_module.begin(), of_module.end(),
              [](const GroupView& a, const GroupView& b) { return a.group < b.group; });
    for (GroupView& group : of_module) groups.push_back(std::move(group));
  }
  return groups;
}

Status ClusterNode::Refresh() {
  uint64_t disconnects = 0;
  {
    MutexLock lock(&mu_);
    disconnects = disconnects_;
  }
  const std::string nodes_key = "children " + std::string(kNodesPath);
  Result<std::vector<NodeInfo>> listed = ListNodes(*client_, Arm(nodes_key));
  if (!listed.ok()) {
    Disarm(nodes_key);
    return listed.status();
  }
  std::vector<NodeInfo> nodes = std::move(listed).value();
  STRATA_ASSIGN_OR_RETURN(std::string controller, ControllerElection::CurrentController(*client_));
  std::set<std::string> unreadable_modules;
  STRATA_ASSIGN_OR_RETURN(auto modules, ReadModules(&unreadable_modules));
  std::set<std::pair<std::string, int>> unreadable;
  STRATA_ASSIGN_OR_RETURN(std::vector<GroupView> groups, ReadGroups(&unreadable));
  const bool is_controller = election_->IsController();
  {
    MutexLock lock(&mu_);
    // Cut off while reading: what it read may be stale; the reconnection refreshes again.
    if (disconnects != disconnects_) return Status::Ok();
  }
  std::vector<std::string> lines;
  ClusterView read;
  SetView([&](ClusterView& view) {
    const bool first = view.nodes.empty();
    if (!first && NodeIds(nodes) != NodeIds(view.nodes)) {
      lines.push_back("cluster: live nodes now " + std::to_string(nodes.size()) + ": " +
                      NodeIds(nodes));
    }
    if (!first && controller != view.controller) {
      lines.push_back("cluster: controller is now " + (controller.empty() ? "none" : controller) +
                      (controller == options_.self.id ? " (this node)" : ""));
    }
    view.nodes = std::move(nodes);
    view.controller = std::move(controller);
    view.is_controller = is_controller;
    view.modules = std::move(modules);
    view.unreadable_modules = unreadable_modules;
    // Read in this connection (the disconnect count did not move; SetView holds mu_, under
    // which a disconnection clears it): current until the connection is lost.
    mu_.AssertHeld();
    if (disconnects == disconnects_) current_.store(true, std::memory_order_release);
    view.groups = std::move(groups);
    read = view;
  });
  if (options_.log_info) {
    for (const std::string& line : lines) options_.log_info(line);
  }
  if (!is_controller) {
    unbalanced_.clear();  // a later office starts its own clock
    return Status::Ok();
  }
  PlacementInput input;
  for (const NodeInfo& node : read.nodes) input.live[node.id] = Incarnation(node);
  input.modules = read.modules;
  input.groups = read.groups;
  input.unreadable = std::move(unreadable);
  input.unreadable_modules = std::move(unreadable_modules);
  const std::string isr_key = "children " + std::string(kIsrChangePath);
  const std::string rebalance_key = "exists " + std::string(kRebalancePath);
  Result<bool> settled = controller_->Reconcile(input, Arm(isr_key), Arm(rebalance_key));
  if (!settled.ok()) {
    Disarm(isr_key);
    Disarm(rebalance_key);
    return settled.status();
  }
  // After writes the groups are not as read: their watches bring the next refresh.
  if (*settled) AutoRebalance(input);
  return Status::Ok();
}

void ClusterNode::AutoRebalance(const PlacementInput& input) {
  using std::chrono::steady_clock;
  const auto after = options_.auto_rebalance_after;
  if (after.count() <= 0) return;
  const std::vector<std::string> moves =
      AutoRebalanceMoves(input.live, input.modules, input.groups);
  std::string unbalanced;
  if (!moves.empty()) {
    std::string nodes;
    for (const auto& [id, incarnation] : input.live) nodes += (nodes.empty() ? "" : ",") + id;
    unbalanced = "live [" + nodes + "], would move ";
    for (size_t i = 0; i < moves.size(); ++i) unbalanced += (i ? ", " : "") + moves[i];
  }
  const auto now = steady_clock::now();
  if (unbalanced != unbalanced_) {
    unbalanced_ = unbalanced;
    unbalanced_since_ = now;
    if (!unbalanced.empty() && options_.log_info) {
      const std::string in = after.count() % 1000 == 0 ? std::to_string(after.count() / 1000) + " s"
                                                       : std::to_string(after.count()) + " ms";
      options_.log_info("cluster: placement unbalanced (" + unbalanced + "): rebalancing in " + in +
                        " unless it changes");
    }
  }
  if (unbalanced.empty()) return;
  if (now - unbalanced_since_ < after) {
    MutexLock lock(&mu_);
    recheck_at_ = unbalanced_since_ + after;
    return;
  }
  Result<std::string> created =
      client_->Create(std::string(kRebalancePath), "", CreateMode::kPersistent);
  if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
    if (options_.log_warning) {
      options_.log_warning("cluster: automatic rebalance: cannot create " +
                           std::string(kRebalancePath) + ": " + created.status().message() +
                           " (trying again in 1 s)");
    }
    MutexLock lock(&mu_);
    recheck_at_ = now + std::chrono::seconds(1);
    return;
  }
  if (options_.log_info) {
    options_.log_info("cluster: automatic rebalance: the placement stayed unbalanced (" +
                      unbalanced + ")");
  }
  unbalanced_.clear();
}

void ClusterNode::Run() {
  for (;;) {
    bool expired = false;
    bool refresh = false;
    bool lost = false;
    bool lost_controller = false;
    {
      MutexLock lock(&mu_);
      while (!refresh_ && !expired_ && !lost_ && !stop_) {
        if (!recheck_at_) {
          cv_.Wait(&mu_);
        } else if (!cv_.WaitUntil(&mu_, *recheck_at_) ||
                   std::chrono::steady_clock::now() >= *recheck_at_) {
          refresh_ = true;  // an automatic rebalance falls due: read and decide again
          recheck_at_.reset();
        }
      }
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
    if (lost) {
      if (options_.log_warning) {
        options_.log_warning(
            "cluster: node " + options_.self.id +
            " lost its connection to ZooKeeper (reconnecting)" +
            (lost_controller ? ": not acting as controller until it is back" : ""));
      }
      if (options_.on_view_change) options_.on_view_change(View());
    }
    if (!expired && !refresh) continue;
    Status status;
    if (expired) {
      // Session expiry: the ensemble deleted this node's registration and candidacy with
      // the session, and every watch. Rejoin as at the start with a new session: register
      // again (waiting out nothing: the old registration is already gone) and enter the
      // election again, at the end of the line. The modules and groups it knew stay in the
      // view until it reads them again.
      if (options_.log_warning) {
        options_.log_warning("cluster: the ZooKeeper session of node " + options_.self.id +
                             " expired (cut off longer than the session timeout): rejoining "
                             "with a new session");
      }
      SetView([](ClusterView& view) {
        view.controller.clear();
        view.is_controller = false;
        view.nodes.clear();
      });
      controller_.reset();
      election_.reset();
      status = Connect();
      if (status.ok() && options_.log_info) {
        const ClusterView view = View();
        options_.log_info("cluster: node " + options_.self.id + " rejoined, controller is " +
                          view.controller);
      }
    } else {
      status = Refresh();
    }
    if (!status.ok() && !expired && LostRace(status)) {
      // The controller lost a race (or its office): read again and reconcile again.
      if (options_.log_info) {
        options_.log_info("cluster: controller: " + status.message() + "; reading again");
      }
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, kReconcilePause);
      refresh_ = true;
      continue;
    }
    if (!status.ok()) {
      if (options_.log_warning) {
        options_.log_warning("cluster: " + status.message() + "; retrying");
      }
      if (expired) {
        // A failed rejoin: drop what it set up and try it again from the start.
        controller_.reset();
        election_.reset();
      }
      MutexLock lock(&mu_);
      cv_.WaitFor(&mu_, kRetryPause);
      (expired ? expired_ : refresh_) = true;
    }
  }
}

}  // namespace strata::cluster
