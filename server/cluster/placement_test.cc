// The controller's rules (placement.h) without ZooKeeper: each case is an input as the
// controller reads it and the writes it must make.
#include "placement.h"

#include <gtest/gtest.h>

#include <map>

#include "membership.h"

namespace strata::cluster {
namespace {

using Nodes = std::vector<std::string>;

ModuleSpec Spec(const std::string& name, int replication, const std::string& origin,
                int min_isr = 1) {
  return ModuleSpec{name, 4, replication, min_isr, origin};
}

// "<pid>@<started>" of node `id` in its `n`th incarnation.
std::string Inc(const std::string& id, int n = 1) {
  return std::to_string(100 + n) + "@" + id + "-start";
}

std::map<std::string, std::string> Live(const Nodes& ids) {
  std::map<std::string, std::string> live;
  for (const std::string& id : ids) live[id] = Inc(id);
  return live;
}

GroupView Group(const std::string& module, const std::string& leader, int64_t epoch, Nodes isr,
                Nodes replicas, int32_t version = 5) {
  GroupView group;
  group.module = module;
  group.group = 0;
  group.state.leader = leader;
  group.state.epoch = epoch;
  group.state.isr = std::move(isr);
  group.state.min_isr = 2;
  group.state.replicas = std::move(replicas);
  group.state.leader_incarnation = leader.empty() ? "" : Inc(leader);
  group.version = version;
  return group;
}

IsrChangeRequest Request(const std::string& module, int64_t epoch, Nodes isr,
                         const std::string& name = "req-0000000001") {
  return IsrChangeRequest{name, module, 0, epoch, std::move(isr)};
}

// The single write of `result` (a test failure when there is not exactly one).
GroupWrite Only(const Reconciliation& result) {
  EXPECT_EQ(result.writes.size(), 1u);
  return result.writes.empty() ? GroupWrite{} : result.writes[0];
}

TEST(PlacementTest, NewModuleIsPlacedOriginFirstOnTheLeastLoadedNodes) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3", "n4"});
  input.modules["m"] = Spec("m", 3, "n3", 2);
  // n1 already holds a copy of another module's group: n2 and n4 are less loaded.
  input.modules["other"] = Spec("other", 1, "n1");
  input.groups.push_back(Group("other", "n1", 1, {"n1"}, {"n1"}));
  const Reconciliation result = Reconcile(input);
  const GroupWrite write = Only(result);
  EXPECT_EQ(write.kind, GroupWrite::Kind::kCreate);
  EXPECT_EQ(write.module, "m");
  EXPECT_EQ(write.group, 0);
  EXPECT_EQ(write.state.leader, "n3");
  EXPECT_EQ(write.state.epoch, 1);
  EXPECT_EQ(write.state.replicas, (Nodes{"n3", "n2", "n4"}));
  EXPECT_EQ(write.state.isr, (Nodes{"n3", "n2", "n4"}));
  EXPECT_EQ(write.state.min_isr, 2);
  EXPECT_EQ(write.state.leader_incarnation, Inc("n3"));
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n3 epoch 1 (new module, origin n3), isr "
            "[n3,n2,n4]");
  EXPECT_TRUE(result.warnings.empty());
}

TEST(PlacementTest, NewModuleWhoseOriginIsGoneIsLedByTheLeastLoaded) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.modules["m"] = Spec("m", 2, "n9");
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.replicas, (Nodes{"n1", "n2"}));
  EXPECT_EQ(write.state.leader, "n1");
}

// A module's first epoch is its spec's creation zxid: a deploy of the same name after a
// destroy starts above every epoch the earlier one reached.
TEST(PlacementTest, ANewGroupStartsAtTheEpochOfItsSpecsCreation) {
  PlacementInput input;
  input.live = Live({"n1", "n2"});
  input.modules["m"] = Spec("m", 2, "n1");
  EXPECT_EQ(Only(Reconcile(input)).state.epoch, 1);  // no zxid known: 1
  input.modules["m"].created = 0x500000012;
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.epoch, 0x500000012);
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n1 epoch 21474836498 (new module, "
            "origin n1), isr [n1,n2]");
}

