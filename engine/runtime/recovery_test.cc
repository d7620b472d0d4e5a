// At-least-once recovery by kill -9: a forked child opens the engine (never the parent
// before the last round), appends {k, n} records to *crash with processed acks and writes
// each acknowledged n to a pipe; the parent SIGKILLs it at random moments. Afterwards the
// parent opens the data directory, waits for processing and checks the oracle: every
// acknowledged record is in the depot, and each PState equals a recomputation from the
// depots (the idempotent sets exactly; the counter is never behind).
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/meta_tables.h"
#include "runtime/outbox.h"
#include "runtime/testing/engine_fixture.h"
#include "storage/storage.h"
#include "strata/key_codec.h"
#include "strata/testing/test_seed.h"
#include "strata/value_codec.h"

namespace strata {
namespace {

using testing::EngineFixture;
using testing::kPartitions;
using testing::KV;
using testing::Must;
using testing::SmallEngineOptions;

class RecoveryTest : public EngineFixture {};

constexpr int kRounds = 12;
constexpr int kKeys = 7;
constexpr int kBatch = 16;
constexpr uint64_t kDefaultSeed = 20261126;

std::string KeyOf(int64_t n) {
  std::string key = "k";  // appended, not "k" + ...: g++ 12 gives a false -Wrestrict there
  key += std::to_string(n % kKeys);
  return key;
}

// Runs in the child until killed: two threads append batches and report processed ones.
[[noreturn]] void AppendForever(const std::string& data_dir, int ack_fd, int64_t first_n) {
  Result<std::unique_ptr<Engine>> opened = Engine::Open(SmallEngineOptions(data_dir));
  if (!opened.ok()) {
    std::fprintf(stderr, "child: %s\n", opened.status().ToString().c_str());
    _exit(10);
  }
  std::unique_ptr<Engine> engine = std::move(opened).value();
  if (!engine->Describe("rt_test").ok() &&
      !engine->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions}).ok()) {
    _exit(11);
  }
  std::atomic<int64_t> next{first_n};
  auto producer = [&] {
    for (;;) {
      std::vector<Value> batch;
      std::vector<int64_t> ns;
      for (int i = 0; i < kBatch; ++i) {
        const int64_t n = next.fetch_add(1);
        ns.push_back(n);
        batch.push_back(Value::MapOf({{"k", KeyOf(n)}, {"n", n}}));
      }
      Result<std::vector<AppendResult>> r =
          engine->AppendBatch("rt_test", "*crash", std::move(batch));
      if (!r.ok()) _exit(12);
      for (const AppendResult& a : *r) {
        if (!a.failure.ok()) _exit(13);
      }
      // One write per batch: atomic (< PIPE_BUF).
      if (write(ack_fd, ns.data(), ns.size() * sizeof(int64_t)) < 0) _exit(14);
    }
  };
  std::thread other(producer);
  producer();
  other.join();
  _exit(15);
}

