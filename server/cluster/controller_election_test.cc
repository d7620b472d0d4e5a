// The controller election against a real ZooKeeper server: three candidates in one process,
// each in a session of its own (testing/zk_test.h).
#include "controller_election.h"

#include <gtest/gtest.h>

#include <mutex>

#include "testing/zk_test.h"

namespace strata::cluster {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;

class ControllerElectionTest : public testing::ZooKeeperTest {
 protected:
  struct Candidate {
    std::unique_ptr<ZkClient> client;
    std::unique_ptr<ControllerElection> election;
    std::mutex mu;
    std::vector<bool> changes;  // what on_change reported, in order

    std::vector<bool> Changes() {
      std::lock_guard<std::mutex> lock(mu);
      return changes;
    }
  };

  // Enters n1, n2, n3 in this order (so in this order of sequence numbers).
  void EnterThree() {
    for (int i = 0; i < 3; ++i) {
      auto candidate = std::make_unique<Candidate>();
      candidate->client = Connect();
      ASSERT_TRUE(candidate->client);
      Candidate* c = candidate.get();
      const std::string id = std::string("n").append(std::to_string(i + 1));
      Result<std::unique_ptr<ControllerElection>> election =
          ControllerElection::Enter(*c->client, id, [c](bool is_controller) {
            std::lock_guard<std::mutex> lock(c->mu);
            c->changes.push_back(is_controller);
          });
      ASSERT_TRUE(election.ok()) << election.status().ToString();
      c->election = std::move(election).value();
      candidates_.push_back(std::move(candidate));
    }
    // Each has evaluated once.
    ASSERT_TRUE(Eventually([&] {
      for (auto& c : candidates_) {
        if (c->Changes().empty()) return false;
      }
      return true;
    }));
  }

  Result<std::string> Controller() { return ControllerElection::CurrentController(*observer_); }

  void TearDown() override {
    for (auto& c : candidates_) {
      if (c) c->election.reset();
    }
  }

  std::unique_ptr<ZkClient> observer_;
  std::vector<std::unique_ptr<Candidate>> candidates_;
};

TEST_F(ControllerElectionTest, TheLowestCandidateControlsAndTheNextTakesOverWhenItsSessionEnds) {
  observer_ = Connect();
  ASSERT_TRUE(observer_);
  EXPECT_EQ(*Controller(), "");
  EnterThree();
  EXPECT_TRUE(candidates_[0]->election->IsController());
  EXPECT_FALSE(candidates_[1]->election->IsController());
  EXPECT_FALSE(candidates_[2]->election->IsController());
  EXPECT_EQ(*Controller(), "n1");
  EXPECT_EQ(candidates_[0]->Changes(), std::vector<bool>{true});
  EXPECT_EQ(candidates_[1]->Changes(), std::vector<bool>{false});

  // n1's session ends (as when its process dies and the session times out): n2, the next
  // candidate, takes over. (ExpireSession has already ended the session, so nothing here
  // waits for a timeout; the bound is Eventually's generous default, not the 2 s session
  // timeout, which a loaded 2-core CI machine could exceed.)
  ASSERT_TRUE(
      testing::ExpireSession(server_->Url("/test"), candidates_[0]->client->session()).ok());
  ASSERT_TRUE(Eventually([&] { return candidates_[1]->election->IsController(); }));
  EXPECT_EQ(*Controller(), "n2");
  // The change is reported on the client's event thread, possibly a moment after
  // IsController() turned: waited for, not read at once (CI saw {false} here).
  EXPECT_TRUE(Eventually([&] { return candidates_[1]->Changes().size() == 2; }));
  EXPECT_EQ(candidates_[1]->Changes(), (std::vector<bool>{false, true}));
  EXPECT_FALSE(candidates_[2]->election->IsController());
  EXPECT_EQ(candidates_[2]->Changes(), std::vector<bool>{false});
  // n1 learns that it lost the office with its session (its own candidate's watch).
  ASSERT_TRUE(Eventually([&] { return !candidates_[0]->election->IsController(); }));
  EXPECT_TRUE(Eventually([&] { return candidates_[0]->Changes().size() == 2; }));
  EXPECT_EQ(candidates_[0]->Changes(), (std::vector<bool>{true, false}));
}

TEST_F(ControllerElectionTest, AMiddleCandidateLeavingChangesNothingButTheWatch) {
  observer_ = Connect();
  ASSERT_TRUE(observer_);
  EnterThree();
  const std::string n2 = candidates_[1]->election->candidate();
  // n2 withdraws and its session closes; n3, which watched it, now watches n1.
  candidates_[1]->election.reset();
  candidates_[1]->client.reset();
  EXPECT_FALSE(*observer_->Exists(std::string(kControllerPath) + "/" + n2));
  EXPECT_EQ(*Controller(), "n1");
  EXPECT_TRUE(candidates_[0]->election->IsController());
  EXPECT_FALSE(candidates_[2]->election->IsController());
  EXPECT_EQ(candidates_[0]->Changes(), std::vector<bool>{true});

  // The proof that n3 moved its watch to n1: when n1 goes, n3 takes over.
  candidates_[0]->election.reset();
  candidates_[0]->client.reset();
  ASSERT_TRUE(Eventually([&] { return candidates_[2]->election->IsController(); }));
  EXPECT_EQ(*Controller(), "n3");
  EXPECT_TRUE(Eventually([&] { return candidates_[2]->Changes().size() == 2; }));
  EXPECT_EQ(candidates_[2]->Changes(), (std::vector<bool>{false, true}));
}

}  // namespace
}  // namespace strata::cluster