TEST(PlacementTest, FewerLiveNodesThanTheReplicationUsesAllAndWarns) {
  PlacementInput input;
  input.live = Live({"n1", "n2"});
  input.modules["m"] = Spec("m", 3, "n2");
  const Reconciliation result = Reconcile(input);
  EXPECT_EQ(Only(result).state.replicas, (Nodes{"n2", "n1"}));
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(result.warnings[0],
            "cluster: module m group 0 asks for 3 replicas; placed on the 2 live node(s)");
}

TEST(PlacementTest, LoadIsSpreadOverThreeNodesForSeveralModules) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  // Six modules of one replica, all deployed through n1 while it was down: two each.
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) input.modules[name] = Spec(name, 1, "n0");
  std::map<std::string, int> load;
  for (const GroupWrite& write : Reconcile(input).writes) {
    ASSERT_EQ(write.state.replicas.size(), 1u);
    ++load[write.state.replicas[0]];
  }
  EXPECT_EQ(load, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}}));

  // Three modules of two replicas deployed through n1: n1 leads all three, and the second
  // copies alternate over n2 and n3 (3 + 2 + 1: the load of 6 assignments as even as the
  // origin allows).
  PlacementInput through_n1;
  through_n1.live = Live({"n1", "n2", "n3"});
  for (const char* name : {"a", "b", "c"}) through_n1.modules[name] = Spec(name, 2, "n1");
  std::map<std::string, int> copies;
  for (const GroupWrite& write : Reconcile(through_n1).writes) {
    EXPECT_EQ(write.state.leader, "n1");
    for (const std::string& replica : write.state.replicas) ++copies[replica];
  }
  EXPECT_EQ(copies, (std::map<std::string, int>{{"n1", 3}, {"n2", 2}, {"n3", 1}}));

  // The existing groups count: with n2 and n3 holding a copy each already, the next
  // two-replica module from n1 goes to n1 and the one of n2, n3 with fewer copies.
  PlacementInput loaded;
  loaded.live = Live({"n1", "n2", "n3"});
  loaded.modules["x"] = Spec("x", 2, "n2");
  loaded.modules["y"] = Spec("y", 2, "n1");
  loaded.groups.push_back(Group("x", "n2", 1, {"n2", "n3"}, {"n2", "n3"}));
  loaded.groups.push_back(Group("y", "n1", 1, {"n1", "n3"}, {"n1", "n3"}));
  loaded.modules["z"] = Spec("z", 2, "n1");
  EXPECT_EQ(Only(Reconcile(loaded)).state.replicas, (Nodes{"n1", "n2"}));
}

TEST(PlacementTest, SteadyStateWritesNothing) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 4, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  const Reconciliation result = Reconcile(input);
  EXPECT_TRUE(result.writes.empty());
  EXPECT_TRUE(result.warnings.empty());
}

TEST(PlacementTest, LeaderDeathPromotesTheFirstLiveIsrMemberInReplicasOrder) {
  PlacementInput input;
  input.live = Live({"n2", "n3", "n4"});
  input.modules["m"] = Spec("m", 4, "n1");
  // n3 comes before n2 in replicas; n4 is live but not in sync.
  input.groups.push_back(
      Group("m", "n1", 2, {"n1", "n3", "n2"}, {"n1", "n3", "n2", "n4"}, /*version=*/7));
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.kind, GroupWrite::Kind::kCompareAndSet);
  EXPECT_EQ(write.expected_version, 7);
  EXPECT_EQ(write.state.leader, "n3");
  EXPECT_EQ(write.state.epoch, 3);
  EXPECT_EQ(write.state.isr, (Nodes{"n3", "n2"}));
  EXPECT_EQ(write.state.replicas, (Nodes{"n1", "n3", "n2", "n4"}));
  EXPECT_EQ(write.state.leader_incarnation, Inc("n3"));
  EXPECT_EQ(write.state.min_isr, 2);
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n3 epoch 3 (n1's session ended), isr [n3,n2]");
}