TEST_F(RecoveryTest, Kill9ResumesEveryTopologyFromItsProgress) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::set<int64_t> acked;
  // Deployed once up front: creating the module's tables can take longer than a round on a
  // loaded machine, and a round killed during every Deploy would test nothing.
  ASSERT_NO_FATAL_FAILURE(Open());
  engine_.reset();
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      AppendForever(data_dir(), fds[1], int64_t{round} * 1'000'000);
    }
    close(fds[1]);
    std::vector<int64_t> buffer(4096);
    auto drain = [&](int timeout_ms) {
      pollfd pfd{fds[0], POLLIN, 0};
      if (poll(&pfd, 1, timeout_ms) <= 0) return false;
      const ssize_t got = read(fds[0], buffer.data(), buffer.size() * sizeof(int64_t));
      if (got <= 0) return false;
      for (ssize_t i = 0; i < got / static_cast<ssize_t>(sizeof(int64_t)); ++i)
        acked.insert(buffer[i]);
      return true;
    };
    // Every third round dies at a random moment of open and replay; the others once the
    // child acknowledged its first batch (it is appending), a random moment later. So at
    // least 8 batches are acknowledged however slow the machine is.
    if (round % 3 != 0) {
      const size_t before = acked.size();
      const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (acked.size() == before && std::chrono::steady_clock::now() < limit) drain(5);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(rng() % 700);
    while (std::chrono::steady_clock::now() < deadline) drain(5);
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "child exited with " << WEXITSTATUS(status) << " in round " << round;
    while (drain(0)) {
    }
    close(fds[0]);
  }
  std::printf("%zu records acknowledged over %d rounds\n", acked.size(), kRounds);
  ASSERT_GT(acked.size(), 100u) << "too few acknowledged records to test anything";

  Open();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  // The recomputation: a fold of the depots.
  std::map<std::string, std::set<int64_t>> crash_sets;
  std::map<std::string, int64_t> crash_counts;
  std::map<std::string, std::set<int64_t>> derived_sets;
  std::set<int64_t> in_depot;
  for (int p = 0; p < kPartitions; ++p) {
    for (const DepotEntry& e :
         Must(engine_->ReadDepot("rt_test", "*crash", p, 0, INT64_MAX, 1 << 30))) {
      const int64_t n = e.record.Find("n")->as_int();
      in_depot.insert(n);
      crash_sets[KeyOf(n)].insert(n);
      ++crash_counts[KeyOf(n)];
    }
    for (const DepotEntry& e :
         Must(engine_->ReadDepot("rt_test", "*derived", p, 0, INT64_MAX, 1 << 30))) {
      derived_sets[e.record.Find("k")->as_string()].insert(e.record.Find("n")->as_int());
    }
  }
  for (int64_t n : acked)
    ASSERT_TRUE(in_depot.count(n)) << "acknowledged record " << n << " is lost";
  for (const auto& [k, ns] : crash_sets) {
    Value expected = Value::EmptySet();
    for (int64_t n : ns) expected.Add(n);
    EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$crash_sets", Path().Key(k))), expected) << k;
    // Every processed record appended its derived record, at least once.
    EXPECT_EQ(derived_sets[k], ns) << k;
    EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$derived_sets", Path().Key(k))), expected) << k;
    const int64_t count =
        Must(engine_->SelectOne("rt_test", "$$crash_counts", Path().Key(k))).as_int();
    EXPECT_GE(count, crash_counts[k]) << "the counter of " << k << " is behind its recomputation";
  }
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 0);
  for (const TopologyPartitionStats& t : stats.topologies) EXPECT_EQ(t.lag, 0) << t.topology;
}

// ---- Destroy under kill -9 --------------------------------------------------------------------

constexpr int kKvRecords = 200;

// Appends kKvRecords records to *kv with processed acks (the child's setup); exits on error.
void AppendKvOrExit(Engine& engine) {
  std::vector<Value> batch;
  for (int i = 0; i < kKvRecords; ++i) {
    std::string key = "k";  // appended: g++ 12 gives a false -Wrestrict for "k" + ...
    key += std::to_string(i % 10);
    batch.push_back(KV(key, i));
  }
  Result<std::vector<AppendResult>> r = engine.AppendBatch("rt_test", "*kv", std::move(batch));
  if (!r.ok()) _exit(21);
}

// The module's tables and files as the storage sees them (the engine must be closed).
std::vector<std::string> TablesOfRtTest(const std::string& data_dir) {
  StorageOptions options;
  options.path = data_dir;
  options.cache_size_bytes = 16ull << 20;
  options.log_file_max_bytes = 4ull << 20;
  options.checkpoint_interval_s = 60;
  options.max_sessions = 10;
  std::unique_ptr<Storage> storage = Must(Storage::Open(options));
  if (!storage) return {"<storage did not open>"};
  std::vector<std::string> tables = Must(storage->ListTables("depot.rt_test."));
  for (std::string& t : Must(storage->ListTables("pstate.rt_test.")))
    tables.push_back(std::move(t));
  return tables;
}

