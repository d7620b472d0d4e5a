// kill -9 during a workload of the three microbatch examples (mbbank, topwords, auction):
// exactly-once after crashes (docs/modules.md, "Microbatch topologies").
//
// Each round forks a child that opens the engine, deploys what is missing and runs one
// thread per example, appending with `processed` acks and, now and then, a larger burst
// with `appended` acks (so that batches hold many records); it reports every acknowledged
// record (kill9_harness.h). The parent SIGKILLs it at a random moment. After the rounds
// the parent reopens the data directory and checks: every acknowledged record is in its
// depot at its offset; each view equals a fold of its depots' whole logs, exactly — no
// record counted twice or lost, whatever the kills interrupted (compare kill9_test.cc,
// where a stream word count may only be at or above its recomputation); and each module's
// PStates equal their recomputation (Engine::Recompute).
#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "kill9_harness.h"
#include "recompute_in_place.h"

namespace strata {
// gtest prints a Value in a failed expectation as its text.
void PrintTo(const Value& v, std::ostream* os) { *os << v.ToString(); }
}  // namespace strata

namespace strata::examples_test {
namespace {

constexpr int kRounds = 5;
const std::vector<std::string> kModules = {"mbbank", "topwords", "auction"};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- The child -------------------------------------------------------------------------

void MbbankLoop(Engine& engine, Reporter& out, std::mt19937_64 rng, int round) {
  int64_t n = 0;
  auto account = [&] { return Cat("m", rng() % 10); };
  std::vector<Value> sent;
  for (;;) {
    std::vector<Value> deposits;
    for (int i = 0; i < 3; ++i) {
      deposits.push_back(
          Value::MapOf({{"account", account()}, {"amount", 1 + static_cast<int64_t>(rng() % 50)}}));
    }
    AppendAndReport(engine, out, "mbbank", "*deposits", std::move(deposits), AckLevel::kProcessed);
    const bool burst = rng() % 8 == 0;
    std::vector<Value> transfers;
    for (int i = burst ? 60 : 6; i > 0; --i) {
      if (!sent.empty() && rng() % 10 == 0) {  // a client sending a transfer again
        transfers.push_back(sent[rng() % sent.size()]);
        continue;
      }
      Value t = Value::MapOf({{"id", Cat("r", round, "-", n++)},
                              {"from", account()},
                              {"to", account()},
                              {"amount", 1 + static_cast<int64_t>(rng() % 40)}});
      sent.push_back(t);
      transfers.push_back(std::move(t));
    }
    AppendAndReport(engine, out, "mbbank", "*transfers", std::move(transfers),
                    burst ? AckLevel::kAppended : AckLevel::kProcessed);
  }
}

void TopwordsLoop(Engine& engine, Reporter& out, std::mt19937_64 rng) {
  for (;;) {
    const bool burst = rng() % 8 == 0;
    std::vector<Value> sentences;
    for (int s = burst ? 50 : 4; s > 0; --s) {
      std::string text;
      for (int w = 1 + static_cast<int>(rng() % 8); w > 0; --w) {
        text += Cat("t", rng() % (1 + rng() % 300)) + (rng() % 3 == 0 ? ", " : " ");
      }
      sentences.push_back(Value(text));
    }
    AppendAndReport(engine, out, "topwords", "*sentences", std::move(sentences),
                    burst ? AckLevel::kAppended : AckLevel::kProcessed);
  }
}

// Auctions end 0.1 to 1 s after they are opened; bids go to the last few opened (some of
// them closed already) and now and then to an auction that does not exist.
void AuctionLoop(Engine& engine, Reporter& out, std::mt19937_64 rng, int round) {
  std::vector<std::string> open;
  for (int64_t n = 0;; ++n) {
    open.push_back(Cat("r", round, "-a", n));
    if (open.size() > 4) open.erase(open.begin());
    AppendAndReport(
        engine, out, "auction", "*auctions",
        {Value::MapOf({{"id", open.back()},
                       {"ends_at_ms", NowMs() + 100 + static_cast<int64_t>(rng() % 900)}})},
        AckLevel::kProcessed);
    std::vector<Value> bids;
    for (int i = 0; i < 6; ++i) {
      std::string id = rng() % 20 == 0 ? "ghost" : open[rng() % open.size()];
      bids.push_back(Value::MapOf({{"auction", id},
                                   {"bidder", Cat("b", rng() % 8)},
                                   {"amount", 1 + static_cast<int64_t>(rng() % 100)}}));
    }
    AppendAndReport(engine, out, "auction", "*bids", std::move(bids), AckLevel::kProcessed);
  }
}

[[noreturn]] void RunChild(const std::string& dir, int round, uint64_t seed, int fd) {
  Reporter out(fd);
  const std::unique_ptr<Engine> engine = OpenAndDeploy(dir, kModules, out);
  Engine& e = *engine;
  std::vector<std::thread> threads;
  threads.emplace_back(MbbankLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 1), round);
  threads.emplace_back(TopwordsLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 2));
  threads.emplace_back(AuctionLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 3), round);
  // The loops never end: the parent kills the process.
  for (std::thread& t : threads) t.join();
  _exit(4);
}