TEST(PlacementTest, LeaderAndAFollowerDeadAtOnce) {
  PlacementInput input;
  input.live = Live({"n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 1, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n3");
  EXPECT_EQ(write.state.epoch, 2);
  EXPECT_EQ(write.state.isr, (Nodes{"n3"}));
}

TEST(PlacementTest, RestartedLeaderKeepsLeadingWithANewEpoch) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.live["n1"] = Inc("n1", 2);
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 5, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n1");
  EXPECT_EQ(write.state.epoch, 6);
  EXPECT_EQ(write.state.leader_incarnation, Inc("n1", 2));
  EXPECT_EQ(write.state.isr, (Nodes{"n1", "n2", "n3"}));
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n1 epoch 6 (n1 restarted), isr [n1,n2,n3]");

  // Restarted, but not first in replicas order among the live ISR: the first one leads.
  input.groups[0] = Group("m", "n2", 5, {"n1", "n2", "n3"}, {"n1", "n2", "n3"});
  input.live["n2"] = Inc("n2", 2);
  const GroupWrite other = Only(Reconcile(input));
  EXPECT_EQ(other.state.leader, "n1");
  EXPECT_EQ(other.state.epoch, 6);
  EXPECT_EQ(other.state.leader_incarnation, Inc("n1", 2));
}

TEST(PlacementTest, FollowerDeathShrinksTheIsr) {
  PlacementInput input;
  input.live = Live({"n1", "n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 2, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}, 3));
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.kind, GroupWrite::Kind::kCompareAndSet);
  EXPECT_EQ(write.expected_version, 3);
  EXPECT_EQ(write.state.leader, "n1");
  EXPECT_EQ(write.state.epoch, 2);
  EXPECT_EQ(write.state.isr, (Nodes{"n1", "n3"}));
  EXPECT_EQ(write.state.leader_incarnation, Inc("n1"));
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n1 epoch 2, isr [n1,n3] (n2's session ended)");
}

TEST(PlacementTest, EveryIsrMemberDeadLeavesTheGroupOfflineWithItsIsr) {
  PlacementInput input;
  input.live = Live({"n3"});  // n3 is a replica, but not in sync
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 4, {"n1", "n2"}, {"n1", "n2", "n3"}));
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "");
  EXPECT_EQ(write.state.leader_incarnation, "");
  EXPECT_EQ(write.state.epoch, 4);
  EXPECT_EQ(write.state.isr, (Nodes{"n1", "n2"}));
  EXPECT_EQ(write.log,
            "cluster: module m group 0: offline: no in-sync replica is live (n1's session "
            "ended), isr [n1,n2] kept");

  // Offline already: nothing more to write while no ISR member is back.
  input.groups[0] = Group("m", "", 4, {"n1", "n2"}, {"n1", "n2", "n3"});
  EXPECT_TRUE(Reconcile(input).writes.empty());

  // An ISR member returns (a new incarnation): it leads, epoch + 1.
  input.live["n2"] = Inc("n2", 2);
  const GroupWrite back = Only(Reconcile(input));
  EXPECT_EQ(back.state.leader, "n2");
  EXPECT_EQ(back.state.epoch, 5);
  EXPECT_EQ(back.state.isr, (Nodes{"n2"}));
  EXPECT_EQ(back.state.leader_incarnation, Inc("n2", 2));
  EXPECT_EQ(back.log, "cluster: module m group 0: leader n2 epoch 5 (n2 is back), isr [n2]");
}

TEST(PlacementTest, IsrChangeRequestOfTheCurrentEpochIsApplied) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 2, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  input.isr_changes.push_back(Request("m", 2, {"n3", "n1"}));
  const Reconciliation shrink = Reconcile(input);
  const GroupWrite write = Only(shrink);
  EXPECT_EQ(write.state.isr, (Nodes{"n1", "n3"}));  // in replicas order
  EXPECT_EQ(write.state.epoch, 2);
  EXPECT_EQ(write.state.leader, "n1");
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n1 epoch 2, isr [n1,n3] (requested by the "
            "leader n1)");
  EXPECT_TRUE(shrink.warnings.empty());

  // Growing back, several requests: the last one wins; a member that is not live is left
  // out all the same.
  input.groups[0] = Group("m", "n1", 2, {"n1"}, {"n1", "n2", "n3"});
  input.live.erase("n3");
  input.isr_changes = {Request("m", 2, {"n1", "n2"}, "req-1"),
                       Request("m", 2, {"n1", "n2", "n3"}, "req-2")};
  const GroupWrite grow = Only(Reconcile(input));
  EXPECT_EQ(grow.state.isr, (Nodes{"n1", "n2"}));
  EXPECT_EQ(grow.log,
            "cluster: module m group 0: leader n1 epoch 2, isr [n1,n2] (requested by the "
            "leader n1; n3's session ended)");
}