// After an engine restart in which rt_test is not deployed: a new deployment starts at
// offset 0 and its processing completes (no progress marker of the old one survives).
void ExpectRedeployStartsEmpty(Engine& engine) {
  ASSERT_TRUE(engine.Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions}).ok());
  AppendResult appended = Must(engine.Append("rt_test", "*kv", KV("fresh", 1)));
  EXPECT_EQ(appended.offset, 0);
  ASSERT_TRUE(engine.WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine.SelectOne("rt_test", "$$kv", Path().Key("k0"))), Value());
  ModuleStats stats = Must(engine.Stats("rt_test"));
  for (const TopologyPartitionStats& t : stats.topologies) {
    const int64_t expected = t.depot == "*kv" && t.partition == appended.partition ? 1 : 0;
    EXPECT_EQ(t.processed_offset, expected)
        << t.topology << " on " << t.depot << " partition " << t.partition;
  }
}

// The state a kill -9 leaves between Destroy's two phases — the metadata rows deleted
// durably, the tables and the plugin copy still there — made by a child through the storage
// API, which then SIGKILLs itself. Reopening must not resurrect or reuse any of it.
TEST_F(RecoveryTest, DestroyKilledAfterItsMetadataIsGoneLeavesNothingReused) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    {
      Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(data_dir()));
      if (!engine.ok() ||
          !(*engine)->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions}).ok())
        _exit(20);
      AppendKvOrExit(**engine);
    }
    StorageOptions options;
    options.path = data_dir();
    options.cache_size_bytes = 16ull << 20;
    options.log_file_max_bytes = 4ull << 20;
    options.checkpoint_interval_s = 60;
    options.max_sessions = 10;
    Result<std::unique_ptr<Storage>> storage = Storage::Open(options);
    if (!storage.ok()) _exit(22);
    Result<std::unique_ptr<Session>> session = (*storage)->OpenSession();
    if (!session.ok() || !(*session)->Begin().ok()) _exit(23);
    const std::string prefix = EncodeKey(Value("rt_test"));
    for (const char* name : {"meta.modules", "meta.progress", "meta.failures"}) {
      Result<TableId> table = (*storage)->OpenTable(name, TableKind::kBytes);
      if (!table.ok()) _exit(24);
      std::vector<std::string> keys;
      Status st = (*session)->Scan(*table, prefix, PrefixEnd(prefix), false,
                                   [&](std::string_view key, std::string_view) {
                                     keys.emplace_back(key);
                                     return true;
                                   });
      if (!st.ok()) _exit(25);
      for (const std::string& key : keys) {
        if (!(*session)->Remove(*table, key).ok()) _exit(26);
      }
    }
    if (!(*session)->Commit().ok() || !(*storage)->WaitDurable().ok()) _exit(27);
    raise(SIGKILL);
    _exit(28);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child exited with " << WEXITSTATUS(status);
  ASSERT_FALSE(TablesOfRtTest(data_dir()).empty()) << "the child left no tables to test with";

  // Open drops the orphaned tables and the plugin copy of the undeployed module.
  {
    std::unique_ptr<Engine> engine = Must(Engine::Open(SmallEngineOptions(data_dir())));
    ASSERT_NE(engine, nullptr);
    EXPECT_TRUE(Must(engine->Modules()).empty());
  }
  EXPECT_EQ(TablesOfRtTest(data_dir()), std::vector<std::string>{});
  EXPECT_TRUE(std::filesystem::is_empty(data_dir() + "/modules"));

  std::unique_ptr<Engine> engine = Must(Engine::Open(SmallEngineOptions(data_dir())));
  ASSERT_NE(engine, nullptr);
  ExpectRedeployStartsEmpty(*engine);
}

