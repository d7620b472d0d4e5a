// kill -9 during a mixed workload of four of the examples (docs/architecture.md, promises 2, 4 and
// 6).
//
// Each round forks a child that opens the engine (only the child ever has it open while
// it runs), deploys what is missing, and runs one thread per example appending with
// `processed` acks; it reports every acknowledged record through a pipe. The parent
// SIGKILLs it at a random moment. After the rounds the parent reopens the data directory
// and checks: every acknowledged record is in its depot at its offset; the ack returns
// agree with the views; bank, profiles and the social follows/posts equal their
// recomputation from the depots; money is conserved; no word count is below its
// recomputation (counting is not idempotent, so replays may only add). leaderboard, which
// consumes wordcount's *sentences through a mirror depot, runs beside them (it loads after
// wordcount at every reopen) and is checked the same way against wordcount's log. After
// every round too, the parent recovers the directory and checks the example queries
// against their oracles (CheckQueries): bank total-money is the sum of *deposits, wordcount
// top-words the top of $$word_counts, social timeline the timelines joined with the texts
// of *posts.
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "kill9_harness.h"

namespace strata {
// gtest prints a Value in a failed expectation as its text.
void PrintTo(const Value& v, std::ostream* os) { *os << v.ToString(); }
}  // namespace strata

namespace strata::examples_test {
namespace {

constexpr int kRounds = 6;
constexpr int kBankAccounts = 12;
constexpr int64_t kBankDeposit = 100;               // per account and deposit phase
constexpr int64_t kImpossible = 1'000'000'000'000;  // more than all money ever deposited
const std::vector<std::string> kModules = {"wordcount", "social", "bank", "profiles"};
// Deployed by each child: kModules and leaderboard (after wordcount, its dependency), which
// no client appends to.
const std::vector<std::string> kDeployed = {"wordcount", "leaderboard", "social", "bank",
                                            "profiles"};

// ---- The child -------------------------------------------------------------------------

void WordcountLoop(Engine& engine, Reporter& out, std::mt19937_64 rng) {
  for (;;) {
    std::vector<Value> sentences;
    for (int s = 0; s < 4; ++s) {
      std::string text;
      for (int w = 1 + static_cast<int>(rng() % 6); w > 0; --w) {
        text += Cat("word", rng() % 40) + (rng() % 3 == 0 ? ", " : " ");
      }
      sentences.push_back(Value(text));
    }
    AppendAndReport(engine, out, "wordcount", "*sentences", std::move(sentences));
  }
}

void SocialLoop(Engine& engine, Reporter& out, std::mt19937_64 rng, int round) {
  // Post ids grow across rounds and within one (unique and increasing per author).
  int64_t next_post_id = int64_t{round + 1} * 1'000'000'000;
  auto user = [&] { return Cat("s", rng() % 20); };
  for (;;) {
    std::vector<Value> follows;
    for (int i = 0; i < 3; ++i) {
      Value f = Value::MapOf({{"from", user()}, {"to", user()}});
      if (rng() % 4 == 0) f.Insert("op", "unfollow");
      follows.push_back(f);
    }
    AppendAndReport(engine, out, "social", "*follows", std::move(follows));
    std::vector<Value> posts;
    for (int i = 0; i < 3; ++i) {
      // A text of its own, so that the timeline query's join is checked post by post.
      const int64_t id = next_post_id++;
      posts.push_back(Value::MapOf({{"author", user()}, {"id", id}, {"text", Cat("hi ", id)}}));
    }
    AppendAndReport(engine, out, "social", "*posts", std::move(posts));
  }
}

// Rejections must not depend on timing (the recomputation must reject the same
// transfers): each phase first deposits kBankDeposit into every account and waits for
// them to be processed, then lets every account send at most kBankDeposit in valid
// transfers; so every valid transfer is covered in any processing order, and the
// impossible ones are refused in every order.
void BankLoop(Engine& engine, Reporter& out, std::mt19937_64 rng, int round) {
  int64_t n = 0;
  for (;;) {
    std::vector<Value> deposits;
    for (int a = 0; a < kBankAccounts; ++a) {
      deposits.push_back(Value::MapOf({{"account", Cat("b", a)}, {"amount", kBankDeposit}}));
    }
    AppendAndReport(engine, out, "bank", "*deposits", std::move(deposits));
    std::vector<int64_t> budget(kBankAccounts, kBankDeposit);
    for (int batch = 0; batch < 12; ++batch) {
      std::vector<Value> transfers;
      for (int i = 0; i < 4; ++i) {
        int from = static_cast<int>(rng() % kBankAccounts);
        int64_t amount = 1 + static_cast<int64_t>(rng() % 8);
        if (rng() % 12 == 0) {
          amount = kImpossible;
        } else if (budget[from] < amount) {
          continue;
        } else {
          budget[from] -= amount;
        }
        Value t = Value::MapOf({{"id", Cat("r", round, "-", n++)},
                                {"from", Cat("b", from)},
                                {"to", Cat("b", rng() % kBankAccounts)},
                                {"amount", amount}});
        transfers.push_back(t);
        if (rng() % 10 == 0) transfers.push_back(t);  // a client retry
      }
      if (!transfers.empty())
        AppendAndReport(engine, out, "bank", "*transfers", std::move(transfers));
    }
  }
}

void ProfilesLoop(Engine& engine, Reporter& out, std::mt19937_64 rng, int round) {
  int64_t n = 0;
  for (;;) {
    std::vector<Value> registrations;
    for (int i = 0; i < 3; ++i) {
      Value r = Value::MapOf({{"username", Cat("p", rng() % 400)}});
      if (rng() % 2 == 0) r.Insert("request_id", Cat("r", round, "-", n++));
      registrations.push_back(r);
      if (rng() % 8 == 0) registrations.push_back(r);  // a client retry
    }
    AppendAndReport(engine, out, "profiles", "*registrations", std::move(registrations));
  }
}

[[noreturn]] void RunChild(const std::string& dir, int round, uint64_t seed, int fd) {
  Reporter out(fd);
  const std::unique_ptr<Engine> engine = OpenAndDeploy(dir, kDeployed, out);
  Engine& e = *engine;
  std::vector<std::thread> threads;
  threads.emplace_back(WordcountLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 1));
  threads.emplace_back(SocialLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 2), round);
  threads.emplace_back(BankLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 3), round);
  threads.emplace_back(ProfilesLoop, std::ref(e), std::ref(out), std::mt19937_64(seed + 4), round);
  // The loops never end: the parent kills the process.
  for (std::thread& t : threads) t.join();
  _exit(4);
}

