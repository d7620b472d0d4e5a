// Three ClusterNodes in one process on one real ZooKeeper server (testing/zk_test.h): the
// controller places modules, promotes followers, applies ISR change requests and deletes
// the groups of deleted modules, and every node's view follows (docs/cluster.md, "The
// controller").
#include "cluster_node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>

#include "testing/zk_test.h"

namespace strata::cluster {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;
using Nodes = std::vector<std::string>;

constexpr auto kWait = 20s;

// The lines a node logged, for the assertions on the controller's decisions.
struct Logs {
  Mutex mu;
  std::vector<std::string> lines GUARDED_BY(mu);

  void Add(const std::string& line) {
    MutexLock lock(&mu);
    lines.push_back(line);
  }
  bool Has(const std::string& text) {
    MutexLock lock(&mu);
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
};

class ClusterNodeTest : public testing::ZooKeeperTest {
 protected:
  // Joins node `id` in its `incarnation`th life (pid and start time differ by it).
  std::unique_ptr<ClusterNode> Join(const std::string& id, int incarnation = 1) {
    ClusterNodeOptions options;
    options.url = server_->Url("/strata");
    options.self.id = id;
    options.self.advertise = "127.0.0.1:" + std::to_string(7000 + next_port_++);
    options.self.pid = 1000 + incarnation;
    options.self.started = "2026-12-07T19:00:0" + std::to_string(incarnation) + "Z";
    options.session_timeout = 2s;
    options.log_info = [this](const std::string& line) { logs_.Add(line); };
    options.log_warning = [this](const std::string& line) { logs_.Add(line); };
    options.on_view_change = [this, id](const ClusterView& view) {
      ++view_changes_[id.back() - '0'];
      MutexLock lock(&views_mu_);
      last_views_[id] = view;
    };
    Result<std::unique_ptr<ClusterNode>> node = ClusterNode::Join(options);
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    return node.ok() ? std::move(node).value() : nullptr;
  }

  // n1, n2, n3 joined in this order (n1 is the controller), once each sees all three.
  void JoinThree() {
    for (const char* id : {"n1", "n2", "n3"}) nodes_[id] = Join(id);
    for (auto& [id, node] : nodes_) ASSERT_TRUE(node) << id;
    for (auto& [id, node] : nodes_) {
      ASSERT_TRUE(Eventually([&, this_node = node.get()] {
        const ClusterView view = this_node->View();
        return view.nodes.size() == 3 && view.controller == "n1";
      })) << id;
    }
  }

  // Waits on every node still joined until its view of `module`'s group 0 satisfies
  // `predicate`; returns the first node's.
  GroupView AllSee(const std::string& module,
                   const std::function<bool(const GroupView&)>& predicate) {
    GroupView seen;
    bool first = true;
    for (auto& [id, node] : nodes_) {
      if (!node) continue;
      Result<GroupView> group = node->WaitForGroup(module, 0, predicate, kWait);
      EXPECT_TRUE(group.ok()) << id << ": " << group.status().ToString();
      if (group.ok() && first) seen = *group;
      first = false;
    }
    return seen;
  }

  // The creation zxid of `module`'s spec as a joined node sees it (its groups' first
  // epoch), or 0 while none sees the module.
  int64_t CreatedSeen(const std::string& module) {
    for (auto& [id, node] : nodes_) {
      if (!node) continue;
      const ClusterView view = node->View();
      auto it = view.modules.find(module);
      if (it != view.modules.end() && it->second.created > 0) return it->second.created;
    }
    return 0;
  }
  // The `k`th epoch of `module`'s groups (1: the first), once a node sees the module.
  int64_t Epoch(const std::string& module, int64_t k) {
    EXPECT_TRUE(Eventually([&] { return CreatedSeen(module) > 0; })) << module;
    return CreatedSeen(module) + k - 1;
  }
  // A predicate for AllSee: the group is at `module`'s `k`th epoch. (A predicate runs
  // inside WaitForGroup and must not ask the node for its view.)
  std::function<bool(const GroupView&)> AtEpoch(const std::string& module, int64_t k) {
    const int64_t epoch = Epoch(module, k);
    return [epoch](const GroupView& group) { return group.state.epoch == epoch; };
  }

  Logs logs_;
  // The view each node last passed to on_view_change.
  ClusterView LastView(const std::string& id) {
    MutexLock lock(&views_mu_);
    return last_views_[id];
  }