TEST(PlacementTest, IsrChangeRequestsOfAnotherEpochAreIgnoredAndMalformedOnesRefused) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3", "n4"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 3, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  input.isr_changes = {Request("m", 2, {"n1"}, "req-1"), Request("m", 3, {"n2", "n3"}, "req-2"),
                       Request("m", 3, {"n1", "n4"}, "req-3"), Request("gone", 3, {"n1"}, "req-4")};
  const Reconciliation result = Reconcile(input);
  EXPECT_TRUE(result.writes.empty());
  EXPECT_EQ(result.warnings,
            (Nodes{"cluster: ISR change req-4 for module gone group 0 ignored: the group has "
                   "no state",
                   "cluster: ISR change req-1 for module m group 0 (isr [n1] at epoch 2) "
                   "ignored: the group is at epoch 3",
                   "cluster: ISR change req-2 for module m group 0 (isr [n2,n3] at epoch 3) "
                   "refused: it lacks the leader n1",
                   "cluster: ISR change req-3 for module m group 0 (isr [n1,n4] at epoch 3) "
                   "refused: n4 is not a replica (replicas [n1,n2,n3])"}));
}

// A leader that cannot lead (its module does not start) resigns: the first other live member
// of the ISR, in replica order, leads at epoch + 1. Without one it stays; a resignation that
// holds the leader is refused.
TEST(PlacementTest, AResigningLeaderHandsTheGroupToTheNextInSyncReplica) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 3, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  IsrChangeRequest resign = Request("m", 3, {"n3", "n2"});
  resign.resign = true;
  input.isr_changes = {resign};
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n2");
  EXPECT_EQ(write.state.epoch, 4);
  EXPECT_EQ(write.state.leader_incarnation, Inc("n2"));
  EXPECT_EQ(write.state.isr, (Nodes{"n2", "n3"}));
  EXPECT_EQ(write.state.replicas, (Nodes{"n1", "n2", "n3"}));
  EXPECT_EQ(write.log,
            "cluster: module m group 0: leader n2 epoch 4 (n1 resigned: it cannot lead), isr "
            "[n2,n3]");
  EXPECT_EQ(*ParseIsrChangeRequest(resign.name, IsrChangeRequestJson(resign)), resign);
  // n2 and n3 gone: n1 stays (nobody to hand over to).
  input.live = Live({"n1"});
  input.groups[0].state.isr = {"n1"};
  input.isr_changes = {Request("m", 3, {}, "req-2")};
  input.isr_changes[0].resign = true;
  Reconciliation alone = Reconcile(input);
  EXPECT_TRUE(alone.writes.empty());
  ASSERT_EQ(alone.warnings.size(), 1u);
  EXPECT_EQ(alone.warnings[0],
            "cluster: module m group 0: the leader n1 resigns, but no other in-sync replica is "
            "live: it stays");
  // A resignation that holds the leader is refused.
  input.live = Live({"n1", "n2", "n3"});
  input.groups[0].state.isr = {"n1", "n2", "n3"};
  input.isr_changes = {Request("m", 3, {"n1", "n2"}, "req-3")};
  input.isr_changes[0].resign = true;
  Reconciliation refused = Reconcile(input);
  EXPECT_TRUE(refused.writes.empty());
  ASSERT_EQ(refused.warnings.size(), 1u);
  EXPECT_NE(refused.warnings[0].find("refused: a resignation holds the leader n1"),
            std::string::npos);
}

