// PState writes and a progress marker in another table commit atomically: a child process
// runs transform + marker transactions with durable acknowledgements and is killed with
// SIGKILL at random moments; after each kill the parent reopens the data and checks that the
// state is exactly what the marker says, and that nothing acknowledged was lost.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>

#include "pstate/pstate.h"
#include "storage/storage.h"
#include "storage/testing/temp_dir.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

constexpr int kRounds = 24;

StorageOptions Options(const std::string& path) {
  StorageOptions options;
  options.path = path;
  options.cache_size_bytes = 32ull << 20;
  options.log_file_max_bytes = 1ull << 20;
  options.checkpoint_interval_s = 60;
  options.max_sessions = 10;
  return options;
}

// A map of records whose log is subindexed: one transaction touches the blob part (count),
// the subindexed list (log, its size record) and the marker table.
PStateSchema Schema_() {
  return PStateSchema{Schema::Map(
      Schema::String(), Schema::Record({{"count", Schema::Int64()},
                                        {"log", Schema::List(Schema::Int64()).Subindexed()}}))};
}

Result<int64_t> ReadMarker(Session& s, TableId table) {
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, s.Get(table, "marker", &bytes));
  return found ? std::stoll(bytes) : 0;
}

// The child: numbers transactions from the marker on, acknowledging each one on `ack_fd` once
// durable. Runs until killed; exits non-zero on any error. A second thread flushes the log
// all the time, as other partitions' group commits do in a server, so that anything
// committed early (outside the transaction) would become durable before the marker; the
// pause inside each transaction gives kill -9 a chance to land there.
[[noreturn]] void RunWriter(const std::string& path, int ack_fd) {
  auto fail = [](const Status& st) {
    fprintf(stderr, "writer: %s\n", st.ToString().c_str());
    _exit(2);
  };
  auto storage = Storage::Open(Options(path));
  if (!storage.ok()) fail(storage.status());
  auto ps = PState::Open(storage->get(), "m", "state", Schema_(), 1);
  if (!ps.ok()) fail(ps.status());
  auto marker_table = (*storage)->OpenTable("progress", TableKind::kBytes);
  if (!marker_table.ok()) fail(marker_table.status());
  auto session = (*storage)->OpenSession();
  if (!session.ok()) fail(session.status());
  Session& s = **session;
  auto start = ReadMarker(s, *marker_table);
  if (!start.ok()) fail(start.status());
  std::thread flusher([&] {
    while (true) {
      Status st = (*storage)->WaitDurable();
      if (!st.ok()) fail(st);
    }
  });
  flusher.detach();
  for (int64_t r = *start + 1;; ++r) {
    Status st = s.Begin();
    if (st.ok()) st = (*ps)->Transform(s, 0, Path().Key("k", "count").Inc()).status();
    if (st.ok()) st = (*ps)->Transform(s, 0, Path().Key("k", "log").Append(r)).status();
    if (st.ok())
      st = (*ps)
               ->Transform(s, 0, Path().Key("other" + std::to_string(r % 5), "count").Inc())
               .status();
    usleep(500);
    if (st.ok()) st = s.Put(*marker_table, "marker", std::to_string(r));
    if (st.ok()) st = s.Commit();
    if (st.ok()) st = (*storage)->WaitDurable();
    if (!st.ok()) fail(st);
    if (write(ack_fd, &r, sizeof r) != sizeof r) _exit(3);
  }
}

TEST(PStateAtomicityTest, TransformsAndMarkerCommitTogetherAcrossKill9) {
  testing::TempDir dir;
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  int64_t acked = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      RunWriter(dir.path(), fds[1]);
    }
    close(fds[1]);
    // Let the writer get going (its first ack), then kill it at a random moment.
    pollfd pfd{fds[0], POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 30000), 1) << "writer made no progress";
    usleep(static_cast<useconds_t>(rng() % 30000));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer ended on its own, status " << status;
    int64_t r;
    while (read(fds[0], &r, sizeof r) == sizeof r) acked = r;
    close(fds[0]);

    auto storage = Storage::Open(Options(dir.path()));
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    auto ps = PState::Open(storage->get(), "m", "state", Schema_(), 1);
    ASSERT_TRUE(ps.ok()) << ps.status().ToString();
    auto marker_table = (*storage)->OpenTable("progress", TableKind::kBytes);
    ASSERT_TRUE(marker_table.ok());
    auto session = (*storage)->OpenSession();
    ASSERT_TRUE(session.ok());
    Session& s = **session;
    Result<int64_t> marker = ReadMarker(s, *marker_table);
    ASSERT_TRUE(marker.ok());
    EXPECT_GE(*marker, acked) << "an acknowledged transaction was lost";
    Result<Value> count = (*ps)->SelectOne(s, 0, Path().Key("k", "count"));
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, *marker == 0 ? Value() : Value(*marker));
    Result<Value> size = (*ps)->SelectOne(s, 0, Path().Key("k", "log").Size());
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, Value(*marker));
    Result<Value> log = (*ps)->SelectOne(s, 0, Path().Key("k", "log"));
    ASSERT_TRUE(log.ok());
    Value::List want;
    for (int64_t i = 1; i <= *marker; ++i) want.emplace_back(i);
    EXPECT_EQ(*marker == 0 ? Value() : Value(want), *log);
    int64_t others = 0;
    for (int i = 0; i < 5; ++i) {
      Result<Value> c =
          (*ps)->SelectOne(s, 0, Path().Key("other" + std::to_string(i), "count").NullTo(0));
      ASSERT_TRUE(c.ok());
      others += c->as_int();
    }
    EXPECT_EQ(others, *marker);
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(acked, kRounds) << "too few transactions to mean anything";
}

}  // namespace
}  // namespace strata