  Mutex views_mu_;
  std::map<std::string, ClusterView> last_views_ GUARDED_BY(views_mu_);
  // Calls of on_view_change, by node: n0 to n3.
  std::atomic<int> view_changes_[4] = {0, 0, 0, 0};
  int next_port_ = 0;
  // Last: the nodes' threads call back into the members above until the nodes are gone.
  std::map<std::string, std::unique_ptr<ClusterNode>> nodes_;
};

TEST_F(ClusterNodeTest, CreatedModuleIsPlacedWithItsOriginLeadingAndSeenByEveryNode) {
  JoinThree();
  const ModuleSpec spec{"bank", 4, 3, 2, "n2"};
  ASSERT_TRUE(nodes_["n2"]->CreateModule(spec).ok());
  EXPECT_EQ(nodes_["n3"]->CreateModule(spec).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(nodes_["n3"]->CreateModule(ModuleSpec{"a/b", 1, 1, 1, "n3"}).code(),
            StatusCode::kInvalidArgument);
  const GroupView group = AllSee("bank", AtEpoch("bank", 1));
  EXPECT_EQ(group.state.leader, "n2");
  EXPECT_EQ(group.state.replicas, (Nodes{"n2", "n1", "n3"}));
  EXPECT_EQ(group.state.isr, group.state.replicas);
  EXPECT_EQ(group.state.min_isr, 2);
  EXPECT_EQ(group.state.leader_incarnation, "1001@2026-12-07T19:00:01Z");
  for (auto& [id, node] : nodes_) {
    ModuleSpec seen = node->View().modules.at("bank");
    EXPECT_EQ(seen.created, group.state.epoch) << id;  // the first epoch is the creation zxid
    seen.created = 0;
    EXPECT_EQ(seen, spec) << id;
    EXPECT_GT(view_changes_[id.back() - '0'].load(), 0) << id;
  }
  EXPECT_TRUE(logs_.Has("cluster: module bank group 0: leader n2 epoch " +
                        std::to_string(Epoch("bank", 1)) +
                        " (new module, origin n2), isr [n2,n1,n3]"));
}

TEST_F(ClusterNodeTest, LeaderLeavingPromotesTheNextIsrMember) {
  JoinThree();
  ASSERT_TRUE(nodes_["n2"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n2"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  nodes_["n2"]->Leave();  // closes its session: its registration goes at once
  nodes_["n2"].reset();
  const GroupView group = AllSee("bank", AtEpoch("bank", 2));
  EXPECT_EQ(group.state.leader, "n1");
  EXPECT_EQ(group.state.isr, (Nodes{"n1", "n3"}));
  EXPECT_EQ(group.state.replicas, (Nodes{"n2", "n1", "n3"}));
  EXPECT_TRUE(logs_.Has("cluster: module bank group 0: leader n1 epoch " +
                        std::to_string(Epoch("bank", 2)) + " (n2's session ended), isr [n1,n3]"));
}

TEST_F(ClusterNodeTest, ControllersOwnNodeLeavingIsHandledByTheNextController) {
  JoinThree();
  ASSERT_TRUE(nodes_["n1"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n1"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  nodes_["n1"]->Leave();
  nodes_["n1"].reset();
  // n2 becomes the controller and promotes the next in-sync replica.
  const GroupView group = AllSee("bank", AtEpoch("bank", 2));
  EXPECT_EQ(group.state.leader, "n2");
  EXPECT_EQ(group.state.isr, (Nodes{"n2", "n3"}));
  EXPECT_EQ(nodes_["n3"]->View().controller, "n2");
}

TEST_F(ClusterNodeTest, ControllerAndLeaderLeavingTogetherTheLastNodeTakesOverAndLeads) {
  JoinThree();
  ASSERT_TRUE(nodes_["n2"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n2"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  nodes_["n1"]->Leave();
  nodes_["n2"]->Leave();
  nodes_["n1"].reset();
  nodes_["n2"].reset();
  const GroupView group = AllSee("bank", AtEpoch("bank", 2));
  EXPECT_EQ(group.state.leader, "n3");
  EXPECT_EQ(group.state.isr, (Nodes{"n3"}));
  EXPECT_EQ(nodes_["n3"]->View().controller, "n3");
}

TEST_F(ClusterNodeTest, DisconnectedNodesReportNoControllerAndKeepTheGroupsTheyKnew) {
  JoinThree();
  ASSERT_TRUE(nodes_["n2"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n2"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  ASSERT_TRUE(server_->Pause());
  const bool cut_off = Eventually(
      [&] {
        for (const char* id : {"n1", "n2", "n3"}) {
          const ClusterView view = LastView(id);
          if (!view.controller.empty() || view.FindGroup("bank", 0) == nullptr) return false;
        }
        return true;
      },
      30s);
  ASSERT_TRUE(server_->Resume());
  ASSERT_TRUE(cut_off) << "a node's on_view_change did not report the lost connection";
  // Back (with their sessions, or rejoined in new ones if the pause outlasted them): one
  // controller again, and the group led.
  for (auto& [id, node] : nodes_) {
    EXPECT_TRUE(Eventually(
        [&, this_node = node.get()] {
          const ClusterView view = this_node->View();
          const GroupView* group = view.FindGroup("bank", 0);
          return !view.controller.empty() && group && !group->state.leader.empty();
        },
        30s))
        << id;
  }
}

TEST_F(ClusterNodeTest, IsrChangeRequestsAreAppliedAtTheirEpochAndStaleOnesIgnored) {
  JoinThree();
  ASSERT_TRUE(nodes_["n1"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n1"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  const int64_t first = Epoch("bank", 1);
  ASSERT_TRUE(nodes_["n1"]->RequestIsrChange("bank", 0, first, {"n3", "n1"}).ok());
  GroupView group = AllSee("bank", [](const GroupView& g) { return g.state.isr.size() == 2; });
  EXPECT_EQ(group.state.isr, (Nodes{"n1", "n3"}));
  EXPECT_EQ(group.state.epoch, first);

  // A valid request, then a stale one (an earlier epoch) and one without the leader: once
  // the controller has read and deleted all three, the valid one's ISR stands.
  ASSERT_TRUE(nodes_["n1"]->RequestIsrChange("bank", 0, first, {"n1", "n2", "n3"}).ok());
  ASSERT_TRUE(nodes_["n1"]->RequestIsrChange("bank", 0, first - 1, {"n1"}).ok());
  ASSERT_TRUE(nodes_["n2"]->RequestIsrChange("bank", 0, first, {"n2", "n3"}).ok());
  std::unique_ptr<ZkClient> client = Connect("/strata");
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] {
    Result<std::vector<std::string>> pending = client->Children(std::string(kIsrChangePath));
    return pending.ok() && pending->empty();
  }));
  group = AllSee("bank", [](const GroupView& g) { return g.state.isr.size() == 3; });
  EXPECT_EQ(group.state.isr, (Nodes{"n1", "n2", "n3"}));
  EXPECT_EQ(group.state.epoch, first);
  EXPECT_EQ(group.state.leader, "n1");
  EXPECT_TRUE(logs_.Has("ignored: the group is at epoch " + std::to_string(first)));
  EXPECT_TRUE(logs_.Has("refused: it lacks the leader n1"));
}

TEST_F(ClusterNodeTest, DeletedModuleHasItsGroupsDeletedInEveryView) {
  JoinThree();
  ASSERT_TRUE(nodes_["n3"]->CreateModule(ModuleSpec{"bank", 4, 2, 1, "n3"}).ok());
  const int64_t first_epoch = AllSee("bank", AtEpoch("bank", 1)).state.epoch;
  ASSERT_TRUE(nodes_["n3"]->DeleteModule("bank").ok());
  EXPECT_EQ(nodes_["n3"]->DeleteModule("bank").code(), StatusCode::kNotFound);
  for (auto& [id, node] : nodes_) {
    EXPECT_TRUE(Eventually([&, this_node = node.get()] {
      const ClusterView view = this_node->View();
      return view.modules.empty() && view.groups.empty();
    })) << id;
  }
  std::unique_ptr<ZkClient> client = Connect("/strata");
  ASSERT_TRUE(client);
  EXPECT_EQ(*client->Exists(std::string(kGroupsPath) + "/bank"), false);
  EXPECT_TRUE(logs_.Has("cluster: module bank was deleted: deleting its group states"));
  // The name can be deployed again, and is placed anew, at epochs above the first deploy's.
  ASSERT_TRUE(nodes_["n1"]->CreateModule(ModuleSpec{"bank", 4, 2, 1, "n1"}).ok());
  const GroupView again = AllSee("bank", AtEpoch("bank", 1));
  EXPECT_EQ(again.state.leader, "n1");
  EXPECT_GT(again.state.epoch, first_epoch);
}

TEST_F(ClusterNodeTest, UnreadableModuleSpecKeepsItsGroups) {
  JoinThree();
  ASSERT_TRUE(nodes_["n1"]->CreateModule(ModuleSpec{"bank", 4, 2, 1, "n1"}).ok());
  AllSee("bank", AtEpoch("bank", 1));
  std::unique_ptr<ZkClient> client = Connect("/strata");
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Set(ModulePath("bank"), "not json", -1).ok());
  // Specs are not watched (a deploy creates one, a destroy deletes it): another module's
  // creation makes every node read them again.
  ASSERT_TRUE(nodes_["n1"]->CreateModule(ModuleSpec{"other", 1, 1, 1, "n2"}).ok());
  AllSee("other", AtEpoch("other", 1));
  EXPECT_TRUE(logs_.Has("znode /modules/bank does not hold a module spec"));
  // A request read by a later reconciliation: once it is gone, the one that placed
  // "other" (and would have deleted bank's groups after) has finished.
  ASSERT_TRUE(nodes_["n2"]->RequestIsrChange("other", 0, 0, {"n2"}).ok());
  ASSERT_TRUE(Eventually([&] {
    Result<std::vector<std::string>> pending = client->Children(std::string(kIsrChangePath));
    return pending.ok() && pending->empty();
  }));
  EXPECT_EQ(*client->Exists(std::string(kGroupsPath) + "/bank/0"), true);
  ASSERT_NE(nodes_["n3"]->View().FindGroup("bank", 0), nullptr);
  EXPECT_FALSE(logs_.Has("cluster: module bank was deleted"));
}

TEST_F(ClusterNodeTest, OnlyReplicaReturningWithANewIncarnationLeadsAtTheNextEpoch) {
  JoinThree();
  ASSERT_TRUE(nodes_["n2"]->CreateModule(ModuleSpec{"solo", 1, 1, 1, "n2"}).ok());
  AllSee("solo", AtEpoch("solo", 1));
  nodes_["n2"]->Leave();
  nodes_["n2"].reset();
  // No in-sync replica is live: the group is offline, its ISR kept.
  GroupView group = AllSee("solo", [](const GroupView& g) { return g.state.leader.empty(); });
  EXPECT_EQ(group.state.epoch, Epoch("solo", 1));
  EXPECT_EQ(group.state.isr, (Nodes{"n2"}));
  nodes_["n2"] = Join("n2", /*incarnation=*/2);
  ASSERT_TRUE(nodes_["n2"]);
  group = AllSee("solo", AtEpoch("solo", 2));
  EXPECT_EQ(group.state.leader, "n2");
  EXPECT_EQ(group.state.leader_incarnation, "1002@2026-12-07T19:00:02Z");
}

TEST_F(ClusterNodeTest, LeaderRestartedUnnoticedKeepsLeadingAtTheNextEpoch) {
  JoinThree();
  // n0 is registered by hand, so that its restart can replace its registration in place:
  // the controller never sees it gone, only its new incarnation.
  std::unique_ptr<ZkClient> n0 = Connect("/strata");
  ASSERT_TRUE(n0);
  NodeInfo info{"n0", "127.0.0.1:6999", "", 1001, "2026-12-07T19:00:01Z"};
  ASSERT_TRUE(RegisterNode(*n0, info, 0ms).ok());
  ASSERT_TRUE(Eventually([&] { return nodes_["n1"]->View().nodes.size() == 4; }));
  ASSERT_TRUE(nodes_["n3"]->CreateModule(ModuleSpec{"bank", 4, 3, 2, "n0"}).ok());
  GroupView group = AllSee("bank", AtEpoch("bank", 1));
  EXPECT_EQ(group.state.leader, "n0");
  EXPECT_EQ(group.state.replicas, (Nodes{"n0", "n1", "n2"}));

  info.pid = 2002;
  info.started = "2026-12-07T19:00:09Z";
  ASSERT_TRUE(n0->Set(std::string(kNodesPath) + "/n0", NodeInfoJson(info), -1).ok());
  // A change the controller watches makes it read the nodes again.
  ASSERT_TRUE(nodes_["n3"]->CreateModule(ModuleSpec{"other", 1, 1, 1, "n3"}).ok());
  group = AllSee("bank", AtEpoch("bank", 2));
  EXPECT_EQ(group.state.leader, "n0");
  EXPECT_EQ(group.state.leader_incarnation, "2002@2026-12-07T19:00:09Z");
  EXPECT_EQ(group.state.isr, (Nodes{"n0", "n1", "n2"}));
  EXPECT_TRUE(logs_.Has("cluster: module bank group 0: leader n0 epoch " +
                        std::to_string(Epoch("bank", 2)) + " (n0 restarted)"));
}

}  // namespace
}  // namespace strata::cluster