TEST(PlacementTest, IsrChangeRequestOfADeadLeaderIsIgnoredByThePromotion) {
  PlacementInput input;
  input.live = Live({"n2", "n3"});
  input.modules["m"] = Spec("m", 3, "n1");
  input.groups.push_back(Group("m", "n1", 3, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  input.isr_changes = {Request("m", 3, {"n1", "n2"})};
  const Reconciliation result = Reconcile(input);
  const GroupWrite write = Only(result);
  EXPECT_EQ(write.state.leader, "n2");
  EXPECT_EQ(write.state.epoch, 4);
  EXPECT_EQ(write.state.isr, (Nodes{"n2", "n3"}));
  EXPECT_EQ(result.warnings.size(), 1u);
}

TEST(PlacementTest, DeletedModuleHasItsGroupsDeleted) {
  PlacementInput input;
  input.live = Live({"n1", "n2"});
  input.modules["kept"] = Spec("kept", 2, "n1");
  input.groups.push_back(Group("kept", "n1", 1, {"n1", "n2"}, {"n1", "n2"}));
  input.groups.push_back(Group("gone", "n2", 1, {"n2", "n1"}, {"n2", "n1"}));
  GroupView second = Group("gone", "n2", 1, {"n2"}, {"n2"});
  second.group = 1;
  input.groups.push_back(second);
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.kind, GroupWrite::Kind::kDeleteModule);
  EXPECT_EQ(write.module, "gone");
  EXPECT_EQ(write.log, "cluster: module gone was deleted: deleting its group states");

  // The deleted module's copies do not count in the load of a new placement.
  input.modules["new"] = Spec("new", 1, "n9");
  input.groups.push_back(Group("gone2", "n1", 1, {"n1"}, {"n1"}));
  const Reconciliation result = Reconcile(input);
  ASSERT_EQ(result.writes.size(), 3u);
  EXPECT_EQ(result.writes[0].kind, GroupWrite::Kind::kCreate);
  EXPECT_EQ(result.writes[0].state.replicas, (Nodes{"n1"}));  // 1 copy each: ties by id
  EXPECT_EQ(result.writes[1].kind, GroupWrite::Kind::kDeleteModule);
  EXPECT_EQ(result.writes[2].module, "gone2");
}

TEST(PlacementTest, UnreadableGroupIsLeftAlone) {
  PlacementInput input;
  input.live = Live({"n1"});
  input.modules["m"] = Spec("m", 1, "n1");
  input.unreadable.insert({"m", 0});
  const Reconciliation result = Reconcile(input);
  EXPECT_TRUE(result.writes.empty());
  EXPECT_EQ(result.warnings,
            (Nodes{"cluster: module m group 0: its znode does not hold a group state; left "
                   "alone"}));

  // A module whose spec is unreadable keeps its groups (they are not a destroyed
  // module's), and they count in the load.
  PlacementInput spec_unreadable;
  spec_unreadable.live = Live({"n1", "n2"});
  spec_unreadable.unreadable_modules.insert("m");
  spec_unreadable.groups.push_back(Group("m", "n9", 1, {"n9", "n1"}, {"n9", "n1"}));
  spec_unreadable.modules["x"] = Spec("x", 1, "n0");
  EXPECT_EQ(Only(Reconcile(spec_unreadable)).state.replicas, (Nodes{"n2"}));
}

TEST(PlacementTest, OlderStateWithoutIncarnationGetsANewEpoch) {
  PlacementInput input;
  input.live = Live({"n1", "n2"});
  input.modules["m"] = Spec("m", 2, "n1");
  GroupView group = Group("m", "n1", 1, {"n1", "n2"}, {"n1", "n2"});
  group.state.leader_incarnation.clear();
  input.groups.push_back(group);
  const GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n1");
  EXPECT_EQ(write.state.epoch, 2);
  EXPECT_EQ(write.state.leader_incarnation, Inc("n1"));
}

TEST(ModuleSpecTest, JsonRoundTripsAndBadSpecsAreCorruption) {
  const ModuleSpec spec{"bank", 8, 3, 2, "n1"};
  EXPECT_EQ(ModuleSpecJson(spec), R"({"min_isr":2,"origin":"n1","partitions":8,"replication":3})");
  EXPECT_EQ(*ParseModuleSpec("bank", ModuleSpecJson(spec)), spec);
  for (const char* bad : {"not json", R"({"partitions":8})",
                          R"({"min_isr":4,"origin":"n1","partitions":8,"replication":3})",
                          R"({"min_isr":1,"origin":"n1","partitions":0,"replication":3})"}) {
    Result<ModuleSpec> parsed = ParseModuleSpec("bank", bad);
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption) << bad;
    EXPECT_NE(parsed.status().message().find("znode /modules/bank"), std::string::npos) << bad;
  }
}