// ---- The parent ------------------------------------------------------------------------

// The example queries of a recovered engine, every module caught up, against oracles: the
// deposits' sum (every deposit is valid), the counts of $$word_counts (replays after a kill
// may count a word twice, so the depot is not the oracle of a count), and the timelines of
// $$timelines (they depend on how follows and posts interleaved) joined with the texts of
// the *posts records.
void CheckQueries(Engine& engine) {
  for (const std::string& m : kModules) EX_ASSERT_OK(engine.WaitProcessed(m));

  EX_ASSIGN_OR_FAIL(auto deposits, ReadWholeDepot(engine, "bank", "*deposits"));
  EX_ASSIGN_OR_FAIL(Value total, engine.Invoke("bank", "total-money", {}));
  EXPECT_EQ(total, Value(DepositedSum(deposits)));

  EX_ASSIGN_OR_FAIL(auto counts, CollectIntMap(engine, "wordcount", "$$word_counts"));
  for (int64_t n : {3, 10'000}) {
    EX_ASSIGN_OR_FAIL(Value top, engine.Invoke("wordcount", "top-words", {Value(n)}));
    EXPECT_EQ(top, TopCounts(counts, static_cast<size_t>(n))) << "top-words(" << n << ")";
  }

  EX_ASSIGN_OR_FAIL(auto posts, ReadWholeDepot(engine, "social", "*posts"));
  const PostTexts texts = PostTextsOf(posts);
  for (int u = 0; u < 20; ++u) {
    const std::string user = Cat("s", u);
    EX_ASSIGN_OR_FAIL(
        std::vector<Value> entries,
        engine.Select("social", "$$timelines", Path().Key(user).Range({.limit = 800}).MapVals()));
    EX_ASSIGN_OR_FAIL(Value timeline,
                      engine.Invoke("social", "timeline", {Value(user), Value(800)}));
    EXPECT_EQ(timeline, TimelineWithTexts(entries, texts)) << "timeline(" << user << ", 800)";
  }
}

// After each round: recovers the directory in the parent and checks the queries.
void RecoverAndCheckQueries(const std::string& dir, int round) {
  EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> engine, OpenEngine(dir));
  SCOPED_TRACE(Cat("after round ", round));
  ASSERT_NO_FATAL_FAILURE(CheckQueries(*engine));
}