// ---- The checks: each view against a fold of the whole logs ------------------------------

// Every record of `depot`, partition by partition in offset order.
std::vector<Value> Log(Engine& engine, const std::string& module, const std::string& depot) {
  std::vector<Value> out;
  auto partitions = ReadWholeDepot(engine, module, depot);
  EXPECT_TRUE(partitions.ok()) << partitions.status().ToString();
  if (!partitions.ok()) return out;
  for (const auto& partition : *partitions) {
    for (const DepotEntry& e : partition) out.push_back(e.record);
  }
  return out;
}

// A PState map<k1, map<k2, v>>, merged over its partitions: [k1, k2] -> v.
std::map<std::pair<Value, Value>, Value> TwoLevel(Engine& engine, const std::string& module,
                                                  const std::string& pstate) {
  std::map<std::pair<Value, Value>, Value> out;
  auto dump = DumpPState(engine, module, pstate);
  EXPECT_TRUE(dump.ok()) << dump.status().ToString();
  if (!dump.ok()) return out;
  for (const std::vector<Value>& partition : *dump) {
    for (const Value& root : partition) {
      if (!root.is_map()) continue;
      for (const auto& [k1, inner] : root.as_map()) {
        for (const auto& [k2, v] : inner.as_map()) out[{k1, k2}] = v;
      }
    }
  }
  return out;
}

std::map<Value, int64_t> IntMap(Engine& engine, const std::string& module,
                                const std::string& pstate) {
  auto map = CollectIntMap(engine, module, pstate);
  EXPECT_TRUE(map.ok()) << pstate << ": " << map.status().ToString();
  return map.ok() ? *map : std::map<Value, int64_t>{};
}

void CheckMbbank(Engine& engine) {
  std::map<Value, int64_t> deposited;
  int64_t total = 0;
  for (const Value& d : Log(engine, "mbbank", "*deposits")) {
    deposited[Field(d, "account")] += Field(d, "amount").as_int();
    total += Field(d, "amount").as_int();
  }
  EXPECT_EQ(IntMap(engine, "mbbank", "$$deposited"), deposited);

  const std::map<Value, int64_t> balances = IntMap(engine, "mbbank", "$$balances");
  int64_t money = 0;
  for (const auto& [account, balance] : balances) {
    EXPECT_GE(balance, 0) << account.ToString();
    money += balance;
  }
  EXPECT_EQ(money, total) << "money is not conserved";

  // (from, id) -> the first transfer of the log with it (one source account: one partition).
  std::map<std::pair<Value, Value>, Value> first;
  for (const Value& t : Log(engine, "mbbank", "*transfers")) {
    first.emplace(std::make_pair(Field(t, "from"), Field(t, "id")), t);
  }
  const auto applied = TwoLevel(engine, "mbbank", "$$applied");
  const auto rejected = TwoLevel(engine, "mbbank", "$$rejected");
  EXPECT_EQ(applied.size() + rejected.size(), first.size());
  std::map<Value, int64_t> expected = deposited;
  for (const auto& [key, t] : first) {
    const bool is_applied = applied.contains(key);
    ASSERT_NE(is_applied, rejected.contains(key))
        << t.ToString() << " must be applied or rejected, exactly once";
    if (!is_applied) continue;
    const int64_t amount = Field(t, "amount").as_int();
    EXPECT_EQ(applied.at(key), Value::MapOf({{"to", Field(t, "to")}, {"amount", amount}}));
    expected[key.first] -= amount;
    expected[Field(t, "to")] += amount;
  }
  for (const auto& [account, balance] : expected) {
    auto it = balances.find(account);
    EXPECT_EQ(it == balances.end() ? 0 : it->second, balance) << account.ToString();
  }
  std::cout << "[ mbbank   ] " << first.size() << " transfers, " << applied.size() << " applied"
            << std::endl;
}