TEST(IsrChangeTest, JsonRoundTripsAndBadRequestsAreCorruption) {
  const IsrChangeRequest request{"req-0000000003", "bank", 0, 7, {"n1", "n3"}};
  EXPECT_EQ(IsrChangeRequestJson(request),
            R"({"epoch":7,"group":0,"isr":["n1","n3"],"module":"bank"})");
  EXPECT_EQ(*ParseIsrChangeRequest("req-0000000003", IsrChangeRequestJson(request)), request);
  Result<IsrChangeRequest> bad = ParseIsrChangeRequest("req-1", R"({"module":"bank"})");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("znode /isr-change/req-1"), std::string::npos);
}

TEST(IncarnationTest, IsPidAtStarted) {
  NodeInfo node;
  node.pid = 1234;
  node.started = "2026-12-07T19:00:00Z";
  EXPECT_EQ(Incarnation(node), "1234@2026-12-07T19:00:00Z");
}

// Rebalance, three modules all led by n1 on 3 nodes with replication 3: every node keeps
// its copies, and the leaderships spread one per node (a target naming another leader
// completes at once, the ISR being whole: epoch + 1).
TEST(PlacementTest, RebalanceSpreadsTheLeadershipsOverTheNodes) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  for (const char* m : {"a", "b", "c"}) {
    input.modules[m] = Spec(m, 3, "n1");
    input.groups.push_back(Group(m, "n1", 7, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  }
  input.rebalance = true;
  const Reconciliation result = Reconcile(input);
  ASSERT_EQ(result.writes.size(), 2u);  // a stays on n1
  std::map<std::string, GroupState> written;
  for (const GroupWrite& w : result.writes) written[w.module] = w.state;
  EXPECT_EQ(written["b"].leader, "n2");
  EXPECT_EQ(written["b"].epoch, 8);
  EXPECT_EQ(written["b"].leader_incarnation, Inc("n2"));
  EXPECT_EQ(written["b"].replicas, (Nodes{"n2", "n1", "n3"}));
  EXPECT_EQ(written["b"].isr, (Nodes{"n2", "n1", "n3"}));
  EXPECT_TRUE(written["b"].target.empty());
  EXPECT_EQ(written["c"].leader, "n3");
  EXPECT_EQ(result.writes[0].log,
            "cluster: module b group 0: leader n2 epoch 8, isr [n2,n1,n3] (rebalance: target "
            "[n2,n1,n3]; moved to replicas [n2,n1,n3] (rebalance))");
  // Balanced already: a second rebalance writes nothing.
  input.groups.clear();
  for (const GroupWrite& w : result.writes) input.groups.push_back({w.module, 0, w.state, 6});
  input.groups.push_back(Group("a", "n1", 7, {"n1", "n2", "n3"}, {"n1", "n2", "n3"}));
  EXPECT_TRUE(Reconcile(input).writes.empty());
}

// A fourth node joins two groups of replication 2 placed on n1..n3: one copy moves to n4.
// The target's new member joins the replicas first, then (once the leader asked for it in
// the ISR) the move completes and the old copy leaves.
TEST(PlacementTest, RebalanceMovesACopyToANewNodeOnceItIsInSync) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3", "n4"});
  input.modules["a"] = Spec("a", 2, "n1");
  input.modules["b"] = Spec("b", 2, "n1");
  input.groups.push_back(Group("a", "n1", 3, {"n1", "n2"}, {"n1", "n2"}));
  input.groups.push_back(Group("b", "n1", 3, {"n1", "n3"}, {"n1", "n3"}));
  const std::map<std::pair<std::string, int>, Nodes> targets =
      RebalanceTargets(input.live, input.modules, input.groups);
  // n1's copy of a moves to n4, which leads it (n1 leads b).
  EXPECT_EQ(targets.at({"a", 0}), (Nodes{"n4", "n2"}));
  EXPECT_EQ(targets.at({"b", 0}), (Nodes{"n1", "n3"}));
  input.rebalance = true;
  Reconciliation result = Reconcile(input);
  GroupWrite write = Only(result);
  EXPECT_EQ(write.module, "a");
  EXPECT_EQ(write.state.target, (Nodes{"n4", "n2"}));
  EXPECT_EQ(write.state.replicas, (Nodes{"n1", "n2", "n4"}));
  EXPECT_EQ(write.state.isr, (Nodes{"n1", "n2"}));
  EXPECT_EQ(write.state.leader, "n1");
  // Next round, no rebalance asked: the move waits for n4 in the ISR.
  input.rebalance = false;
  input.groups[0].state = write.state;
  input.groups[0].version = 6;
  EXPECT_TRUE(Reconcile(input).writes.empty());
  // The leader asks for n4: the move completes in the same write.
  input.isr_changes.push_back(Request("a", 3, {"n1", "n2", "n4"}));
  write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n4");
  EXPECT_EQ(write.state.epoch, 4);
  EXPECT_EQ(write.state.leader_incarnation, Inc("n4"));
  EXPECT_EQ(write.state.replicas, (Nodes{"n4", "n2"}));
  EXPECT_EQ(write.state.isr, (Nodes{"n4", "n2"}));
  EXPECT_TRUE(write.state.target.empty());
}