// Real kills at random moments of Destroy: after the restart the module is either whole
// (every record and its processing intact) or gone (and a new deployment starts empty).
TEST_F(RecoveryTest, Kill9DuringDestroyLeavesTheModuleWholeOrGone) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  int whole = 0;
  int gone = 0;
  int gone_with_tables = 0;  // killed between Destroy's two phases
  for (int round = 0; round < 8; ++round) {
    const std::string dir = dir_.Sub("destroy" + std::to_string(round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(fds[0]);
      Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(dir));
      if (!engine.ok() ||
          !(*engine)->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions}).ok())
        _exit(20);
      AppendKvOrExit(**engine);
      if (write(fds[1], "r", 1) != 1) _exit(29);
      if (!(*engine)->Destroy("rt_test").ok()) _exit(30);
      pause();  // destroyed: wait for the kill
      _exit(31);
    }
    close(fds[1]);
    char ready = 0;
    ASSERT_EQ(read(fds[0], &ready, 1), 1) << "the child died before its Destroy";
    close(fds[0]);
    // Half the kills come within 2 ms, when Destroy has often not deleted the rows yet.
    const uint64_t max_delay_us = round % 2 == 0 ? 2'000 : 40'000;
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % max_delay_us));
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status))
        << "child exited with " << WEXITSTATUS(status) << " in round " << round;

    const bool had_tables = !TablesOfRtTest(dir).empty();
    std::unique_ptr<Engine> engine = Must(Engine::Open(SmallEngineOptions(dir)));
    ASSERT_NE(engine, nullptr);
    if (engine->Describe("rt_test").ok()) {
      ++whole;
      ASSERT_TRUE(engine->WaitProcessed("rt_test").ok());
      ModuleStats stats = Must(engine->Stats("rt_test"));
      int64_t records = 0;
      for (const DepotPartitionStats& d : stats.depots) {
        if (d.depot == "*kv") records += d.end_offset - d.start_offset;
      }
      EXPECT_EQ(records, kKvRecords) << "round " << round;
      for (const TopologyPartitionStats& t : stats.topologies) EXPECT_EQ(t.lag, 0) << t.topology;
      EXPECT_EQ(Must(engine->SelectOne("rt_test", "$$kv", Path().Key("k0"))), Value(190));
    } else {
      ++gone;
      if (had_tables) ++gone_with_tables;
      EXPECT_TRUE(Must(engine->Modules()).empty());
      ExpectRedeployStartsEmpty(*engine);
    }
  }
  std::printf(
      "after kill -9 during Destroy: %d rounds whole, %d gone (%d of them leaving its tables)\n",
      whole, gone, gone_with_tables);
}

// The data directory opened directly, with the engine closed (to plant rows or damage).
StorageOptions OfflineStorageOptions(const std::string& data_dir) {
  StorageOptions options;
  options.path = data_dir;
  options.cache_size_bytes = 16ull << 20;
  options.log_file_max_bytes = 4ull << 20;
  options.checkpoint_interval_s = 60;
  options.max_sessions = 10;
  return options;
}