void CheckTopwords(Engine& engine) {
  std::map<Value, int64_t> counts;
  std::map<Value, int64_t> sentence_counts;
  for (const Value& s : Log(engine, "topwords", "*sentences")) {
    std::set<Value> seen;
    for (const std::string& w : SplitWords(s.as_string())) {
      ++counts[Value(w)];
      seen.insert(Value(w));
    }
    for (const Value& w : seen) ++sentence_counts[w];
  }
  EXPECT_EQ(IntMap(engine, "topwords", "$$word_counts"), counts);
  EXPECT_EQ(IntMap(engine, "topwords", "$$sentence_counts"), sentence_counts);
  auto stored = engine.SelectOne("topwords", "$$top_words", Path().Key("all"));
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(*stored, TopCounts(counts, 100));
}

// Waits for every auction of the log to close (ticks go on after the restart), then
// requires each winner to be the best of the bids made before the close: the first
// (bids - refused) of the auction's bids in log order.
void CheckAuction(Engine& engine) {
  std::map<Value, int64_t> ends_at;
  for (const Value& a : Log(engine, "auction", "*auctions")) {
    ends_at[Field(a, "id")] = Field(a, "ends_at_ms").as_int();
  }
  std::map<Value, std::vector<Value>> bids;
  for (const Value& b : Log(engine, "auction", "*bids")) bids[Field(b, "auction")].push_back(b);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (const auto& [id, end] : ends_at) {
    for (;;) {
      auto winner = engine.SelectOne("auction", "$$winners", Path().Key(id));
      ASSERT_TRUE(winner.ok()) << winner.status().ToString();
      if (!winner->is_nil()) break;
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << id.ToString() << " never closed";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_TRUE(engine.WaitProcessed("auction").ok());
  const std::map<Value, int64_t> refused = IntMap(engine, "auction", "$$refused_bids");
  for (const auto& [id, list] : bids) {
    auto r = refused.find(id);
    const int64_t refused_n = r == refused.end() ? 0 : r->second;
    if (!ends_at.contains(id)) {
      EXPECT_EQ(refused_n, static_cast<int64_t>(list.size())) << id.ToString();
      continue;
    }
    ASSERT_LE(refused_n, static_cast<int64_t>(list.size())) << id.ToString();
  }
  for (const auto& [id, end] : ends_at) {
    const std::vector<Value>& list = bids[id];
    auto r = refused.find(id);
    const size_t accepted = list.size() - static_cast<size_t>(r == refused.end() ? 0 : r->second);
    const Value* best = nullptr;
    for (size_t i = 0; i < accepted; ++i) {
      if (best == nullptr || Field(list[i], "amount").as_int() > Field(*best, "amount").as_int()) {
        best = &list[i];
      }
    }
    auto winner = engine.SelectOne("auction", "$$winners", Path().Key(id));
    ASSERT_TRUE(winner.ok()) << winner.status().ToString();
    const Value closed_at = Field(*winner, "closed_at_ms");
    ASSERT_TRUE(closed_at.is_int()) << winner->ToString();
    EXPECT_GE(closed_at.as_int(), end) << id.ToString();
    Value::Map expected = {{"closed_at_ms", closed_at}};
    if (best != nullptr) {
      expected.push_back({"bidder", Field(*best, "bidder")});
      expected.push_back({"amount", Field(*best, "amount")});
    }
    EXPECT_EQ(*winner, Value::MapOf(std::move(expected))) << id.ToString();
  }
  std::cout << "[ auction  ] " << ends_at.size() << " auctions closed" << std::endl;
}

TEST(MicrobatchExamplesKill9Test, ViewsEqualTheFoldOfTheirLogsAfterRepeatedKill9) {
  const uint64_t seed = TestSeed(7401);
  TempDir dir;
  std::vector<Value> acks;
  ASSERT_NO_FATAL_FAILURE(RunRounds(kRounds, seed, dir.path(), RunChild, &acks));
  // Every acknowledged record is in its depot, at the offset it was acknowledged with.
  std::unique_ptr<Engine> engine;
  ASSERT_NO_FATAL_FAILURE(ReopenAndCheckAcks(dir.path(), acks, kModules, &engine));

  CheckMbbank(*engine);
  CheckTopwords(*engine);
  CheckAuction(*engine);
  for (const std::string& m : kModules) {
    EXPECT_TRUE(RecomputedInPlaceEqual(*engine, m));
    EX_ASSIGN_OR_FAIL(ModuleStats stats, engine->Stats(m));
    EXPECT_EQ(stats.failures, 0) << m;
  }
}

}  // namespace
}  // namespace strata::examples_test