// Three groups of replication 2 on n1 and n2, all led by n1, and a new node n3: two copies
// move to n3 (two per node), and each node leads one group.
TEST(PlacementTest, RebalanceTargetsBalanceCopiesAndLeaderships) {
  std::map<std::string, ModuleSpec> modules;
  std::vector<GroupView> groups;
  for (const char* m : {"a", "b", "c"}) {
    modules[m] = Spec(m, 2, "n1");
    groups.push_back(Group(m, "n1", 2, {"n1", "n2"}, {"n1", "n2"}));
  }
  const auto targets = RebalanceTargets(Live({"n1", "n2", "n3"}), modules, groups);
  std::map<std::string, int> copies, leads;
  for (const auto& [key, target] : targets) {
    ASSERT_EQ(target.size(), 2u);
    ++leads[target[0]];
    for (const std::string& node : target) ++copies[node];
  }
  EXPECT_EQ(copies, (std::map<std::string, int>{{"n1", 2}, {"n2", 2}, {"n3", 2}}));
  EXPECT_EQ(leads, (std::map<std::string, int>{{"n1", 1}, {"n2", 1}, {"n3", 1}}));
  // A group of a module without a spec is not moved; no live node: no targets.
  groups.push_back(Group("gone", "n1", 2, {"n1", "n2"}, {"n1", "n2"}));
  EXPECT_EQ(RebalanceTargets(Live({"n1", "n2", "n3"}), modules, groups).count({"gone", 0}), 0u);
  EXPECT_TRUE(RebalanceTargets({}, modules, groups).empty());
}

// Leaderships that greedy choices would pile up (each group keeping its leader when it can)
// are placed by moving others: with 4 nodes and 4 groups, each node leads one.
TEST(PlacementTest, RebalanceLeadershipsHoldTheCapWhenTheCopiesAllowIt) {
  std::map<std::string, ModuleSpec> modules;
  std::vector<GroupView> groups;
  const std::vector<std::pair<std::string, Nodes>> placed = {
      {"a", {"na", "nd"}}, {"c", {"nc", "nd"}}, {"a", {"na", "nb"}}, {"a", {"na", "nc"}}};
  for (size_t i = 0; i < placed.size(); ++i) {
    const std::string m = "m" + std::to_string(i);
    modules[m] = Spec(m, 2, "na");
    const std::string leader = "n" + placed[i].first;
    groups.push_back(Group(m, leader, 2, placed[i].second, placed[i].second));
  }
  const auto targets = RebalanceTargets(Live({"na", "nb", "nc", "nd"}), modules, groups);
  std::map<std::string, int> leads;
  for (const auto& [key, target] : targets) ++leads[target[0]];
  EXPECT_EQ(leads, (std::map<std::string, int>{{"na", 1}, {"nb", 1}, {"nc", 1}, {"nd", 1}}));
}

