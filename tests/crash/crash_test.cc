// The crash harness: kill -9 of a real stratad during a mixed workload of all five example
// modules, restart on the same data directory, and the checks of docs/architecture.md promises 2, 4
// and 6 after every restart (issue 7).
//
// A round starts build/bin/stratad, checks what the earlier rounds left (from the second
// round on), then runs several client threads — one connection each, appending with
// `processed` acks over the wire, and one invoking queries (QueryLoop: every answer
// consistent, and a clean kIOError once the server is killed) — and SIGKILLs the server
// after a random delay; in one round of three (by the seed) it is also killed again while
// it recovers. A last restart checks the last round. The checks, with the server idle and every
// topology caught up (Stats lag 0):
//   - every acknowledged append is in its depot at the partition and offset of its ack
//     (read back with ReadDepot);
//   - ack returns agree with the views (a profile's id, a transfer's debit or rejection);
//   - bank, profiles and social $$followers / $$posts equal their recomputation: every
//     depot record re-appended, partition by partition in offset order, into the
//     embedded Engine on a fresh data directory (examples_test::RecomputeFrom);
//   - no word count is below its recomputation (counting is not idempotent);
//   - orders: $$orders and $$shipped equal their recomputation from *orders, and every
//     placed order has exactly one *shipments record (a step's ctx.Append commits with it);
//   - the bank balances add up to the deposits (every deposit is valid; transfers only
//     move money), and none is negative;
//   - the example queries, invoked over the wire, equal their oracles (CheckQueries):
//     bank total-money() the deposits' sum, wordcount top-words(n) the top of the live
//     $$word_counts, social timeline(user, 800) the user's $$timelines joined with the
//     texts of the *posts records.
//
// LifecycleCrashTest.LifecycleOperationsSurviveKill9 does the same around the module
// lifecycle (docs/modules.md, "Changing a deployed module"; issue 15). wordcount (4
// partitions) and bank (8) take appends from client threads while each round runs one
// operation, cycling through: update wordcount v1 -> v2 (wordcount_v2.so adds the topology
// "lengths" and $$word_lengths, backfilled) and back (drop=$$word_lengths,lengths); recompute
// of every PState of wordcount or of bank, alternately; rescale of bank 8 -> 3 -> 16 -> 8;
// and, once, bank v1 -> v2 (bank_v2.so: ModuleBuilder::Migrate turns every balance into
// {amount, currency}; repeated until a round commits it). The kill comes before the server
// has the operation (1 round in 8), after it is done, backfill or rebuild included (1 in 8),
// or at a random moment within how long it last took (the rest: while the call runs or
// while its backfill, recompute or migration pass runs). After the restart, with the server
// idle and no rebuild running:
//   - each module is loaded at the version before the operation or the one after it (only
//     the one after once the call was acknowledged), with that version's partition count and
//     exactly the depots, PStates (and schemas) and topologies of that version's build;
//   - every acknowledged sentence is where its ack put it (wordcount is never rescaled);
//   - bank, whose offsets a rescale renumbers: every record is at the partition its key
//     hashes to among the current count, every key's records of the previous check are still
//     its first ones in order, and every acknowledged record is among them in ack order;
//   - every view equals its recomputation (RecomputeFromBuild) with the build and partition
//     count now deployed — no word count or length count below it — and bank's balances
//     add up to the deposits, migrated to records exactly when bank runs version 2.
//
// MicrobatchCrashTest.BatchesAreAppliedExactlyOnceAcrossKill9 does it for the microbatch
// examples (docs/modules.md, "Microbatch topologies"; issue 16): mbbank and topwords (4
// partitions each) take bulk appends — hundreds of sentences, deposits or transfers per
// append, one append in four a larger one acknowledged `appended` that leaves a backlog —
// so that the kill, and the kill during recovery, find batches running. The transfers move
// money among 6 accounts shared by every client thread, with amounts up to 10^7, so many
// are refused; some are sent twice. auction (4 partitions, and its tick depot *ticks,
// which the server appends to every 100 ms) takes auctions that end 200 to 1500 ms after
// their creation (by the wall clock, which the ticks carry) and bids on them until 300 ms
// after their end, so that ticks close auctions while bids arrive, before the kill and
// while the server recovers. After a processed append a client reads one of its records'
// effects back (a word's count, a transfer's decision, an auction stored): the ack waits
// for the batch. After every restart, with every topology caught up (a tick depot may lag
// by the one tick appended just now) and every auction closed (from then on ticks change
// no view):
//   - every acknowledged append is in its depot at the partition and offset of its ack;
//   - topwords: $$word_counts and $$sentence_counts equal, exactly (exactly-once, not "no
//     count below" as for the stream word count), the fold of the sentences read back, and
//     $$top_words the brute-force top 100 of those counts (by descending count, ties by
//     ascending word);
//   - mbbank: the balances add up to the deposits and none is negative; $$deposited is
//     each account's sum of deposits; every transfer id of the depot is in exactly one of
//     $$applied (with its first record's destination and amount) and $$rejected, and
//     nothing else is there; each balance equals its deposits plus the applied transfers
//     to it minus those from it (every debit and credit applied once);
//   - auction: every auction of the depot is in $$auctions, closed, and in $$winners, closed
//     at the time of a tick of *ticks no earlier than its end, with as winner (and in
//     $$best_bids) the best of the bids accepted before its close — in its *bids partition
//     an auction's refused bids ($$refused_bids) follow its accepted ones, since a bid only
//     names an acknowledged auction — by highest amount, of equal amounts the lowest offset;
//     nothing is scheduled any more, and the bids on no auction are all refused;
//   - the recompute oracle: every PState of the three modules is dumped, recomputed by the
//     server (Recompute replays the recorded batch boundaries, on which mbbank's decisions
//     depend, and the ticks of the log, on which auction's closes depend, so the re-append
//     oracle of the other tests does not apply) and dumped again once no rebuild runs: the
//     dumps must be equal (ticks appended meanwhile close nothing: every auction is closed).
//
// Rounds: STRATA_CRASH_ROUNDS (default 4; `make crash-test ROUNDS=N`); the lifecycle test
// runs that many rounds of each operation kind plus the migration (default 1 each), the
// microbatch test that many rounds (default 3). Seed: STRATA_TEST_SEED (default fixed,
// printed). The server's log goes to a file beside the temporary data directory and is
// printed on failure.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "strata/key_codec.h"
#include "strata/path.h"
#include "strata/protocol/messages.h"
#include "strata/schema.h"
#include "stratad_process.h"
#include "wire.h"

namespace strata {
// gtest prints a Value in a failed expectation as its text.
void PrintTo(const Value& v, std::ostream* os) { *os << v.ToString(); }
}  // namespace strata

namespace strata::crash_test {
namespace {

namespace proto = protocol;
using examples_test::Cat;
using examples_test::DepotSource;
using examples_test::Field;
using examples_test::PStateDump;
using examples_test::TempDir;
using server_test::StratadProcess;
using Clock = std::chrono::steady_clock;

constexpr int kDefaultRounds = 4;
constexpr int kBankThreads = 2;
constexpr int kAccountsPerBankThread = 6;
constexpr int kBankAccounts = kBankThreads * kAccountsPerBankThread;
constexpr int64_t kBankDeposit = 100;               // per account and deposit phase
constexpr int64_t kImpossible = 1'000'000'000'000;  // more than all money ever deposited
constexpr auto kCatchUpTimeout = std::chrono::seconds(60);
const std::vector<std::string> kModules = {"wordcount", "social", "bank", "profiles", "orders"};

// STRATA_CRASH_ROUNDS when set (`make crash-test ROUNDS=N`), else `default_rounds`.
int Rounds(int default_rounds = kDefaultRounds) {
  const char* env = std::getenv("STRATA_CRASH_ROUNDS");
  int rounds = env != nullptr && *env != '\0' ? std::atoi(env) : default_rounds;
  return std::max(rounds, 1);
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- The workload ----------------------------------------------------------------------

// One acknowledged record: where its processed ack put it, and its ack returns.
struct Ack {
  std::string module;
  std::string depot;
  int partition = -1;
  int64_t offset = -1;
  Value record;
  Value returns;  // map topology -> ack return
};

// What the client threads of one round share. Thread-safe.
class RoundLog {
 public:
  void Acked(const std::string& module, const std::string& depot, const std::vector<Value>& records,
             const std::vector<proto::AppendResult>& results) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].offset < 0) continue;  // ack none: nothing known to check
      if (results[i].failure.has_value()) {
        errors_.push_back(Cat(module, " ", depot, " record ", records[i].ToString(), ": ",
                              proto::ErrorCodeName(results[i].failure->code), " ",
                              results[i].failure->message));
        continue;
      }
      Value returns = Value::EmptyMap();
      for (const auto& [topology, value] : results[i].ack_returns) returns.Insert(topology, value);
      acks_.push_back(
          {module, depot, results[i].partition, results[i].offset, records[i], std::move(returns)});
    }
  }
  void Error(std::string what) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.push_back(std::move(what));
  }
  // True once every module of `modules` has an acknowledged record in this round.
  bool EveryModuleAcked(const std::vector<std::string>& modules = kModules) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& m : modules) {
      auto acked = [&](const Ack& a) { return a.module == m; };
      if (std::none_of(acks_.begin(), acks_.end(), acked)) return false;
    }
    return true;
  }
  std::vector<Ack> TakeAcks() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(acks_);
  }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  std::mutex mu_;
  std::vector<Ack> acks_;            // guarded by mu_
  std::vector<std::string> errors_;  // guarded by mu_
};

// A client thread's view of the round: its connection, its log, and whether the server
// was killed (after which a broken connection is expected and ends the thread).
struct ClientContext {
  Wire wire;
  RoundLog* log = nullptr;
  const std::atomic<bool>* killed = nullptr;
  int round = 0;
  std::mt19937_64 rng;
  // Retry an append refused with kBusy (an update holds more appends than it may): the
  // lifecycle rounds.
  bool retry_busy = false;

  // Appends (with a processed ack unless told otherwise) and logs the acks. False ends the
  // thread: the server is gone (expected once killed) or answered with an error (always a
  // failure).
  bool Append(const std::string& module, const std::string& depot, std::vector<Value> records,
              proto::AckLevel level = proto::AckLevel::kProcessed) {
    std::vector<Value> copy = records;
    auto results = wire.Append(module, depot, std::move(copy), level);
    while (retry_busy && !results.ok() && results.status().code() == StatusCode::kBusy &&
           !killed->load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      copy = records;
      results = wire.Append(module, depot, std::move(copy), level);
    }
    if (!results.ok()) {
      bool expected = killed->load() && results.status().code() == StatusCode::kIOError;
      if (!expected) log->Error(module + " " + depot + ": " + results.status().ToString());
      return false;
    }
    log->Acked(module, depot, records, *results);
    return true;
  }

  // Selects the one value at `path` (partitioned by its first key) into *out. False ends
  // the thread, as for Append.
  bool SelectOne(const std::string& module, const std::string& pstate, const Path& path,
                 Value* out) {
    auto found = wire.Select(module, pstate, path, std::nullopt);
    if (!found.ok()) {
      bool expected = killed->load() && found.status().code() == StatusCode::kIOError;
      if (!expected) log->Error(module + " " + pstate + ": " + found.status().ToString());
      return false;
    }
    *out = found->size() == 1 ? (*found)[0] : Value();
    return true;
  }
};