// A crash between a step's commit and the append of its record leaves the record in the
// outbox (written in the step's transaction, runtime/outbox.h). The next Open appends it
// once — processed by the derived topology — and removes the row, so a later Open does not
// append it again. (The crash harness's orders module checks the same under kill -9.)
TEST_F(RecoveryTest, OutboxRowLeftByACrashIsAppendedOnceAtOpen) {
  ASSERT_NO_FATAL_FAILURE(Open());
  engine_.reset();
  const Value record = Value::MapOf({{"k", "kx"}, {"n", 999}});
  const int partition = static_cast<int>(HashKey(Value("kx")) % kPartitions);
  {
    std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir())));
    ASSERT_NE(storage, nullptr);
    std::unique_ptr<Session> session = Must(storage->OpenSession());
    std::unique_ptr<runtime::Outbox> outbox = Must(runtime::Outbox::Open(*storage, *session));
    ASSERT_TRUE(session->Begin().ok());
    std::string bytes;
    AppendValue(record, &bytes);
    ASSERT_TRUE(outbox->Put(*session, "rt_test", "*derived", partition, bytes).ok());
    ASSERT_TRUE(session->Commit().ok());
    ASSERT_TRUE(storage->WaitDurable().ok());
  }
  for (int open = 0; open < 2; ++open) {
    ASSERT_NO_FATAL_FAILURE(Open());
    ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
    std::vector<DepotEntry> derived =
        Must(engine_->ReadDepot("rt_test", "*derived", partition, 0, INT64_MAX, 100));
    ASSERT_EQ(derived.size(), 1u) << "open " << open;
    EXPECT_EQ(derived[0].record, record);
    EXPECT_EQ(Must(engine_->Select("rt_test", "$$derived_sets", Path().Key("kx"))),
              std::vector<Value>{Value::SetOf({999})});
    engine_.reset();
  }
}

// Replayed steps append again (at-least-once) and put outbox rows of their own while the
// rows a crash left are being recovered: each row is appended exactly once — a left-over
// row is not posted a second time by the recovery (which failed the whole append chunk it
// met) — and no row is left behind.
TEST_F(RecoveryTest, LeftOverOutboxRowsAndRowsOfReplayedStepsAreEachAppendedOnce) {
  ASSERT_NO_FATAL_FAILURE(Open());
  constexpr int kRecords = 1000;
  std::vector<Value> batch;
  for (int n = 0; n < kRecords; ++n) batch.push_back(Value::MapOf({{"k", KeyOf(n)}, {"n", n}}));
  Must(engine_->AppendBatch("rt_test", "*crash", std::move(batch)));
  engine_.reset();
  const Value planted = Value::MapOf({{"k", "kx"}, {"n", 999}});
  {
    std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir())));
    ASSERT_NE(storage, nullptr);
    TableId progress = Must(storage->OpenTable("meta.progress", TableKind::kBytes));
    std::unique_ptr<Session> session = Must(storage->OpenSession());
    std::unique_ptr<runtime::Outbox> outbox = Must(runtime::Outbox::Open(*storage, *session));
    ASSERT_TRUE(session->Begin().ok());
    for (int p = 0; p < kPartitions; ++p) {  // every *crash record replays
      ASSERT_TRUE(
          Must(session->Remove(progress, runtime::ProgressKey("rt_test", "crash", "*crash", p))));
    }
    std::string bytes;
    AppendValue(planted, &bytes);
    const int partition = static_cast<int>(HashKey(Value("kx")) % kPartitions);
    ASSERT_TRUE(outbox->Put(*session, "rt_test", "*derived", partition, bytes).ok());
    ASSERT_TRUE(session->Commit().ok());
    ASSERT_TRUE(storage->WaitDurable().ok());
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  size_t derived = 0;
  for (int p = 0; p < kPartitions; ++p) {
    derived += Must(engine_->ReadDepot("rt_test", "*derived", p, 0, INT64_MAX, 10'000)).size();
  }
  // Each *crash record was appended to *derived when first processed and again by its replay.
  EXPECT_EQ(derived, 2u * kRecords + 1);
  EXPECT_EQ(Must(engine_->Stats("rt_test")).failures, 0);
  engine_.reset();
  std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir())));
  ASSERT_NE(storage, nullptr);
  TableId table = Must(storage->OpenTable("meta.outbox", TableKind::kBytes));
  std::unique_ptr<Session> session = Must(storage->OpenSession());
  size_t rows = 0;
  ASSERT_TRUE(session
                  ->Scan(table, "", "", false,
                         [&](std::string_view, std::string_view) {
                           ++rows;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(rows, 0u) << "outbox rows were left behind";
}

// The failure rows of rt_test in meta.failures (key -> row bytes); the engine must be closed.
std::map<std::string, std::string> FailureRows(Storage& storage) {
  std::map<std::string, std::string> rows;
  TableId table = Must(storage.OpenTable("meta.failures", TableKind::kBytes));
  std::unique_ptr<Session> session = Must(storage.OpenSession());
  if (!session) return rows;
  const std::string prefix = EncodeKey(Value("rt_test"));
  EXPECT_TRUE(session
                  ->Scan(table, prefix, PrefixEnd(prefix), false,
                         [&](std::string_view key, std::string_view row) {
                           rows.emplace(key, row);
                           return true;
                         })
                  .ok());
  return rows;
}

// A failure row stored before messages were cut holds its whole record in the message:
// opening the engine cuts and rewrites it, so stats answers stay small from then on.
TEST_F(RecoveryTest, FailureRowsWithAWholeRecordAreCutWhenLoaded) {
  Open();
  ASSERT_EQ(engine_->Append("rt_test", "*flaky", 5).status().code(), StatusCode::kUserError);
  engine_.reset();
  const std::string huge(1 << 20, 'z');
  {
    std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir())));
    ASSERT_TRUE(storage);
    std::map<std::string, std::string> rows = FailureRows(*storage);
    ASSERT_EQ(rows.size(), 1u);
    Value row = Must(DecodeValue(rows.begin()->second));
    ASSERT_TRUE(row.is_map());
    row.Insert("message", "an old message with the whole record " + huge);
    std::string bytes;
    AppendValue(row, &bytes);
    TableId table = Must(storage->OpenTable("meta.failures", TableKind::kBytes));
    std::unique_ptr<Session> session = Must(storage->OpenSession());
    ASSERT_TRUE(session && session->Put(table, rows.begin()->first, bytes).ok());
    ASSERT_TRUE(storage->WaitDurable().ok());
  }
  Open();
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 1);
  ASSERT_EQ(stats.failure_page.size(), 1u);
  EXPECT_LE(stats.failure_page[0].message.size(), kMaxFailureMessageBytes);
  EXPECT_TRUE(
      stats.failure_page[0].message.starts_with("an old message with the whole record zzz"));
  EXPECT_TRUE(stats.failure_page[0].message.ends_with(" bytes more)"))
      << stats.failure_page[0].message;
  engine_.reset();
  std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir())));
  ASSERT_TRUE(storage);
  std::map<std::string, std::string> rows = FailureRows(*storage);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_LT(rows.begin()->second.size(), kMaxFailureMessageBytes + 200)
      << "the row was not rewritten";
}