// A target whose member is not live never completes; the leader's failure meanwhile keeps
// the target, a rebalance leaves the group alone while a copy's node is down, and the move
// completes once that node is back in sync.
TEST(PlacementTest, AutoRebalanceMovesNameTheGroupsANewNodeWouldTake) {
  const auto live = Live({"n1", "n2", "n3"});
  std::map<std::string, ModuleSpec> modules;
  std::vector<GroupView> groups;
  for (const char* m : {"a", "b", "c"}) {
    modules[m] = Spec(m, 2, "n1");
    groups.push_back(Group(m, "n1", 7, {"n1", "n2"}, {"n1", "n2"}));
  }
  // n3 takes two copies and two groups change leader (one leadership per node): all three.
  EXPECT_EQ(AutoRebalanceMoves(live, modules, groups),
            (std::vector<std::string>{"module a group 0", "module b group 0", "module c group 0"}));
  // On n1 and n2 only the leaderships move: n1 leads all three, two at most is its share.
  EXPECT_EQ(AutoRebalanceMoves(Live({"n1", "n2"}), modules, groups),
            (std::vector<std::string>{"module c group 0"}));
  // A move under way, or a copy out of the ISR: wait.
  std::vector<GroupView> moving = groups;
  moving[0].state.target = {"n3", "n1"};
  EXPECT_TRUE(AutoRebalanceMoves(live, modules, moving).empty());
  std::vector<GroupView> lagging = groups;
  lagging[2].state.isr = {"n1"};
  EXPECT_TRUE(AutoRebalanceMoves(live, modules, lagging).empty());
}

// The targets are a fixpoint: a placement moved to its targets has nothing more to move, so
// an automatic rebalance never chases its own tail.
TEST(PlacementTest, APlacementAtItsRebalanceTargetsHasNoAutoRebalanceMoves) {
  uint32_t seed = 12345;
  const auto next = [&seed](uint32_t n) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) % n;
  };
  for (int round = 0; round < 300; ++round) {
    const int nodes = 1 + static_cast<int>(next(5));
    Nodes ids;
    for (int i = 1; i <= nodes; ++i) ids.push_back("n" + std::to_string(i));
    const auto live = Live(ids);
    std::map<std::string, ModuleSpec> modules;
    std::vector<GroupView> groups;
    const int count = 1 + static_cast<int>(next(7));
    for (int m = 0; m < count; ++m) {
      const std::string name = "m" + std::to_string(m);
      const int replication = 1 + static_cast<int>(next(static_cast<uint32_t>(nodes)));
      modules[name] = Spec(name, replication, ids[0]);
      Nodes replicas;  // `replication` distinct nodes from a random start
      const int first = static_cast<int>(next(static_cast<uint32_t>(nodes)));
      for (int r = 0; r < replication; ++r) replicas.push_back(ids[(first + r) % nodes]);
      groups.push_back(Group(name, replicas[0], 3, replicas, replicas));
    }
    for (const auto& [key, target] : RebalanceTargets(live, modules, groups)) {
      for (GroupView& g : groups) {
        if (g.module != key.first) continue;
        g.state.replicas = target;
        g.state.isr = target;
        g.state.leader = target[0];
      }
    }
    EXPECT_TRUE(AutoRebalanceMoves(live, modules, groups).empty()) << "round " << round;
  }
}

TEST(PlacementTest, AMoveWaitsForItsTargetAndSurvivesAFailover) {
  PlacementInput input;
  input.live = Live({"n1", "n2", "n3"});
  input.modules["a"] = Spec("a", 2, "n1");
  GroupView group = Group("a", "n1", 3, {"n1", "n2"}, {"n1", "n2", "n4"});
  group.state.target = {"n2", "n4"};  // n4 is gone
  input.groups.push_back(group);
  EXPECT_TRUE(Reconcile(input).writes.empty());
  input.live.erase("n1");
  GroupWrite write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n2");
  EXPECT_EQ(write.state.target, (Nodes{"n2", "n4"}));
  input.live["n1"] = Inc("n1");
  input.groups[0].state = write.state;
  // A rebalance leaves it alone while n4, which holds a copy, is down.
  input.rebalance = true;
  EXPECT_TRUE(Reconcile(input).writes.empty());
  // n4 back and in sync: the move completes.
  input.rebalance = false;
  input.live["n4"] = Inc("n4");
  input.isr_changes.push_back(Request("a", 4, {"n2", "n4"}));
  write = Only(Reconcile(input));
  EXPECT_EQ(write.state.leader, "n2");
  EXPECT_EQ(write.state.replicas, (Nodes{"n2", "n4"}));
  EXPECT_TRUE(write.state.target.empty());
}

}  // namespace
}  // namespace strata::cluster