// Every depot partition's records as read back from the server, by (module, depot).
using DepotsRead =
    std::map<std::pair<std::string, std::string>, std::vector<std::vector<DepotEntry>>>;

// The recompute oracle's source of `module`'s depots: what was read back from the server.
DepotSource SourceFrom(const DepotsRead& depots, const std::string& module) {
  return
      [&depots, module](const std::string& depot) -> Result<std::vector<std::vector<DepotEntry>>> {
        auto it = depots.find({module, depot});
        if (it == depots.end())
          return Status::NotFound("the server has no depot " + module + " " + depot);
        return it->second;
      };
}

// The client threads of one round, each with its own connection to the server.
struct RoundClients {
  RoundClients(RoundLog* log, const std::atomic<bool>* killed, int round, uint64_t seed,
               uint16_t port)
      : log(log), killed(killed), round(round), seed(seed), port(port) {}

  RoundLog* log;
  const std::atomic<bool>* killed;
  int round;
  uint64_t seed;
  uint16_t port;
  bool retry_busy = false;              // ClientContext::retry_busy
  std::chrono::milliseconds timeout{};  // per request; 0: Wire's default
  std::vector<std::unique_ptr<ClientContext>> clients;
  std::vector<std::thread> threads;

  // Connects a client and runs `loop(client)` on a thread of its own.
  template <typename Loop>
  void Add(Loop loop) {
    auto c = std::make_unique<ClientContext>();
    c->log = log;
    c->killed = killed;
    c->round = round;
    c->retry_busy = retry_busy;
    c->rng.seed(seed + 1000 * static_cast<uint64_t>(round) + clients.size());
    Status opened = c->wire.Open(port, timeout);
    if (!opened.ok()) {
      log->Error("connecting a client: " + opened.ToString());
      return;
    }
    ClientContext* raw = c.get();
    clients.push_back(std::move(c));
    threads.emplace_back([raw, loop] { loop(*raw); });
  }
  void Join() {
    for (std::thread& t : threads) t.join();
  }
};

void WordcountLoop(ClientContext& c) {
  for (;;) {
    std::vector<Value> sentences;
    for (int s = 0; s < 4; ++s) {
      std::string text;
      for (int w = 1 + static_cast<int>(c.rng() % 6); w > 0; --w) {
        text += Cat("word", c.rng() % 40) + (c.rng() % 3 == 0 ? ", " : " ");
      }
      sentences.push_back(Value(text));
    }
    if (!c.Append("wordcount", "*sentences", std::move(sentences))) return;
  }
}

void SocialLoop(ClientContext& c) {
  // Post ids grow across rounds and within one (unique and increasing per author).
  int64_t next_post_id = int64_t{c.round + 1} * 1'000'000'000;
  auto user = [&] { return Cat("s", c.rng() % 20); };
  for (;;) {
    std::vector<Value> follows;
    for (int i = 0; i < 3; ++i) {
      Value f = Value::MapOf({{"from", user()}, {"to", user()}});
      if (c.rng() % 4 == 0) f.Insert("op", "unfollow");
      follows.push_back(f);
    }
    if (!c.Append("social", "*follows", std::move(follows))) return;
    std::vector<Value> posts;
    for (int i = 0; i < 3; ++i) {
      // A text of its own, so that the timeline query's join is checked post by post.
      const int64_t id = next_post_id++;
      posts.push_back(Value::MapOf({{"author", user()}, {"id", id}, {"text", Cat("hi ", id)}}));
    }
    if (!c.Append("social", "*posts", std::move(posts))) return;
  }
}

// Rejections must not depend on timing, or the recomputation (every deposit first, then
// every transfer) would reject other transfers than the live run. Each bank thread owns
// kAccountsPerBankThread source accounts; a phase deposits kBankDeposit into each and
// waits for the processed ack, then lets each send at most kBankDeposit in valid
// transfers (to any account). So a valid transfer is covered in any processing order —
// an account's debits never exceed its acknowledged deposits — and an impossible one is
// refused in every order. A phase cut by the kill only leaves money unspent.
void BankLoop(ClientContext& c, int thread) {
  int64_t n = 0;
  const int first = thread * kAccountsPerBankThread;
  for (;;) {
    std::vector<Value> deposits;
    for (int a = first; a < first + kAccountsPerBankThread; ++a) {
      deposits.push_back(Value::MapOf({{"account", Cat("b", a)}, {"amount", kBankDeposit}}));
    }
    if (!c.Append("bank", "*deposits", std::move(deposits))) return;
    std::vector<int64_t> budget(kAccountsPerBankThread, kBankDeposit);
    for (int batch = 0; batch < 12; ++batch) {
      std::vector<Value> transfers;
      for (int i = 0; i < 4; ++i) {
        int from = static_cast<int>(c.rng() % kAccountsPerBankThread);
        int64_t amount = 1 + static_cast<int64_t>(c.rng() % 8);
        if (c.rng() % 12 == 0) {
          amount = kImpossible;
        } else if (budget[from] < amount) {
          continue;
        } else {
          budget[from] -= amount;
        }
        Value t = Value::MapOf({{"id", Cat("r", c.round, "-", thread, "-", n++)},
                                {"from", Cat("b", first + from)},
                                {"to", Cat("b", c.rng() % kBankAccounts)},
                                {"amount", amount}});
        transfers.push_back(t);
        if (c.rng() % 10 == 0) transfers.push_back(t);  // a client retry
      }
      if (!transfers.empty() && !c.Append("bank", "*transfers", std::move(transfers))) return;
    }
  }
}

// Queries while the others append, until the kill: every total-money answer is a whole
// number of deposits (every deposit is kBankDeposit; a transfer's money in flight is
// counted, so a transfer never shows half done) and never below an earlier answer
// (deposits only add), and top-words(5) is at most 5 [word, count] ranked by count
// descending. Once the server is killed an invocation fails cleanly with kIOError.
void QueryLoop(ClientContext& c) {
  int64_t last_total = 0;
  for (;;) {
    auto total = c.wire.Invoke("bank", "total-money", {});
    auto top = c.wire.Invoke("wordcount", "top-words", {Value(5)});
    for (const Status& st : {total.status(), top.status()}) {
      if (st.ok()) continue;
      if (!(c.killed->load() && st.code() == StatusCode::kIOError)) {
        c.log->Error("query: " + st.ToString());
      }
      return;
    }
    if (!total->is_int() || total->as_int() % kBankDeposit != 0 || total->as_int() < last_total) {
      c.log->Error(Cat("total-money answered ", total->ToString(), " after ", last_total,
                       ": not a whole number of deposits, or less than before"));
      return;
    }
    last_total = total->as_int();
    const bool ranked = top->is_list() && top->as_list().size() <= 5 &&
                        std::is_sorted(top->as_list().begin(), top->as_list().end(),
                                       [](const Value& a, const Value& b) {
                                         return a.as_list()[1].as_int() > b.as_list()[1].as_int();
                                       });
    if (!ranked) {
      c.log->Error("top-words(5) answered " + top->ToString());
      return;
    }
  }
}

void ProfilesLoop(ClientContext& c) {
  int64_t n = 0;
  for (;;) {
    std::vector<Value> registrations;
    for (int i = 0; i < 3; ++i) {
      Value r = Value::MapOf({{"username", Cat("p", c.rng() % 400)}});
      if (c.rng() % 2 == 0) r.Insert("request_id", Cat("r", c.round, "-", n++));
      registrations.push_back(r);
      if (c.rng() % 8 == 0) registrations.push_back(r);  // a client retry
    }
    if (!c.Append("profiles", "*registrations", std::move(registrations))) return;
  }
}

// Order ids are unique per round and thread; one record in six is a client retry of an
// earlier order (a duplicate the module must not ship twice). Every other batch is large
// and sent with ack `none`, so the server holds a backlog and the kill finds many orders
// between their step's commit and their shipment's append.
void OrdersLoop(ClientContext& c) {
  int64_t n = 0;
  std::vector<Value> placed;
  for (int batch = 0;; ++batch) {
    const bool large = batch % 2 == 1;
    std::vector<Value> orders;
    for (int i = 0; i < (large ? 200 : 4); ++i) {
      if (!placed.empty() && c.rng() % 6 == 0) {
        orders.push_back(placed[c.rng() % placed.size()]);
        continue;
      }
      Value o = Value::MapOf({{"order_id", Cat("o", c.round, "-", n++)},
                              {"customer", Cat("c", c.rng() % 30)},
                              {"amount", static_cast<int64_t>(1 + c.rng() % 100)}});
      placed.push_back(o);
      orders.push_back(std::move(o));
    }
    if (!c.Append("orders", "*orders", std::move(orders),
                  large ? proto::AckLevel::kNone : proto::AckLevel::kProcessed)) {
      return;
    }
  }
}