// A Logger that keeps every line ("LEVEL message"), to check what the engine reported.
class CapturingLogger final : public Logger {
 public:
  void Log(Level level, std::string_view message) override {
    std::lock_guard lock(mu_);
    lines_.push_back(std::string(LevelName(level)) + " " + std::string(message));
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

// Damages a depot partition the way a lost block would: the record at `lost` disappears
// below the end offset (the table is rewritten without it), and the progress markers of
// `topology` on it are removed so that the next Open replays the partition from 0.
void LoseDepotRecord(const std::string& data_dir, const std::string& depot,
                     const std::string& topology, int partition, int64_t lost) {
  std::unique_ptr<Storage> storage = Must(Storage::Open(OfflineStorageOptions(data_dir)));
  ASSERT_TRUE(storage);
  const std::string name = "depot.rt_test." + depot.substr(1) + "." + std::to_string(partition);
  std::vector<std::pair<int64_t, std::string>> records;
  {
    TableId table = Must(storage->OpenTable(name, TableKind::kLog));
    std::unique_ptr<Session> session = Must(storage->OpenSession());
    ASSERT_TRUE(session);
    ASSERT_TRUE(session
                    ->ScanRecords(table, 0, INT64_MAX,
                                  [&](int64_t offset, std::string_view data) {
                                    records.emplace_back(offset, std::string(data));
                                    return true;
                                  })
                    .ok());
  }
  ASSERT_TRUE(storage->DropTable(name).ok());
  TableId table = Must(storage->OpenTable(name, TableKind::kLog));
  TableId progress = Must(storage->OpenTable("meta.progress", TableKind::kBytes));
  std::unique_ptr<Session> session = Must(storage->OpenSession());
  ASSERT_TRUE(session);
  for (const auto& [offset, data] : records) {
    if (offset == lost) continue;
    ASSERT_TRUE(session->PutRecord(table, offset, data).ok());
  }
  const std::string key = runtime::ProgressKey("rt_test", topology, depot, partition);
  ASSERT_TRUE(Must(session->Remove(progress, key))) << "no progress marker to remove";
  ASSERT_TRUE(storage->WaitDurable().ok());
}

// Promise 5 at replay: a depot record that cannot be read when Open replays its partition
// (here: missing below the end offset) is recorded as a failure of the topology that
// consumes it, with the read error; replay goes on with the next records, WaitProcessed
// returns, and the engine's logger gets an error line about it.
TEST_F(RecoveryTest, AnUnreadableRecordAtReplayIsARecordedFailureAndReplayGoesOn) {
  Open();
  constexpr int kRecords = 6;
  constexpr int kLost = 2;
  std::vector<Value> batch;
  for (int i = 0; i < kRecords; ++i) batch.push_back(KV("lost", i));  // one key: one partition
  std::vector<AppendResult> appended =
      Must(engine_->AppendBatch("rt_test", "*kv", std::move(batch)));
  ASSERT_EQ(appended.size(), static_cast<size_t>(kRecords));
  const int partition = appended[0].partition;
  const int64_t lost = appended[kLost].offset;
  const int64_t end = appended.back().offset + 1;
  const Value totals_before =
      Must(engine_->SelectOne("rt_test", "$$totals", Path().Key("records")));
  ASSERT_TRUE(totals_before.is_int());
  engine_.reset();
  LoseDepotRecord(data_dir(), "*kv", "kv", partition, lost);

  auto logger = std::make_shared<CapturingLogger>();
  EngineOptions options = SmallEngineOptions(data_dir());
  options.logger = logger;
  OpenWith(options);
  // Waits for the condition (a stuck replay fails here instead of hanging in WaitProcessed).
  auto kv_processed = [&] {
    for (const TopologyPartitionStats& t : Must(engine_->Stats("rt_test")).topologies) {
      if (t.topology == "kv" && t.partition == partition) return t.processed_offset;
    }
    return int64_t{-1};
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (kv_processed() < end && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(kv_processed(), end) << "replay did not pass the unreadable record";
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());

  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 1);
  ASSERT_EQ(stats.failure_page.size(), 1u);
  const TopologyFailure& failure = stats.failure_page[0];
  EXPECT_EQ(failure.topology, "kv");
  EXPECT_EQ(failure.depot, "*kv");
  EXPECT_EQ(failure.partition, partition);
  EXPECT_EQ(failure.offset, lost);
  EXPECT_TRUE(failure.message.starts_with("replay could not read the record: ")) << failure.message;
  EXPECT_NE(failure.message.find("offset " + std::to_string(lost) + " is missing"),
            std::string::npos)
      << failure.message;
  // Every other record was replayed through kv (it counts each into the global total).
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$totals", Path().Key("records"))),
            Value(totals_before.as_int() + kRecords - 1));
  int error_lines = 0;
  for (const std::string& line : logger->lines()) {
    if (line.starts_with("ERROR ") &&
        line.find("offset " + std::to_string(lost) + " cannot be read") != std::string::npos) {
      ++error_lines;
    }
  }
  EXPECT_EQ(error_lines, 1) << "the logger did not get the replay error";
}

}  // namespace
}  // namespace strata