TEST(ExamplesKill9Test, AcknowledgedAppendsAndViewsSurviveRepeatedKill9) {
  const uint64_t seed = TestSeed(7007);
  TempDir dir;
  std::vector<Value> acks;
  ASSERT_NO_FATAL_FAILURE(
      RunRounds(kRounds, seed, dir.path(), RunChild, &acks, RecoverAndCheckQueries));
  // Every acknowledged record is in its depot, at the offset it was acknowledged with.
  std::unique_ptr<Engine> engine;
  ASSERT_NO_FATAL_FAILURE(ReopenAndCheckAcks(dir.path(), acks, kModules, &engine));
  ASSERT_NO_FATAL_FAILURE(CheckQueries(*engine));

  // The ack returns agree with the views.
  for (const Value& ack : acks) {
    const std::string module = Field(ack, "m").as_string();
    const Value& record = Field(ack, "r");
    if (module == "profiles") {
      Value ret = Field(Field(ack, "a"), "register");
      EX_ASSIGN_OR_FAIL(Value holder, engine->SelectOne("profiles", "$$users_by_name",
                                                        Path().Key(Field(record, "username"))));
      EXPECT_EQ(Field(ret, "id"), holder) << ack.ToString();
    } else if (module == "bank" && Field(ack, "d") == Value("*transfers")) {
      Value status = Field(Field(Field(ack, "a"), "transfer"), "status");
      const Value& from = Field(record, "from");
      const Value& id = Field(record, "id");
      const char* pstate = status == Value("ok") ? "$$applied_debits" : "$$rejected";
      EX_ASSIGN_OR_FAIL(Value found, engine->SelectOne("bank", pstate, Path().Key(from, id)));
      EXPECT_FALSE(found.is_nil()) << pstate << " lacks " << ack.ToString();
    }
  }

  // Money is conserved: the balances add up to the deposits (every deposit is valid).
  EX_ASSIGN_OR_FAIL(auto deposits, ReadWholeDepot(*engine, "bank", "*deposits"));
  int64_t deposited = 0;
  for (const auto& partition : deposits) {
    for (const DepotEntry& r : partition) deposited += Field(r.record, "amount").as_int();
  }
  EX_ASSIGN_OR_FAIL(auto balances, CollectIntMap(*engine, "bank", "$$balances"));
  int64_t total = 0;
  for (const auto& [account, balance] : balances) {
    EXPECT_GE(balance, 0) << account.ToString();
    total += balance;
  }
  EXPECT_EQ(total, deposited);

  // The views against their recomputation.
  TempDir fresh_dir;
  EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> fresh, OpenEngine(fresh_dir.path()));
  EX_ASSERT_OK(Recompute(*engine, *fresh, "bank", {"*deposits", "*transfers"}));
  EXPECT_TRUE(PStatesEqual(*engine, *fresh, "bank"));
  EX_ASSERT_OK(Recompute(*engine, *fresh, "profiles", {"*registrations"}));
  EXPECT_TRUE(PStatesEqual(*engine, *fresh, "profiles"));
  // Timelines depend on how follows and posts interleaved; the follows and posts do not.
  EX_ASSERT_OK(Recompute(*engine, *fresh, "social", {"*follows", "*posts"}));
  EXPECT_TRUE(PStatesEqual(*engine, *fresh, "social", {"$$followers", "$$posts"}));
  EX_ASSERT_OK(Recompute(*engine, *fresh, "wordcount", {"*sentences"}));
  EX_ASSIGN_OR_FAIL(auto live_counts, CollectIntMap(*engine, "wordcount", "$$word_counts"));
  EX_ASSIGN_OR_FAIL(auto recomputed_counts, CollectIntMap(*fresh, "wordcount", "$$word_counts"));
  int64_t recounted = 0;  // occurrences counted again by replays after a kill
  for (const auto& [word, n] : recomputed_counts) {
    auto live = live_counts.find(word);
    ASSERT_NE(live, live_counts.end()) << "word " << word.ToString() << " missing";
    EXPECT_GE(live->second, n) << "word " << word.ToString();
    recounted += live->second - n;
  }
  std::cout << "[ replays  ] wordcount counted " << recounted << " occurrences twice" << std::endl;
  EXPECT_EQ(live_counts.size(), recomputed_counts.size());

  // leaderboard's words by first letter, against the fold of wordcount's *sentences: never
  // behind (its stream topology is at-least-once across the kills, with progress of its own).
  EX_ASSERT_OK(engine->WaitProcessed("leaderboard"));
  EX_ASSIGN_OR_FAIL(PStateDump letters, DumpPState(*engine, "leaderboard", "$$words_by_letter"));
  EX_ASSIGN_OR_FAIL(auto by_letter, TwoLevelMapOf(letters, "$$words_by_letter"));
  EXPECT_EQ(by_letter.size(), recomputed_counts.size());
  for (const auto& [word, n] : recomputed_counts) {
    const Value letter(word.as_string().substr(0, 1));
    auto it = by_letter.find({letter, word});
    ASSERT_NE(it, by_letter.end()) << "leaderboard lacks word " << word.ToString();
    EXPECT_GE(it->second.as_int(), n) << "leaderboard: word " << word.ToString();
  }

  for (const std::string& m : kDeployed) {
    EX_ASSIGN_OR_FAIL(ModuleStats stats, engine->Stats(m));
    EXPECT_EQ(stats.failures, 0) << m;
  }
}

}  // namespace
}  // namespace strata::examples_test