// ---- The checks ------------------------------------------------------------------------

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = examples_test::TestSeed(7450);
    rng_.seed(seed_);
    log_path_ = data_dir_.path() + ".stratad.log";
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cout << "---- stratad log (" << log_path_ << ") ----\n"
                << server_test::ReadFile(log_path_) << std::endl;
    }
    std::remove(log_path_.c_str());
  }

  // Starts stratad on the data directory and connects wire_ to it.
  void StartServer() {
    const auto start = Clock::now();
    server_ = std::make_unique<StratadProcess>();
    ASSERT_TRUE(
        server_->Start(data_dir_.path(), log_path_, {"--task-threads", "2", "--threads", "1"}))
        << "stratad did not start, exit status " << server_->Wait();
    wire_ = std::make_unique<Wire>();
    EX_ASSERT_OK(wire_->Open(server_->port()));
    std::cout << "[ start    ] stratad pid " << server_->pid() << " port " << server_->port()
              << " ready in " << SecondsSince(start) << " s" << std::endl;
  }

  void DeployModules() {
    for (const std::string& name : kModules) {
      EX_ASSIGN_OR_FAIL(proto::ModuleInfo info,
                        wire_->Deploy(examples_test::ModulePath(name), examples_test::kPartitions));
      ASSERT_EQ(info.name, name);
    }
  }

  // Runs the client threads `add_clients` starts (RoundClients::Add) for a random while
  // once every module of `modules` has an acknowledged record, then SIGKILLs the server.
  // Appends the round's acks to acks_.
  void RunRoundAndKill(int round, const std::vector<std::string>& modules,
                       const std::function<void(RoundClients&)>& add_clients) {
    RoundLog log;
    std::atomic<bool> killed{false};
    RoundClients clients{&log, &killed, round, seed_, server_->port()};
    add_clients(clients);

    // The kill comes at a random moment once every module is under way (so that each
    // round acknowledges some of each, however slow the machine).
    const auto delay = std::chrono::milliseconds(rng_() % 1500);
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!log.EveryModuleAcked(modules) && Clock::now() < deadline && log.errors().empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(delay);
    // What the topologies had yet to process just before the kill (for the log line).
    int64_t behind = -1;
    if (auto stats = wire_->Stats(); stats.ok()) {
      behind = 0;
      for (const proto::ModuleStats& m : stats->modules) {
        for (const proto::TopologyPartitionStats& t : m.topologies) behind += t.lag;
      }
    }
    killed = true;
    server_->Stop(SIGKILL);
    clients.Join();

    std::vector<Ack> acks = log.TakeAcks();
    std::map<std::string, int> per_module;
    for (const Ack& a : acks) ++per_module[a.module];
    std::cout << "[ round " << round << "  ] kill -9 " << delay.count()
              << " ms after every module's first ack, " << behind
              << " records unprocessed by some topology: " << acks.size()
              << " acknowledged records (";
    for (const std::string& m : modules) std::cout << " " << m << " " << per_module[m];
    std::cout << " )" << std::endl;
    for (const std::string& e : log.errors()) ADD_FAILURE() << "round " << round << ": " << e;
    for (const std::string& m : modules) {
      EXPECT_GT(per_module[m], 0) << "round " << round << ": no " << m
                                  << " record was acknowledged";
    }
    acks_.insert(acks_.end(), std::make_move_iterator(acks.begin()),
                 std::make_move_iterator(acks.end()));
  }

  // Restarts the server and kills it again right away, while it replays what the kill
  // left unprocessed (no check in between: the next start checks).
  void KillDuringRecovery() {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    const auto delay = std::chrono::milliseconds(rng_() % 200);
    std::this_thread::sleep_for(delay);
    server_->Stop(SIGKILL);
    std::cout << "[ recovery ] kill -9 " << delay.count() << " ms after the restart" << std::endl;
  }

  // Polls Stats until every topology of every module has processed its whole depots; a
  // tick depot of tick_depots_ may have one record unprocessed (a tick appended just now).
  void WaitCaughtUp() {
    const auto deadline = Clock::now() + kCatchUpTimeout;
    for (;;) {
      EX_ASSIGN_OR_FAIL(proto::StatsResult stats, wire_->Stats());
      int64_t lag = 0;
      for (const proto::ModuleStats& m : stats.modules) {
        ASSERT_EQ(m.failures, 0) << m.module << " has topology failures, e.g. "
                                 << (m.failure_page.empty() ? "" : m.failure_page[0].message);
        for (const proto::TopologyPartitionStats& t : m.topologies) {
          const bool ticking = tick_depots_.count({m.module, t.depot}) == 1;
          lag += ticking ? std::max<int64_t>(t.lag - 1, 0) : t.lag;
        }
      }
      if (lag == 0) return;
      ASSERT_LT(Clock::now(), deadline) << "topologies still " << lag << " records behind after "
                                        << kCatchUpTimeout.count() << " s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Polls Stats until no module has a backfill, recompute or migration pass running (after a
  // restart the interrupted ones resume or are abandoned).
  void WaitNoRebuilds() {
    const auto deadline = Clock::now() + kCatchUpTimeout;
    for (;;) {
      EX_ASSIGN_OR_FAIL(proto::StatsResult stats, wire_->Stats());
      bool running = false;
      for (const proto::ModuleStats& m : stats.modules) running |= !m.rebuilds.empty();
      if (!running) return;
      ASSERT_LT(Clock::now(), deadline)
          << "rebuilds still running after " << kCatchUpTimeout.count() << " s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Reads every depot of module `m` back over the wire into *depots, adding their record
  // count to *records.
  void ReadModuleDepots(const proto::ModuleInfo& m, DepotsRead* depots, size_t* records) {
    for (const proto::DepotInfo& d : m.depots) {
      EX_ASSIGN_OR_FAIL(auto read, wire_->ReadWholeDepot(m.name, d.name, m.partitions));
      auto& entries = (*depots)[{m.name, d.name}];
      entries.clear();
      for (auto& partition : read) {
        *records += partition.size();
        entries.emplace_back();
        for (proto::DepotRecord& r : partition) {
          entries.back().push_back(DepotEntry{r.offset, std::move(r.value)});
        }
      }
    }
  }

  // Every acknowledged append of acks_ is in its depot where its ack put it.
  void CheckAcksInDepots(const DepotsRead& depots) {
    for (const Ack& ack : acks_) {
      auto it = depots.find({ack.module, ack.depot});
      ASSERT_NE(it, depots.end()) << "no depot " << ack.module << " " << ack.depot;
      const auto& partitions = it->second;
      ASSERT_TRUE(ack.partition >= 0 && ack.partition < static_cast<int>(partitions.size()) &&
                  ack.offset >= 0 &&
                  ack.offset < static_cast<int64_t>(partitions[ack.partition].size()))
          << "acknowledged record lost: " << ack.module << " " << ack.depot << " " << ack.partition
          << "/" << ack.offset << " " << ack.record.ToString();
      ASSERT_EQ(partitions[ack.partition][ack.offset].record, ack.record)
          << ack.module << " " << ack.depot << " " << ack.partition << "/" << ack.offset;
    }
  }

  // A PState's whole contents over the wire, in the form of examples_test::DumpPState;
  // `info` (from the embedded engine, same module) says which partitions it has.
  // `partitions`: the module's count (partitions_ when 0).
  Result<PStateDump> DumpOverWire(const std::string& module, const PStateInfo& info,
                                  int partitions = 0) {
    if (partitions == 0) partitions = partitions_;
    PStateDump dump;
    for (const Value& key : examples_test::PartitionKeys(info.schema.global ? 1 : partitions)) {
      STRATA_ASSIGN_OR_RETURN(std::vector<Value> contents,
                              wire_->Select(module, info.name, Path(), key));
      dump.push_back(std::move(contents));
    }
    return dump;
  }

  // Every check of the file comment against the restarted server.
  void CheckAfterRestart(int round) {
    const auto start = Clock::now();
    ASSERT_NO_FATAL_FAILURE(WaitCaughtUp());

    // The depots, read back over the wire.
    EX_ASSIGN_OR_FAIL(std::vector<proto::ModuleInfo> modules, wire_->Modules());
    DepotsRead depots;
    size_t depot_records = 0;
    for (const proto::ModuleInfo& m : modules) {
      ASSERT_EQ(m.partitions, partitions_) << m.name;
      ASSERT_NO_FATAL_FAILURE(ReadModuleDepots(m, &depots, &depot_records));
    }

    // Every acknowledged append is in its depot where its ack put it.
    ASSERT_NO_FATAL_FAILURE(CheckAcksInDepots(depots));

    // The ack returns of the last round agree with the views (earlier ones were checked
    // after their round; the recomputation below covers any later change of the views).
    for (size_t i = returns_checked_; i < acks_.size(); ++i) {
      const Ack& ack = acks_[i];
      if (ack.module == "profiles") {
        const Value& username = Field(ack.record, "username");
        EX_ASSIGN_OR_FAIL(auto holder, wire_->Select("profiles", "$$users_by_name",
                                                     Path().Key(username), std::nullopt));
        EXPECT_EQ(Value(Value::List{Field(Field(ack.returns, "register"), "id")}),
                  Value(Value::List(holder)))
            << "registration " << ack.record.ToString();
      } else if (ack.module == "bank" && ack.depot == "*transfers") {
        const Value status = Field(Field(ack.returns, "transfer"), "status");
        const char* pstate = status == Value("ok") ? "$$applied_debits" : "$$rejected";
        EX_ASSIGN_OR_FAIL(auto found, wire_->Select("bank", pstate,
                                                    Path().Key(Field(ack.record, "from"),
                                                               Field(ack.record, "id")),
                                                    std::nullopt));
        EXPECT_TRUE(found.size() == 1 && !found[0].is_nil())
            << pstate << " lacks the transfer acknowledged as " << status.ToString() << ": "
            << ack.record.ToString();
      }
    }

    returns_checked_ = acks_.size();

    // Money is conserved: every deposit is valid and applied once.
    int64_t deposited = 0;
    for (const auto& partition : depots[{"bank", "*deposits"}]) {
      for (const DepotEntry& r : partition) deposited += Field(r.record, "amount").as_int();
    }

    // The views against their recomputation in an embedded engine.
    TempDir fresh_dir;
    EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> fresh, examples_test::OpenEngine(fresh_dir.path()));
    auto recompute = [&](const std::string& module, const std::vector<std::string>& order) {
      DepotSource source = SourceFrom(depots, module);
      return examples_test::RecomputeFrom(source, partitions_, *fresh, module, order);
    };
    auto compare = [&](const std::string& module, const std::vector<std::string>& pstates) {
      EX_ASSIGN_OR_FAIL(ModuleInfo info, fresh->Describe(module));
      for (const PStateInfo& p : info.pstates) {
        if (!pstates.empty() && std::find(pstates.begin(), pstates.end(), p.name) == pstates.end())
          continue;
        EX_ASSIGN_OR_FAIL(PStateDump live, DumpOverWire(module, p));
        EX_ASSIGN_OR_FAIL(PStateDump recomputed, examples_test::DumpPState(*fresh, module, p.name));
        EXPECT_TRUE(examples_test::DumpsEqual(live, recomputed))
            << "round " << round << ": " << module << " " << p.name;
      }
    };
    EX_ASSERT_OK(recompute("bank", {"*deposits", "*transfers"}));
    compare("bank", {});
    EX_ASSERT_OK(recompute("profiles", {"*registrations"}));
    compare("profiles", {});
    // Timelines depend on how follows and posts interleaved; the follows and posts do not.
    EX_ASSERT_OK(recompute("social", {"*follows", "*posts"}));
    compare("social", {"$$followers", "$$posts"});
    EX_ASSERT_OK(recompute("wordcount", {"*sentences"}));
    // *shipments is derived: the recomputation regenerates it from *orders.
    EX_ASSERT_OK(recompute("orders", {"*orders"}));
    compare("orders", {});
    ASSERT_NO_FATAL_FAILURE(CheckOneShipmentPerOrder(round, depots[{"orders", "*shipments"}]));

    EX_ASSIGN_OR_FAIL(ModuleInfo bank, fresh->Describe("bank"));
    for (const PStateInfo& p : bank.pstates) {
      if (p.name != "$$balances") continue;
      EX_ASSIGN_OR_FAIL(PStateDump dump, DumpOverWire("bank", p));
      EX_ASSIGN_OR_FAIL(auto balances, examples_test::IntMapOf(dump, p.name));
      int64_t total = 0;
      for (const auto& [account, balance] : balances) {
        EXPECT_GE(balance, 0) << "account " << account.ToString();
        total += balance;
      }
      EXPECT_EQ(total, deposited) << "round " << round
                                  << ": the balances do not add up to the deposits";
    }

    EX_ASSIGN_OR_FAIL(ModuleInfo wordcount, fresh->Describe("wordcount"));
    int64_t recounted = 0;  // occurrences counted again by replays after a kill
    for (const PStateInfo& p : wordcount.pstates) {
      if (p.name != "$$word_counts") continue;
      EX_ASSIGN_OR_FAIL(PStateDump dump, DumpOverWire("wordcount", p));
      EX_ASSIGN_OR_FAIL(auto live_counts, examples_test::IntMapOf(dump, p.name));
      EX_ASSIGN_OR_FAIL(auto recomputed_counts,
                        examples_test::CollectIntMap(*fresh, "wordcount", p.name));
      for (const auto& [word, n] : recomputed_counts) {
        auto live = live_counts.find(word);
        ASSERT_NE(live, live_counts.end())
            << "round " << round << ": word " << word.ToString() << " missing";
        EXPECT_GE(live->second, n) << "round " << round << ": word " << word.ToString();
        recounted += live->second - n;
      }
      EXPECT_EQ(live_counts.size(), recomputed_counts.size());
      ASSERT_NO_FATAL_FAILURE(CheckQueries(round, depots, deposited, live_counts));
    }
    std::cout << "[ check " << round << "  ] " << acks_.size() << " acks in " << depot_records
              << " depot records; " << deposited << " deposited; wordcount replays recounted "
              << recounted << " occurrences; " << SecondsSince(start) << " s" << std::endl;
  }

  // The example queries over the wire, against oracles: total-money is the deposits' sum,
  // top-words the top of `counts` (the live $$word_counts: replays after a kill may count
  // a word twice, so the depot is not the oracle of a count), each social timeline the
  // user's $$timelines (which depend on how follows and posts interleaved) joined with the
  // texts of the *posts records.
  void CheckQueries(int round, const DepotsRead& depots, int64_t deposited,
                    const std::map<Value, int64_t>& counts) {
    EX_ASSIGN_OR_FAIL(Value total, wire_->Invoke("bank", "total-money", {}));
    EXPECT_EQ(total, Value(deposited)) << "round " << round << ": total-money";
    for (int64_t n : {3, 10'000}) {
      EX_ASSIGN_OR_FAIL(Value top, wire_->Invoke("wordcount", "top-words", {Value(n)}));
      EXPECT_EQ(top, examples_test::TopCounts(counts, static_cast<size_t>(n)))
          << "round " << round << ": top-words(" << n << ")";
    }
    const examples_test::PostTexts texts =
        examples_test::PostTextsOf(depots.at({"social", "*posts"}));
    for (int u = 0; u < 20; ++u) {
      const std::string user = Cat("s", u);
      EX_ASSIGN_OR_FAIL(
          std::vector<Value> entries,
          wire_->Select("social", "$$timelines", Path().Key(user).Range({.limit = 800}).MapVals(),
                        std::nullopt));
      EX_ASSIGN_OR_FAIL(Value timeline,
                        wire_->Invoke("social", "timeline", {Value(user), Value(800)}));
      EXPECT_EQ(timeline, examples_test::TimelineWithTexts(entries, texts))
          << "round " << round << ": timeline(" << user << ", 800)";
    }
  }

  // A step's depot append commits with its PState writes: every placed order (a key of
  // $$orders) has exactly one record in *shipments, none of them lost to a kill.
  void CheckOneShipmentPerOrder(int round, const std::vector<std::vector<DepotEntry>>& shipments) {
    std::map<Value, int> shipped;
    for (const auto& partition : shipments) {
      for (const DepotEntry& r : partition) ++shipped[Field(r.record, "order_id")];
    }
    PStateInfo info;
    info.name = "$$orders";
    EX_ASSIGN_OR_FAIL(PStateDump dump, DumpOverWire("orders", info));
    size_t placed = 0;
    for (const std::vector<Value>& partition : dump) {
      for (const Value& root : partition) {
        if (!root.is_map()) continue;
        for (const auto& [id, order] : root.as_map()) {
          ++placed;
          auto it = shipped.find(id);
          EXPECT_TRUE(it != shipped.end() && it->second == 1)
              << "round " << round << ": order " << id.ToString() << " is placed but has "
              << (it == shipped.end() ? 0 : it->second) << " shipment records";
        }
      }
    }
    EXPECT_EQ(placed, shipped.size()) << "round " << round << ": shipments without a placed order";
    std::cout << "[ orders " << round << " ] " << placed << " placed orders, each shipped once"
              << std::endl;
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  TempDir data_dir_;
  std::string log_path_;
  const int partitions_ = examples_test::kPartitions;
  std::unique_ptr<StratadProcess> server_;
  std::unique_ptr<Wire> wire_;
  std::vector<Ack> acks_;       // every acknowledged record of every round so far
  size_t returns_checked_ = 0;  // acks_[0, returns_checked_) had their ack returns checked
  // The tick depots (module, depot) of the deployed modules: the engine appends to them
  // every few ms, so WaitCaughtUp lets them lag by one record.
  std::set<std::pair<std::string, std::string>> tick_depots_;
};

TEST_F(CrashTest, AcknowledgedAppendsAndViewsSurviveKill9OfStratad) {
  const int rounds = Rounds();
  std::cout << "[ rounds   ] " << rounds << " (set STRATA_CRASH_ROUNDS to change it)" << std::endl;
  const auto start = Clock::now();
  for (int round = 0; round <= rounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(DeployModules());
    } else {
      ASSERT_NO_FATAL_FAILURE(CheckAfterRestart(round - 1));
    }
    if (round == rounds) break;
    ASSERT_NO_FATAL_FAILURE(RunRoundAndKill(round, kModules, [](RoundClients& clients) {
      auto add = [&](auto loop) { clients.Add(loop); };
      add(WordcountLoop);
      add(WordcountLoop);
      add(SocialLoop);
      for (int t = 0; t < kBankThreads; ++t) add([t](ClientContext& c) { BankLoop(c, t); });
      add(ProfilesLoop);
      add(OrdersLoop);
      add(QueryLoop);
    }));
    if (rng_() % 3 == 0) {
      ASSERT_NO_FATAL_FAILURE(KillDuringRecovery());
    }
  }
  std::cout << "[ done     ] " << rounds << " rounds, " << acks_.size() << " acknowledged records, "
            << SecondsSince(start) << " s" << std::endl;
}

// ---- The lifecycle rounds --------------------------------------------------------------

// What a module runs: its build, version and partition count.
struct Deployed {
  std::string build;  // build/modules/<x>.so
  int version = 0;
  int partitions = 0;
};

// The operations of the lifecycle rounds (docs/modules.md, "Changing a deployed module").
enum class Op { kUpdateWordcount, kMigrateBank, kRecompute, kRescale };
const char* OpName(Op op) {
  switch (op) {
    case Op::kUpdateWordcount:
      return "update wordcount";
    case Op::kMigrateBank:
      return "update bank v1->v2";
    case Op::kRecompute:
      return "recompute";
    case Op::kRescale:
      return "rescale bank";
  }
  return "?";
}
// When the round's kill comes: before the server has the operation, while it runs (the call
// in flight, or its backfill, recompute or migration pass in the background), or after
// it is done. The last two are told apart by Stats just before the kill.
enum class KillAt { kBefore, kDuring, kAfter };

const std::vector<std::string> kLifecycleModules = {"wordcount", "bank"};
constexpr int kBankFirstPartitions = 8;
const std::vector<int> kRescaleTargets = {3, 16, 8};  // 8 -> 3 -> 16 -> 8 -> ...
constexpr auto kOperationTimeout = std::chrono::seconds(120);

// The key a bank depot is hash-partitioned by (examples/bank).
Value BankKey(const std::string& depot, const Value& record) {
  return Field(record, depot == "*deposits" ? "account" : "from");
}

class LifecycleCrashTest : public CrashTest {
 protected:
  void DeployLifecycleModules() {
    EX_ASSIGN_OR_FAIL(proto::ModuleInfo wc, wire_->Deploy(examples_test::ModulePath("wordcount"),
                                                          examples_test::kPartitions));
    deployed_["wordcount"] = {examples_test::ModulePath("wordcount"), wc.version, wc.partitions};
    EX_ASSIGN_OR_FAIL(proto::ModuleInfo bank,
                      wire_->Deploy(examples_test::ModulePath("bank"), kBankFirstPartitions));
    deployed_["bank"] = {examples_test::ModulePath("bank"), bank.version, bank.partitions};
    infos_["wordcount"] = wc;
    infos_["bank"] = bank;
  }

  // Runs the workload of wordcount and bank, the operation `op`, and the kill.
  void RunLifecycleRound(int round, Op op) {
    RoundLog log;
    std::atomic<bool> killed{false};
    RoundClients clients{&log, &killed, round, seed_, server_->port()};
    clients.retry_busy = true;
    clients.timeout = kOperationTimeout;
    auto add = [&](auto loop) { clients.Add(loop); };
    add(WordcountLoop);
    add(WordcountLoop);
    for (int t = 0; t < kBankThreads; ++t) add([t](ClientContext& c) { BankLoop(c, t); });

    // The operation, from what runs now.
    const Deployed& wc = deployed_["wordcount"];
    const Deployed& bank = deployed_["bank"];
    std::string module;
    Deployed next;
    std::vector<std::string> drop;
    int partitions = 0;
    std::vector<std::string> recompute;
    switch (op) {
      case Op::kUpdateWordcount: {
        module = "wordcount";
        const bool to_v2 = wc.build == examples_test::ModulePath("wordcount");
        next = {examples_test::ModulePath(to_v2 ? "wordcount_v2" : "wordcount"), wc.version + 1,
                wc.partitions};
        if (!to_v2) drop = {"$$word_lengths", "lengths"};
        break;
      }
      case Op::kMigrateBank:
        module = "bank";
        next = {examples_test::ModulePath("bank_v2"), bank.version + 1, bank.partitions};
        break;
      case Op::kRecompute:
        module = recomputes_++ % 2 == 0 ? "wordcount" : "bank";
        next = deployed_[module];
        // One PState of each, alternately every PState: a rebuild recomputes every PState
        // of the module in tables of its own (docs/modules.md), so bank's $$balances alone
        // is rebuilt with its own idempotence markers ($$deposit_offsets, $$applied_debits),
        // not the live ones that would skip every deposit and debit. wordcount's $$ranking
        // indexes $$word_counts: they are recomputed together, or after a kill's replays
        // counted some words again the live index would no longer match the new counts.
        if (recomputes_ % 4 < 2) {
          if (module == "bank") {
            recompute.push_back("$$balances");
          } else {
            recompute = {"$$word_counts", "$$ranking"};
          }
        } else {
          for (const proto::PStateInfo& p : infos_[module].pstates) recompute.push_back(p.name);
        }
        break;
      case Op::kRescale: {
        module = "bank";
        auto it = std::find(kRescaleTargets.begin(), kRescaleTargets.end(), bank.partitions);
        partitions = it == kRescaleTargets.end() || it + 1 == kRescaleTargets.end()
                         ? kRescaleTargets[0]
                         : *(it + 1);
        next = {bank.build, bank.version + 1, partitions};
        break;
      }
    }
    pending_module_ = module;
    pending_ = next;
    pending_acknowledged_ = false;

    const auto started = Clock::now();
    while (!log.EveryModuleAcked(kLifecycleModules) &&
           Clock::now() < started + std::chrono::seconds(30) && log.errors().empty()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng_() % 300));

    // (No ASSERT from here until the threads are joined.)
    Wire op_wire;
    std::atomic<bool> op_returned{false};
    Status op_status = op_wire.Open(server_->port(), kOperationTimeout);
    const auto op_start = Clock::now();
    std::thread op_thread([&] {
      if (!op_status.ok()) {
        // Not connected: reported below.
      } else if (recompute.empty()) {
        op_status = op_wire.Update(next.build, drop, partitions).status();
      } else {
        op_status = op_wire.Recompute(module, recompute).status();
      }
      op_returned = true;
    });

    const int mode = static_cast<int>(rng_() % 8);
    const KillAt at = mode == 0 ? KillAt::kBefore : mode == 1 ? KillAt::kAfter : KillAt::kDuring;
    double& estimate = estimate_ms_[op];
    // The first guess: the migration's update call is short (its pass runs after it).
    if (estimate == 0) estimate = op == Op::kMigrateBank ? 60 : 400;
    std::chrono::milliseconds delay{0};
    if (at == KillAt::kBefore) {
      delay = std::chrono::milliseconds(rng_() % 3);
      std::this_thread::sleep_for(delay);
    } else if (at == KillAt::kDuring) {
      // A random moment within how long the operation took last time; watching it end
      // (the call returned, no rebuild running) keeps that estimate current.
      delay = std::chrono::milliseconds(rng_() % static_cast<uint64_t>(estimate + 1));
      bool ended = false;
      while (Clock::now() < op_start + delay) {
        if (!ended && op_returned) {
          auto stats = wire_->Stats();
          ended = stats.ok() &&
                  std::all_of(stats->modules.begin(), stats->modules.end(),
                              [](const proto::ModuleStats& m) { return m.rebuilds.empty(); });
          if (ended) estimate = 0.5 * estimate + 0.5 * 1000 * SecondsSince(op_start);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      // Still running: it takes longer now (a rescale or rebuild grows with the depots).
      // (Doubling the moment found still running makes the estimate overtake it within a
      // few rounds, so some kills land after the switch of a long rescale too.)
      if (!ended) estimate = std::max(estimate, 2.0 * static_cast<double>(delay.count()));
    } else {
      while (!op_returned && Clock::now() < op_start + kOperationTimeout) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      EXPECT_TRUE(op_returned) << "round " << round << ": " << OpName(op) << " did not return";
      if (op_returned && op_status.ok()) WaitNoRebuilds();  // a failure is recorded
      estimate = 0.5 * estimate + 0.5 * 1000 * SecondsSince(op_start);
      std::this_thread::sleep_for(delay = std::chrono::milliseconds(rng_() % 100));
    }
    // Where the kill lands (for the tally; Stats answers while the operation runs).
    const char* landed = "before the call returned";
    if (op_returned) {
      landed = "after it was done";
      auto stats = wire_->Stats();
      if (stats.ok()) {
        for (const proto::ModuleStats& m : stats->modules) {
          if (!m.rebuilds.empty()) landed = "during its background rebuild";
        }
      }
    }
    const bool returned = op_returned;
    killed = true;
    server_->Stop(SIGKILL);
    op_thread.join();
    clients.Join();
    const char* at_name = at == KillAt::kBefore  ? "before"
                          : at == KillAt::kAfter ? "after"
                                                 : "during";
    ++tally_[{op, Cat("kill ", at_name, ": ", landed)}];

    if (returned && op_status.ok()) {
      pending_acknowledged_ = true;
    } else if (!op_status.ok() && !(op_status.code() == StatusCode::kIOError && killed)) {
      ADD_FAILURE() << "round " << round << ": " << OpName(op) << " " << module << ": "
                    << op_status.ToString();
    }

    std::vector<Ack> acks = log.TakeAcks();
    std::map<std::string, int> per_module;
    for (const Ack& a : acks) ++per_module[a.module];
    std::cout << "[ round " << round << "  ] " << OpName(op) << " " << module << " -> version "
              << next.version << " (" << next.build.substr(next.build.rfind('/') + 1) << ", "
              << next.partitions << " partitions); kill -9 " << at_name << " (" << delay.count()
              << " ms, " << landed << ", call " << (returned ? op_status.ToString() : "in flight")
              << "); acknowledged wordcount " << per_module["wordcount"] << " bank "
              << per_module["bank"] << std::endl;
    for (const std::string& e : log.errors()) ADD_FAILURE() << "round " << round << ": " << e;
    for (const std::string& m : kLifecycleModules) {
      EXPECT_GT(per_module[m], 0) << "round " << round << ": no " << m
                                  << " record was acknowledged";
    }
    acks_.insert(acks_.end(), std::make_move_iterator(acks.begin()),
                 std::make_move_iterator(acks.end()));
  }

  // The checks of the file comment for the lifecycle rounds, against the restarted server.
  void CheckLifecycle(int round) {
    const auto start = Clock::now();
    ASSERT_NO_FATAL_FAILURE(WaitCaughtUp());
    ASSERT_NO_FATAL_FAILURE(WaitNoRebuilds());
    ASSERT_NO_FATAL_FAILURE(WaitCaughtUp());

    // One whole version of each module: the one before the round's operation or the one
    // after it (only that one once the call was acknowledged).
    for (const std::string& name : kLifecycleModules) {
      EX_ASSIGN_OR_FAIL(proto::ModuleInfo info, wire_->Describe(name));
      ASSERT_EQ(info.load_error, "") << "round " << round << ": " << name;
      Deployed& now = deployed_[name];
      if (pending_module_ == name && pending_.has_value() && info.version == pending_->version) {
        now = *pending_;
      } else if (pending_module_ == name && pending_acknowledged_) {
        ADD_FAILURE() << "round " << round << ": " << name << " is at version " << info.version
                      << " after the acknowledged update to version " << pending_->version;
      }
      ASSERT_EQ(info.version, now.version) << "round " << round << ": " << name;
      ASSERT_EQ(info.partitions, now.partitions) << "round " << round << ": " << name;
      infos_[name] = info;
    }
    pending_.reset();
    pending_module_.clear();

    // The depots over the wire.
    DepotsRead depots;
    size_t depot_records = 0;
    for (const std::string& name : kLifecycleModules) {
      ASSERT_NO_FATAL_FAILURE(ReadModuleDepots(infos_[name], &depots, &depot_records));
    }

    // wordcount is never rescaled: every acknowledged sentence is where its ack put it.
    const auto& sentences = depots[{"wordcount", "*sentences"}];
    for (const Ack& ack : acks_) {
      if (ack.module != "wordcount") continue;
      ASSERT_TRUE(ack.partition >= 0 && ack.partition < static_cast<int>(sentences.size()) &&
                  ack.offset >= 0 &&
                  ack.offset < static_cast<int64_t>(sentences[ack.partition].size()))
          << "round " << round << ": acknowledged sentence lost: " << ack.partition << "/"
          << ack.offset << " " << ack.record.ToString();
      ASSERT_EQ(sentences[ack.partition][ack.offset].record, ack.record)
          << "round " << round << ": *sentences " << ack.partition << "/" << ack.offset;
    }

    // bank is rescaled, which renumbers offsets: each record is at the partition its key
    // hashes to among the current count, every key's records of the last check are still
    // the first ones of its records in order, and every acknowledged record is among them,
    // in the order of the acks (one thread appends each key).
    for (const char* depot : {"*deposits", "*transfers"}) {
      const auto& partitions = depots[{"bank", depot}];
      std::map<Value, std::vector<Value>> by_key;
      for (size_t p = 0; p < partitions.size(); ++p) {
        for (const DepotEntry& r : partitions[p]) {
          const Value key = BankKey(depot, r.record);
          ASSERT_EQ(HashKey(key) % partitions.size(), p)
              << "round " << round << ": bank " << depot << " record " << r.record.ToString()
              << " is in partition " << p << " of " << partitions.size();
          by_key[key].push_back(r.record);
        }
      }
      for (const auto& [key, before] : bank_keys_[depot]) {
        const std::vector<Value>& now = by_key[key];
        ASSERT_TRUE(now.size() >= before.size() &&
                    std::equal(before.begin(), before.end(), now.begin()))
            << "round " << round << ": bank " << depot << " key " << key.ToString() << " had "
            << before.size() << " records at the last check, now " << now.size()
            << " not starting with them";
      }
      std::map<Value, size_t> matched;  // per key: records of by_key[key] matched so far
      for (const Ack& ack : acks_) {
        if (ack.module != "bank" || ack.depot != depot) continue;
        const Value key = BankKey(depot, ack.record);
        const std::vector<Value>& records = by_key[key];
        size_t& next_record = matched[key];
        while (next_record < records.size() && records[next_record] != ack.record) ++next_record;
        ASSERT_LT(next_record, records.size())
            << "round " << round << ": acknowledged bank " << depot << " record lost or out of "
            << "order: " << ack.record.ToString();
        ++next_record;
      }
      bank_keys_[depot] = std::move(by_key);
    }

    // The views against their recomputation with the deployed build and partition count,
    // which also has exactly the deployed declarations.
    TempDir fresh_dir;
    EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> fresh, examples_test::OpenEngine(fresh_dir.path()));
    auto recompute = [&](const std::string& module, const std::vector<std::string>& order) {
      DepotSource source = SourceFrom(depots, module);
      const Deployed& d = deployed_[module];
      return examples_test::RecomputeFromBuild(source, d.build, d.partitions, *fresh, module,
                                               order);
    };
    EX_ASSERT_OK(recompute("wordcount", {"*sentences"}));
    EX_ASSERT_OK(recompute("bank", {"*deposits", "*transfers"}));
    for (const std::string& name : kLifecycleModules) {
      EX_ASSIGN_OR_FAIL(ModuleInfo expected, fresh->Describe(name));
      ASSERT_NO_FATAL_FAILURE(ExpectDeclarations(round, expected, infos_[name]));
    }

    const int bank_partitions = deployed_["bank"].partitions;
    EX_ASSIGN_OR_FAIL(ModuleInfo bank, fresh->Describe("bank"));
    int64_t deposited = 0;
    for (const auto& partition : depots[{"bank", "*deposits"}]) {
      for (const DepotEntry& r : partition) deposited += Field(r.record, "amount").as_int();
    }
    const bool bank_v2 = deployed_["bank"].build == examples_test::ModulePath("bank_v2");
    for (const PStateInfo& p : bank.pstates) {
      EX_ASSIGN_OR_FAIL(PStateDump live, DumpOverWire("bank", p, bank_partitions));
      EX_ASSIGN_OR_FAIL(PStateDump recomputed, examples_test::DumpPState(*fresh, "bank", p.name));
      EXPECT_TRUE(examples_test::DumpsEqual(live, recomputed))
          << "round " << round << ": bank " << p.name;
      if (p.name != "$$balances") continue;
      int64_t total = 0;
      for (const std::vector<Value>& partition : live) {
        for (const Value& root : partition) {
          if (!root.is_map()) continue;
          for (const auto& [account, balance] : root.as_map()) {
            // Version 2 migrated every balance to {amount, currency}.
            ASSERT_EQ(balance.is_map(), bank_v2)
                << "round " << round << ": account " << account.ToString() << " balance "
                << balance.ToString();
            const int64_t amount = bank_v2 ? Field(balance, "amount").as_int() : balance.as_int();
            EXPECT_GE(amount, 0) << "account " << account.ToString();
            total += amount;
          }
        }
      }
      EXPECT_EQ(total, deposited) << "round " << round
                                  << ": the balances do not add up to the deposits";
    }

    // Counting is not idempotent: no count is below its recomputation.
    EX_ASSIGN_OR_FAIL(ModuleInfo wordcount, fresh->Describe("wordcount"));
    int64_t recounted = 0;
    std::map<std::string, PStateDump> wordcount_dumps;
    for (const PStateInfo& p : wordcount.pstates) {
      EX_ASSIGN_OR_FAIL(PStateDump dump,
                        DumpOverWire("wordcount", p, deployed_["wordcount"].partitions));
      wordcount_dumps[p.name] = dump;
      if (p.name == "$$ranking") continue;  // a set, checked against the counts below
      EX_ASSIGN_OR_FAIL(auto live_counts, examples_test::IntMapOf(dump, p.name));
      EX_ASSIGN_OR_FAIL(auto recomputed_counts,
                        examples_test::CollectIntMap(*fresh, "wordcount", p.name));
      for (const auto& [key, n] : recomputed_counts) {
        auto live = live_counts.find(key);
        ASSERT_NE(live, live_counts.end())
            << "round " << round << ": " << p.name << " " << key.ToString() << " missing";
        EXPECT_GE(live->second, n) << "round " << round << ": " << p.name << " " << key.ToString();
        recounted += live->second - n;
      }
      EXPECT_EQ(live_counts.size(), recomputed_counts.size())
          << "round " << round << ": " << p.name;
    }
    // $$ranking is written in the transactions of the counts: exactly [-count, word] for
    // each live count, on every partition.
    EX_ASSIGN_OR_FAIL(auto counts,
                      examples_test::IntMapOf(wordcount_dumps["$$word_counts"], "$$word_counts"));
    std::set<Value> expected_ranking, ranking;
    for (const auto& [word, n] : counts) expected_ranking.insert(Value::ListOf({-n, word}));
    for (const std::vector<Value>& partition : wordcount_dumps["$$ranking"]) {
      for (const Value& set : partition) {
        if (set.is_set()) ranking.insert(set.as_set().begin(), set.as_set().end());
      }
    }
    EXPECT_TRUE(ranking == expected_ranking)
        << "round " << round << ": $$ranking holds " << ranking.size() << " entries for "
        << counts.size() << " counts, or others";
    std::cout << "[ check " << round << "  ] wordcount version " << infos_["wordcount"].version
              << " (" << wordcount.pstates.size() << " PStates), bank version "
              << infos_["bank"].version << " (" << (bank_v2 ? "v2" : "v1") << ", "
              << bank_partitions << " partitions); " << acks_.size() << " acks in " << depot_records
              << " depot records; " << deposited << " deposited; wordcount replays recounted "
              << recounted << "; " << SecondsSince(start) << " s" << std::endl;
  }

  // The served module declares exactly what the build deployed in the oracle declares.
  void ExpectDeclarations(int round, const ModuleInfo& expected, const proto::ModuleInfo& live) {
    std::vector<std::string> want, have;
    for (const DepotInfo& d : expected.depots) want.push_back("depot " + d.name);
    for (const PStateInfo& p : expected.pstates) {
      want.push_back("pstate " + p.name + " " + p.schema.ToValue().ToString());
    }
    for (const TopologyInfo& t : expected.topologies) want.push_back("topology " + t.name);
    for (const proto::DepotInfo& d : live.depots) have.push_back("depot " + d.name);
    for (const proto::PStateInfo& p : live.pstates) {
      have.push_back("pstate " + p.name + " " + p.schema.ToString());
    }
    for (const proto::TopologyInfo& t : live.topologies) have.push_back("topology " + t.name);
    std::sort(want.begin(), want.end());
    std::sort(have.begin(), have.end());
    EXPECT_EQ(have, want) << "round " << round << ": " << live.name << " version " << live.version
                          << " does not declare what its build does";
  }

  std::map<std::string, Deployed> deployed_;  // per module, as of the last check
  // The round's operation: the module and what it runs once the operation is committed.
  std::string pending_module_;
  std::optional<Deployed> pending_;
  bool pending_acknowledged_ = false;               // the call returned OK before the kill
  std::map<std::string, proto::ModuleInfo> infos_;  // Describe at the last check
  // Per bank depot and key, its records in order at the last check.
  std::map<std::string, std::map<Value, std::vector<Value>>> bank_keys_;
  int recomputes_ = 0;
  std::map<Op, double> estimate_ms_;  // how long an operation took (call and rebuild), smoothed
  std::map<std::pair<Op, std::string>, int> tally_;  // rounds per operation and kill moment
};

// Rounds per operation kind: STRATA_CRASH_ROUNDS when set (`make crash-test ROUNDS=N`), else 1.
int LifecycleRoundsPerKind() {
  const char* env = std::getenv("STRATA_CRASH_ROUNDS");
  return env != nullptr && *env != '\0' ? std::max(std::atoi(env), 1) : 1;
}

TEST_F(LifecycleCrashTest, LifecycleOperationsSurviveKill9) {
  const int per_kind = LifecycleRoundsPerKind();
  std::vector<Op> ops;
  for (int k = 0; k < per_kind; ++k) {
    ops.push_back(Op::kUpdateWordcount);
    if (k == 0) ops.push_back(Op::kMigrateBank);
    ops.push_back(Op::kRecompute);
    ops.push_back(Op::kRescale);
  }
  std::cout << "[ rounds   ] " << ops.size() << ": " << per_kind
            << " per operation kind and the bank migration (set STRATA_CRASH_ROUNDS to change it)"
            << std::endl;
  const auto start = Clock::now();
  int migration_tries = 0;
  for (size_t round = 0; round <= ops.size(); ++round) {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(DeployLifecycleModules());
    } else {
      ASSERT_NO_FATAL_FAILURE(CheckLifecycle(static_cast<int>(round) - 1));
      // The migration is exercised until one round commits it.
      if (ops[round - 1] == Op::kMigrateBank &&
          deployed_["bank"].build != examples_test::ModulePath("bank_v2")) {
        ASSERT_LT(++migration_tries, 10) << "the bank migration never committed";
        ops.insert(ops.begin() + static_cast<std::ptrdiff_t>(round), Op::kMigrateBank);
      }
    }
    if (round == ops.size()) break;
    ASSERT_NO_FATAL_FAILURE(RunLifecycleRound(static_cast<int>(round), ops[round]));
    if (rng_() % 4 == 0) {
      ASSERT_NO_FATAL_FAILURE(KillDuringRecovery());
    }
  }
  std::cout << "[ done     ] " << ops.size() << " rounds, " << acks_.size()
            << " acknowledged records, " << SecondsSince(start) << " s; kills:" << std::endl;
  for (const auto& [key, n] : tally_) {
    std::cout << "             " << OpName(key.first) << ", " << key.second << ": " << n
              << std::endl;
  }
}

// ---- The microbatch rounds -------------------------------------------------------------

const std::vector<std::string> kMicrobatchModules = {"mbbank", "topwords", "auction"};
constexpr int kMicrobatchDefaultRounds = 3;  // `make test`; `make crash-test` runs ROUNDS
constexpr int kMbbankThreads = 2;
constexpr int kMbbankAccounts = 6;  // shared by every thread: transfers compete for money
constexpr int kTopwordsThreads = 2;
constexpr size_t kVocabulary = 300;  // more than the top 100, with ties near the cut
constexpr int64_t kTopWords = 100;   // examples/topwords keeps the 100 most frequent words
const Value kGhostAuction("ghost");  // bids on it are refused: no auction has this id

// Sentences in bulk, so that batches are large and a kill finds one running: 150 sentences
// per `processed` append, and every fourth append 750 with ack `appended` (a backlog the
// next batches take up). Words are drawn with a weight about 1/rank from kVocabulary. The
// first sentence of a processed append also holds a word of its own ("tag" and 64 random
// bits), whose count must be 1 once the append returned (the ack waits for the batch to
// commit on the word's partition).
void TopwordsLoop(ClientContext& c) {
  const std::vector<std::string> separators = {" ", ", ", "! ", "\t", " -- "};
  for (int append = 0;; ++append) {
    const bool bulk = append % 4 == 3;
    const std::string tag = Cat("tag", c.rng());
    std::vector<Value> sentences;
    for (int s = 0; s < (bulk ? 750 : 150); ++s) {
      std::string text;
      for (int w = static_cast<int>(c.rng() % 12); w > 0; --w) {
        const double u = std::uniform_real_distribution<double>(0, 1)(c.rng);
        const auto rank = static_cast<size_t>(std::pow(static_cast<double>(kVocabulary), u));
        std::string word = Cat("w", std::min(rank, kVocabulary) - 1);
        if (c.rng() % 5 == 0) word[0] = 'W';
        text += word + separators[c.rng() % separators.size()];
      }
      if (!bulk && s == 0) text += tag;
      sentences.push_back(Value(text));
    }
    if (!c.Append("topwords", "*sentences", std::move(sentences),
                  bulk ? proto::AckLevel::kAppended : proto::AckLevel::kProcessed)) {
      return;
    }
    if (bulk) continue;
    Value count;
    if (!c.SelectOne("topwords", "$$word_counts", Path().Key(tag), &count)) return;
    if (count != Value(1)) {
      c.log->Error("topwords: after a processed ack $$word_counts of " + tag + " is " +
                   count.ToString() + ", not 1");
    }
  }
}

// Deposits and transfers among kMbbankAccounts accounts, from every thread at once.
// Transfer amounts are log-uniform from 1 to 10^7, so that as deposits add up some
// transfers are still refused; one in twenty is sent twice (a client retry: the same id,
// decided once). 100 transfers per `processed` append, every fourth append 500 with ack
// `appended`. After each processed append one of its transfers must already be decided.
void MbbankLoop(ClientContext& c, int thread) {
  int64_t n = 0;
  auto account = [&] { return static_cast<int>(c.rng() % kMbbankAccounts); };
  for (int append = 0;; ++append) {
    std::vector<Value> deposits;
    for (int i = 0; i < 20; ++i) {
      deposits.push_back(Value::MapOf(
          {{"account", Cat("m", account())}, {"amount", static_cast<int64_t>(1 + c.rng() % 100)}}));
    }
    if (!c.Append("mbbank", "*deposits", std::move(deposits))) return;
    const bool bulk = append % 4 == 3;
    std::vector<Value> transfers;
    for (int i = 0; i < (bulk ? 500 : 100); ++i) {
      const int from = account();
      const int to =
          (from + 1 + static_cast<int>(c.rng() % (kMbbankAccounts - 1))) % kMbbankAccounts;
      const double u = std::uniform_real_distribution<double>(0, 7)(c.rng);
      Value t = Value::MapOf({{"id", Cat("r", c.round, "-", thread, "-", n++)},
                              {"from", Cat("m", from)},
                              {"to", Cat("m", to)},
                              {"amount", static_cast<int64_t>(std::pow(10.0, u))}});
      transfers.push_back(t);
      if (c.rng() % 20 == 0) transfers.push_back(t);
    }
    const Value probe = transfers[c.rng() % transfers.size()];
    if (!c.Append("mbbank", "*transfers", std::move(transfers),
                  bulk ? proto::AckLevel::kAppended : proto::AckLevel::kProcessed)) {
      return;
    }
    if (bulk) continue;
    const Path key = Path().Key(Field(probe, "from"), Field(probe, "id"));
    Value applied, rejected;
    if (!c.SelectOne("mbbank", "$$applied", key, &applied)) return;
    if (!c.SelectOne("mbbank", "$$rejected", key, &rejected)) return;
    if (applied.is_nil() == rejected.is_nil()) {
      c.log->Error("mbbank: after a processed ack transfer " + probe.ToString() +
                   " is in $$applied as " + applied.ToString() + " and in $$rejected as " +
                   rejected.ToString());
    }
  }
}

// Milliseconds since the epoch by the wall clock: the time of the module's ticks.
int64_t WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Auctions that end 200 to 1500 ms after they are created (ends_at_ms by the wall clock,
// which the module's ticks carry), and bids on them. Every other append creates 4 auctions
// (`processed`; then the first must be in $$auctions: the ack waits for its batch); the
// others bid 40 times (every third time 200 bids with ack `appended`) on the auctions this
// client created that have not ended, or ended less than 300 ms ago, by its clock — around
// the closing tick, so that some are accepted after the end and some refused after the
// close — with amounts from 1 to 300 (ties happen) from 12 bidders, one bid in 25 on
// kGhostAuction. A bid only names an auction whose append was acknowledged, so in its
// *bids partition an auction's accepted bids precede its refused ones.
void AuctionLoop(ClientContext& c) {
  int64_t n = 0;
  std::vector<std::pair<Value, int64_t>> open;  // id, ends_at_ms
  for (int append = 0;; ++append) {
    const int64_t now = WallClockMs();
    std::erase_if(open, [now](const auto& a) { return a.second + 300 <= now; });
    if (append % 2 == 0 || open.empty()) {
      std::vector<Value> auctions;
      for (int i = 0; i < 4; ++i) {
        Value id(Cat("a", c.round, "-", n++));
        const int64_t ends_at = now + 200 + static_cast<int64_t>(c.rng() % 1300);
        auctions.push_back(
            Value::MapOf({{"id", id}, {"ends_at_ms", ends_at}, {"seller", Cat("s", c.rng() % 3)}}));
        open.emplace_back(std::move(id), ends_at);
      }
      const Value first = Field(auctions[0], "id");
      if (!c.Append("auction", "*auctions", std::move(auctions))) return;
      Value stored;
      if (!c.SelectOne("auction", "$$auctions", Path().Key(first), &stored)) return;
      if (stored.is_nil()) {
        c.log->Error("auction: after a processed ack auction " + first.ToString() +
                     " is not in $$auctions");
      }
      continue;
    }
    const bool bulk = append % 6 == 5;
    std::vector<Value> bids;
    for (int i = 0; i < (bulk ? 200 : 40); ++i) {
      const Value& id = c.rng() % 25 == 0 ? kGhostAuction : open[c.rng() % open.size()].first;
      bids.push_back(Value::MapOf({{"auction", id},
                                   {"bidder", Cat("b", c.rng() % 12)},
                                   {"amount", static_cast<int64_t>(1 + c.rng() % 300)}}));
    }
    if (!c.Append("auction", "*bids", std::move(bids),
                  bulk ? proto::AckLevel::kAppended : proto::AckLevel::kProcessed)) {
      return;
    }
  }
}

// A PState map<k, v> (auction's views), merged over its partitions: k -> v.
Result<std::map<Value, Value>> OneLevelMapOf(const PStateDump& dump, const std::string& pstate) {
  std::map<Value, Value> out;
  for (const std::vector<Value>& partition : dump) {
    for (const Value& root : partition) {
      if (root.is_nil()) continue;
      if (!root.is_map()) return Status::Internal(pstate + ": root " + root.ToString());
      for (const auto& [k, v] : root.as_map()) {
        if (!out.emplace(k, v).second) {
          return Status::Internal(pstate + ": " + k.ToString() + " on two partitions");
        }
      }
    }
  }
  return out;
}

// The keys whose values differ between two int maps, as "key: live vs expected" lines
// (at most 10, then how many more); empty when the maps are equal.
std::string IntMapDiff(const std::map<Value, int64_t>& live,
                       const std::map<Value, int64_t>& expected) {
  std::map<Value, std::pair<std::optional<int64_t>, std::optional<int64_t>>> both;
  for (const auto& [k, v] : live) both[k].first = v;
  for (const auto& [k, v] : expected) both[k].second = v;
  std::string out;
  int differing = 0;
  auto text = [](const std::optional<int64_t>& v) {
    return v.has_value() ? std::to_string(*v) : std::string("absent");
  };
  for (const auto& [k, v] : both) {
    if (v.first == v.second) continue;
    if (++differing <= 10) {
      out += "\n  " + k.ToString() + ": " + text(v.first) + " vs " + text(v.second);
    }
  }
  if (differing > 10) out += Cat("\n  ... ", differing - 10, " more");
  return out;
}

class MicrobatchCrashTest : public CrashTest {
 protected:
  MicrobatchCrashTest() { tick_depots_.insert({"auction", "*ticks"}); }

  void DeployMicrobatchModules() {
    for (const std::string& name : kMicrobatchModules) {
      EX_ASSIGN_OR_FAIL(proto::ModuleInfo info,
                        wire_->Deploy(examples_test::ModulePath(name), partitions_));
      ASSERT_EQ(info.name, name);
    }
  }

  static void AddClients(RoundClients& clients) {
    for (int t = 0; t < kTopwordsThreads; ++t) clients.Add(TopwordsLoop);
    for (int t = 0; t < kMbbankThreads; ++t) {
      clients.Add([t](ClientContext& c) { MbbankLoop(c, t); });
    }
    clients.Add(AuctionLoop);
  }

  // A PState of `module` over the wire (DumpOverWire) from its description.
  Result<PStateDump> DumpOverWire(const std::string& module, const proto::PStateInfo& p) {
    STRATA_ASSIGN_OR_RETURN(PStateSchema schema, PStateSchema::FromValue(p.schema));
    return CrashTest::DumpOverWire(module, PStateInfo{p.name, std::move(schema)});
  }

  // Every check of the file comment for the microbatch rounds, against the restarted server.
  void CheckMicrobatch(int round) {
    const auto start = Clock::now();
    ASSERT_NO_FATAL_FAILURE(WaitCaughtUp());
    EX_ASSIGN_OR_FAIL(proto::StatsResult stats, wire_->Stats());
    for (const proto::ModuleStats& m : stats.modules) {
      for (const proto::MicrobatchStats& mb : m.microbatches) {
        EXPECT_EQ(mb.stalled, "") << "round " << round << ": " << m.module << " " << mb.topology;
      }
    }

    std::map<std::string, proto::ModuleInfo> infos;
    for (const std::string& name : kMicrobatchModules) {
      EX_ASSIGN_OR_FAIL(infos[name], wire_->Describe(name));
      ASSERT_EQ(infos[name].partitions, partitions_) << name;
    }
    // From now on ticks change no view: the depots read next hold every closing tick, and
    // the oracle's dumps cannot differ by a close.
    ASSERT_NO_FATAL_FAILURE(WaitAuctionsClosed(round, infos["auction"]));

    DepotsRead depots;
    size_t depot_records = 0;
    for (const std::string& name : kMicrobatchModules) {
      ASSERT_NO_FATAL_FAILURE(ReadModuleDepots(infos[name], &depots, &depot_records));
    }
    ASSERT_NO_FATAL_FAILURE(CheckAcksInDepots(depots));
    ASSERT_NO_FATAL_FAILURE(CheckTopwords(round, infos["topwords"], depots));
    ASSERT_NO_FATAL_FAILURE(CheckMbbank(round, infos["mbbank"], depots));
    ASSERT_NO_FATAL_FAILURE(CheckAuction(round, infos["auction"], depots));
    ASSERT_NO_FATAL_FAILURE(CheckRecomputedEqual(round, infos));
    std::cout << "[ check " << round << "  ] " << acks_.size() << " acks in " << depot_records
              << " depot records; " << SecondsSince(start) << " s" << std::endl;
  }

  // Exactly-once: every view equals the fold of the sentences read back, counts included.
  void CheckTopwords(int round, const proto::ModuleInfo& info, const DepotsRead& depots) {
    std::map<Value, int64_t> counts, sentence_counts;
    size_t sentences = 0;
    for (const auto& partition : depots.at({"topwords", "*sentences"})) {
      for (const DepotEntry& r : partition) {
        ++sentences;
        std::vector<std::string> words = examples_test::SplitWords(r.record.as_string());
        for (const std::string& w : words) ++counts[Value(w)];
        for (const std::string& w : std::set<std::string>(words.begin(), words.end())) {
          ++sentence_counts[Value(w)];
        }
      }
    }
    // The top 100 by descending count, ties by ascending word (examples/topwords).
    const Value top = examples_test::TopCounts(counts, static_cast<size_t>(kTopWords));

    for (const proto::PStateInfo& p : info.pstates) {
      EX_ASSIGN_OR_FAIL(PStateDump dump, DumpOverWire("topwords", p));
      if (p.name == "$$top_words") {
        ASSERT_EQ(dump.size(), 1u);
        const Value root = dump[0].size() == 1 ? dump[0][0] : Value();
        EXPECT_EQ(Field(root, "all"), top)
            << "round " << round << ": $$top_words " << Field(root, "all").ToString()
            << "\nbrute-force top " << kTopWords << " of " << sentences
            << " sentences: " << top.ToString();
        continue;
      }
      EX_ASSIGN_OR_FAIL(auto live, examples_test::IntMapOf(dump, p.name));
      const auto& expected = p.name == "$$word_counts" ? counts : sentence_counts;
      EXPECT_EQ(IntMapDiff(live, expected), "")
          << "round " << round << ": topwords " << p.name << " (live vs the fold of " << sentences
          << " sentences)";
    }
  }

  // Money is conserved and each transfer decided once, its debit and credit applied once.
  void CheckMbbank(int round, const proto::ModuleInfo& info, const DepotsRead& depots) {
    std::map<Value, int64_t> deposited;
    int64_t total_deposited = 0;
    for (const auto& partition : depots.at({"mbbank", "*deposits"})) {
      for (const DepotEntry& r : partition) {
        const int64_t amount = Field(r.record, "amount").as_int();
        deposited[Field(r.record, "account")] += amount;
        total_deposited += amount;
      }
    }
    // The first record of each transfer id (a retry repeats it).
    std::map<std::pair<Value, Value>, Value> transfers;
    for (const auto& partition : depots.at({"mbbank", "*transfers"})) {
      for (const DepotEntry& r : partition) {
        transfers.emplace(std::make_pair(Field(r.record, "from"), Field(r.record, "id")), r.record);
      }
    }

    std::map<std::string, PStateDump> dumps;
    for (const proto::PStateInfo& p : info.pstates) {
      EX_ASSIGN_OR_FAIL(dumps[p.name], DumpOverWire("mbbank", p));
    }
    EX_ASSIGN_OR_FAIL(auto balances, examples_test::IntMapOf(dumps["$$balances"], "$$balances"));
    EX_ASSIGN_OR_FAIL(auto live_deposited,
                      examples_test::IntMapOf(dumps["$$deposited"], "$$deposited"));
    EX_ASSIGN_OR_FAIL(auto applied, examples_test::TwoLevelMapOf(dumps["$$applied"], "$$applied"));
    EX_ASSIGN_OR_FAIL(auto rejected,
                      examples_test::TwoLevelMapOf(dumps["$$rejected"], "$$rejected"));

    int64_t total = 0;
    for (const auto& [account, balance] : balances) {
      EXPECT_GE(balance, 0) << "round " << round << ": account " << account.ToString();
      total += balance;
    }
    EXPECT_EQ(total, total_deposited)
        << "round " << round << ": the balances do not add up to the deposits";
    EXPECT_EQ(IntMapDiff(live_deposited, deposited), "")
        << "round " << round << ": mbbank $$deposited (live vs the sum of the deposits)";

    // Each transfer id in exactly one of $$applied / $$rejected, and nothing else there.
    int undecided = 0, twice = 0;
    std::map<Value, int64_t> expected_balances = deposited;
    for (const auto& [key, record] : transfers) {
      auto a = applied.find(key);
      auto r = rejected.find(key);
      const bool in_applied = a != applied.end(), in_rejected = r != rejected.end();
      if (in_applied == in_rejected) {
        if (++(in_applied ? twice : undecided) <= 5) {
          ADD_FAILURE() << "round " << round << ": transfer " << record.ToString() << " is "
                        << (in_applied ? "in both $$applied and $$rejected" : "in neither")
                        << " of $$applied and $$rejected";
        }
        continue;
      }
      if (!in_applied) continue;
      EXPECT_EQ(a->second,
                Value::MapOf({{"to", Field(record, "to")}, {"amount", Field(record, "amount")}}))
          << "round " << round << ": $$applied of transfer " << record.ToString();
      const int64_t amount = Field(record, "amount").as_int();
      expected_balances[Field(record, "from")] -= amount;
      expected_balances[Field(record, "to")] += amount;
    }
    EXPECT_EQ(undecided + twice, 0) << "round " << round << ": " << undecided
                                    << " transfers undecided, " << twice << " decided twice";
    for (const auto* decided : {&applied, &rejected}) {
      for (const auto& [key, value] : *decided) {
        EXPECT_TRUE(transfers.count(key) == 1)
            << "round " << round << ": " << (decided == &applied ? "$$applied" : "$$rejected")
            << " holds " << key.first.ToString() << "/" << key.second.ToString()
            << ", no transfer of the depot";
      }
    }
    // Every applied transfer debited once and credited once.
    EXPECT_EQ(IntMapDiff(balances, expected_balances), "")
        << "round " << round << ": mbbank $$balances (live vs deposits and applied transfers)";
    applied_ = applied.size();
    rejected_ = rejected.size();
    std::cout << "[ mbbank " << round << " ] " << total_deposited << " deposited over "
              << balances.size() << " accounts; " << transfers.size()
              << " transfer ids: " << applied.size() << " applied, " << rejected.size()
              << " rejected" << std::endl;
  }

  // A PState of `info` by name, over the wire.
  Result<PStateDump> DumpByName(const proto::ModuleInfo& info, const std::string& pstate) {
    for (const proto::PStateInfo& p : info.pstates) {
      if (p.name == pstate) return DumpOverWire(info.name, p);
    }
    return Status::NotFound(info.name + " has no PState " + pstate);
  }

  // Waits until every auction of *auctions (every one has ended: the clients are stopped
  // and none ends more than 1500 ms after its creation) has its outcome in $$winners.
  void WaitAuctionsClosed(int round, const proto::ModuleInfo& info) {
    EX_ASSIGN_OR_FAIL(auto read, wire_->ReadWholeDepot("auction", "*auctions", info.partitions));
    std::set<Value> ids;
    for (const auto& partition : read) {
      for (const proto::DepotRecord& r : partition) ids.insert(Field(r.value, "id"));
    }
    const auto deadline = Clock::now() + kCatchUpTimeout;
    for (;;) {
      EX_ASSIGN_OR_FAIL(PStateDump dump, DumpByName(info, "$$winners"));
      EX_ASSIGN_OR_FAIL(auto winners, OneLevelMapOf(dump, "$$winners"));
      size_t open = 0;
      for (const Value& id : ids) open += winners.count(id) == 0 ? 1 : 0;
      if (open == 0) return;
      ASSERT_LT(Clock::now(), deadline)
          << "round " << round << ": " << open << " of " << ids.size()
          << " auctions still open after " << kCatchUpTimeout.count() << " s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Every auction closed on a tick of *ticks at or after its end, with as winner the best
  // of the bids accepted before its close (examples/auction: highest amount, of equal
  // amounts the lowest offset); a bid is refused once its auction closed, so an auction's
  // accepted bids are the first ones of its *bids partition, all but $$refused_bids of it.
  void CheckAuction(int round, const proto::ModuleInfo& info, const DepotsRead& depots) {
    std::map<Value, Value> auctions;  // id -> its first record (ids are unique)
    for (const auto& partition : depots.at({"auction", "*auctions"})) {
      for (const DepotEntry& r : partition) auctions.emplace(Field(r.record, "id"), r.record);
    }
    std::map<Value, std::vector<const DepotEntry*>> bids_of;  // in offset order
    for (const auto& partition : depots.at({"auction", "*bids"})) {
      for (const DepotEntry& r : partition) bids_of[Field(r.record, "auction")].push_back(&r);
    }
    std::set<Value> ticks;
    for (const auto& partition : depots.at({"auction", "*ticks"})) {
      for (const DepotEntry& r : partition) ticks.insert(r.record);
    }

    std::map<std::string, std::map<Value, Value>> views;
    for (const char* name : {"$$auctions", "$$best_bids", "$$winners", "$$refused_bids"}) {
      EX_ASSIGN_OR_FAIL(PStateDump dump, DumpByName(info, name));
      EX_ASSIGN_OR_FAIL(views[name], OneLevelMapOf(dump, name));
    }
    EX_ASSIGN_OR_FAIL(PStateDump schedule, DumpByName(info, "$$schedule"));
    EX_ASSIGN_OR_FAIL(auto scheduled, OneLevelMapOf(schedule, "$$schedule"));
    EXPECT_TRUE(scheduled.empty()) << "round " << round << ": every auction closed, yet "
                                   << scheduled.begin()->first.ToString() << " is scheduled";
    auto view = [&](const char* name, const Value& id) {
      auto it = views[name].find(id);
      return it == views[name].end() ? Value() : it->second;
    };

    int wrong = 0;
    auto report = [&](const Value& id, const std::string& what) {
      if (++wrong <= 5) {
        ADD_FAILURE() << "round " << round << ": auction " << id.ToString() << ": " << what;
      }
    };
    int64_t accepted_bids = 0, refused_bids = 0, with_bidder = 0;
    for (const auto& [id, record] : auctions) {
      const Value winner = view("$$winners", id);
      const Value closed_at = Field(winner, "closed_at_ms");
      const Value expected_auction = Value::MapOf({{"ends_at_ms", Field(record, "ends_at_ms")},
                                                   {"seller", Field(record, "seller")},
                                                   {"status", "closed"}});
      if (view("$$auctions", id) != expected_auction) {
        report(id, "$$auctions holds " + view("$$auctions", id).ToString() + ", not " +
                       expected_auction.ToString());
      }
      if (!closed_at.is_int() || closed_at < Field(record, "ends_at_ms") ||
          ticks.count(closed_at) == 0) {
        report(id, "closed by " + winner.ToString() + ", not by a tick of *ticks at or after " +
                       Field(record, "ends_at_ms").ToString());
        continue;
      }
      const std::vector<const DepotEntry*>& bids = bids_of[id];
      const Value refused_value = view("$$refused_bids", id);
      const int64_t refused = refused_value.is_int() ? refused_value.as_int() : 0;
      if (refused < 0 || refused > static_cast<int64_t>(bids.size())) {
        report(id, Cat("$$refused_bids is ", refused, " of ", bids.size(), " bids"));
        continue;
      }
      const size_t accepted = bids.size() - static_cast<size_t>(refused);
      accepted_bids += static_cast<int64_t>(accepted);
      refused_bids += refused;
      const DepotEntry* best = nullptr;
      for (size_t i = 0; i < accepted; ++i) {
        if (best == nullptr ||
            Field(bids[i]->record, "amount").as_int() > Field(best->record, "amount").as_int()) {
          best = bids[i];
        }
      }
      Value expected_winner = Value::MapOf({{"closed_at_ms", closed_at}});
      Value expected_best;
      if (best != nullptr) {
        ++with_bidder;
        expected_winner = Value::MapOf({{"bidder", Field(best->record, "bidder")},
                                        {"amount", Field(best->record, "amount")},
                                        {"closed_at_ms", closed_at}});
        expected_best = Value::ListOf(
            {Field(best->record, "amount"), -best->offset, Field(best->record, "bidder")});
      }
      if (winner != expected_winner || view("$$best_bids", id) != expected_best) {
        report(id, Cat("$$winners ", winner.ToString(), " and $$best_bids ",
                       view("$$best_bids", id).ToString(), ", not ", expected_winner.ToString(),
                       " and ", expected_best.ToString(), " (the best of its first ", accepted,
                       " bids of ", bids.size(), ")"));
      }
    }
    // Nothing else in the views: no outcome or best bid of an unknown auction, and the
    // refused bids of an unknown auction are all of its bids.
    for (const char* name : {"$$auctions", "$$best_bids", "$$winners"}) {
      for (const auto& [id, value] : views[name]) {
        if (auctions.count(id) == 0) report(id, Cat("no such auction, yet in ", name));
      }
    }
    for (const auto& [id, n] : views["$$refused_bids"]) {
      if (auctions.count(id) == 0 && n != Value(static_cast<int64_t>(bids_of[id].size()))) {
        report(id, Cat("no such auction: $$refused_bids is ", n.ToString(), ", not ",
                       bids_of[id].size()));
      }
    }
    EXPECT_EQ(wrong, 0) << "round " << round << ": " << wrong << " auctions wrong";
    std::cout << "[ auction " << round << "] " << auctions.size() << " auctions closed on "
              << ticks.size() << " ticks, " << with_bidder << " with a winner; " << accepted_bids
              << " bids accepted, " << refused_bids << " refused after the close, "
              << bids_of[kGhostAuction].size() << " on no auction" << std::endl;
  }

  // The recompute oracle: every microbatch PState is dumped, recomputed by the server
  // (Recompute replays the recorded batch boundaries), and dumped again; the dumps must be
  // equal (equal Values).
  void CheckRecomputedEqual(int round, const std::map<std::string, proto::ModuleInfo>& infos) {
    std::map<std::pair<std::string, std::string>, PStateDump> before;
    for (const auto& [module, info] : infos) {
      std::vector<std::string> names;
      for (const proto::PStateInfo& p : info.pstates) {
        const std::pair<std::string, std::string> key(module, p.name);
        EX_ASSIGN_OR_FAIL(before[key], DumpOverWire(module, p));
        names.push_back(p.name);
      }
      EX_ASSIGN_OR_FAIL(proto::RecomputeStarted started, wire_->Recompute(module, names));
      ASSERT_EQ(started.pstates.size(), names.size()) << module;
    }
    ASSERT_NO_FATAL_FAILURE(WaitNoRebuilds());
    ASSERT_NO_FATAL_FAILURE(WaitCaughtUp());
    for (const auto& [module, info] : infos) {
      for (const proto::PStateInfo& p : info.pstates) {
        EX_ASSIGN_OR_FAIL(PStateDump after, DumpOverWire(module, p));
        EXPECT_TRUE(examples_test::DumpsEqual(before[{module, p.name}], after))
            << "round " << round << ": " << module << " " << p.name
            << " (live before the recompute, recomputed after)";
      }
    }
  }

  size_t applied_ = 0;   // $$applied entries at the last check
  size_t rejected_ = 0;  // $$rejected entries at the last check
};

TEST_F(MicrobatchCrashTest, BatchesAreAppliedExactlyOnceAcrossKill9) {
  const int rounds = Rounds(kMicrobatchDefaultRounds);
  std::cout << "[ rounds   ] " << rounds << " (set STRATA_CRASH_ROUNDS to change it)" << std::endl;
  const auto start = Clock::now();
  for (int round = 0; round <= rounds; ++round) {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(DeployMicrobatchModules());
    } else {
      ASSERT_NO_FATAL_FAILURE(CheckMicrobatch(round - 1));
    }
    if (round == rounds) break;
    ASSERT_NO_FATAL_FAILURE(RunRoundAndKill(round, kMicrobatchModules, AddClients));
    if (rng_() % 3 == 0) {
      ASSERT_NO_FATAL_FAILURE(KillDuringRecovery());
    }
  }
  // The workload decided transfers both ways (certain once it sent a thousand).
  if (applied_ + rejected_ >= 1000) {
    EXPECT_GT(applied_, 0u);
    EXPECT_GT(rejected_, 0u);
  }
  std::cout << "[ done     ] " << rounds << " rounds, " << acks_.size() << " acknowledged records, "
            << SecondsSince(start) << " s" << std::endl;
}

}  // namespace
}  // namespace strata::crash_test
