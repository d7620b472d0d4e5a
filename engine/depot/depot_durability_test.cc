// Durability by kill -9: a child process appends batches to a depot and reports each batch
// through a pipe once WhenDurable acknowledged it; the parent kills the child with SIGKILL
// at a random moment, reopens the data directory, and checks that every acknowledged
// record is there with its bytes and that offsets are dense. The child is forked before
// any Storage is open in this process.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "depot/depot.h"
#include "storage/testing/kill9_child.h"
#include "storage/testing/temp_dir.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Kill9Child;
using testing::TempDir;

constexpr int kPartitions = 2;
constexpr int kRounds = 24;
constexpr uint64_t kDefaultSeed = 20261126;

struct Ack {
  int32_t partition;
  int32_t count;
  int64_t first;
};
static_assert(sizeof(Ack) <= PIPE_BUF, "one write of an Ack must be atomic");

// The record at (partition, offset) is a function of both, so that a lost and re-appended
// offset gets the same bytes and any misplaced record shows.
std::string RecordFor(int partition, int64_t offset) {
  std::string record =
      std::string("p") + std::to_string(partition) + "/o" + std::to_string(offset) + ":";
  uint64_t x = static_cast<uint64_t>(offset) * 0x9E3779B97F4A7C15ull + partition;
  record.append(16 + (x >> 58), static_cast<char>('a' + x % 26));
  return record;
}

StorageOptions ChildOptions(const std::string& path) {
  StorageOptions options;
  options.path = path;
  options.cache_size_bytes = 32ull << 20;
  options.log_file_max_bytes = 1ull << 20;
  options.checkpoint_interval_s = 1;
  options.max_sessions = 10;
  return options;
}

// Runs in the child until killed. Exit codes other than by signal are failures.
[[noreturn]] void AppendForever(const std::string& path, int ack_fd, uint64_t seed) {
  auto storage = Storage::Open(ChildOptions(path));
  if (!storage.ok()) {
    std::fprintf(stderr, "child: %s\n", storage.status().ToString().c_str());
    _exit(10);
  }
  auto depot = Depot::Open(storage->get(), "kill", "events", kPartitions);
  auto session = (*storage)->OpenSession();
  if (!depot.ok() || !session.ok()) _exit(11);
  std::mt19937_64 rng(seed);
  std::vector<std::string> owned;
  std::vector<std::string_view> batch;
  for (;;) {
    const int partition = static_cast<int>(rng() % kPartitions);
    const int count = 1 + static_cast<int>(rng() % 40);
    // This process is the only appender, so the end offset is the next offset.
    const int64_t first = *(*depot)->EndOffset(partition);
    owned.clear();
    batch.clear();
    for (int i = 0; i < count; ++i) owned.push_back(RecordFor(partition, first + i));
    for (const std::string& record : owned) batch.push_back(record);
    auto appended = (*depot)->AppendBatch(**session, partition, batch);
    if (!appended.ok() || *appended != first) _exit(12);
    (*storage)->WhenDurable([ack_fd, partition, count, first](Status status) {
      if (!status.ok()) _exit(13);
      Ack ack{partition, count, first};
      if (write(ack_fd, &ack, sizeof(ack)) != static_cast<ssize_t>(sizeof(ack))) _exit(14);
    });
    // Keep the number of outstanding acknowledgements bounded.
    if (rng() % 8 == 0 && !(*storage)->WaitDurable().ok()) _exit(15);
  }
}

// Reads acks until the deadline (or until the first ack when `until_first`), folding
// them into acked_end. Returns the number read; stops at EOF.
int ReadAcks(int fd, Clock::time_point deadline, bool until_first, std::vector<int64_t>* acked_end,
             bool* eof) {
  int read_count = 0;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    Ack ack;
    ssize_t n = read(fd, &ack, sizeof(ack));
    if (n == 0) {
      *eof = true;
      break;
    }
    if (n != static_cast<ssize_t>(sizeof(ack))) {
      ADD_FAILURE() << "short read of an ack: " << n;
      *eof = true;
      break;
    }
    (*acked_end)[ack.partition] = std::max((*acked_end)[ack.partition], ack.first + ack.count);
    ++read_count;
    if (until_first) break;
  }
  return read_count;
}

void VerifyDepot(const std::string& path, const std::vector<int64_t>& acked_end, int round) {
  StorageOptions options = ChildOptions(path);
  auto storage = Storage::Open(options);
  ASSERT_TRUE(storage.ok()) << "round " << round << ": " << storage.status().ToString();
  auto depot = Depot::Open(storage->get(), "kill", "events", kPartitions);
  ASSERT_TRUE(depot.ok()) << "round " << round << ": " << depot.status().ToString();
  auto session = (*storage)->OpenSession();
  ASSERT_TRUE(session.ok());
  for (int p = 0; p < kPartitions; ++p) {
    const int64_t end = *(*depot)->EndOffset(p);
    ASSERT_GE(end, acked_end[p]) << "round " << round << " partition " << p
                                 << ": acknowledged records were lost";
    int64_t next = 0;
    while (next < end) {
      auto records = (*depot)->Read(**session, p, next, end, 4096);
      ASSERT_TRUE(records.ok()) << "round " << round << ": " << records.status().ToString();
      ASSERT_FALSE(records->empty());
      for (const DepotRecord& record : *records) {
        ASSERT_EQ(record.offset, next) << "round " << round << " partition " << p;
        ASSERT_EQ(record.data, RecordFor(p, next)) << "round " << round << " partition " << p;
        ++next;
      }
    }
    // Nothing past the end offset: the last record is the last key of the table.
    auto table = (*storage)->OpenTable(Depot::TableName("kill", "events", p), TableKind::kLog);
    ASSERT_TRUE(table.ok());
    EXPECT_EQ(*(*session)->LastRecordKey(*table), end - 1);
  }
}

TEST(DepotDurabilityTest, AcknowledgedAppendsSurviveKill9) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  TempDir dir;
  std::vector<int64_t> acked_end(kPartitions, 0);
  int total_acks = 0;
  int rounds_with_acks = 0;
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t child_seed = rng();
    Kill9Child child([&](int fd) { AppendForever(dir.path(), fd, child_seed); });
    const int fd = child.read_fd();
    bool eof = false;
    int acks = 0;
    // Every fourth round is killed at a random moment from its start (possibly while it
    // opens and recovers); the others after their first ack plus a random delay.
    if (round % 4 == 3) {
      auto deadline = Clock::now() + std::chrono::milliseconds(rng() % 60);
      acks += ReadAcks(fd, deadline, false, &acked_end, &eof);
    } else {
      acks += ReadAcks(fd, Clock::now() + std::chrono::seconds(10), true, &acked_end, &eof);
      ASSERT_EQ(acks, 1) << "round " << round << ": the child acknowledged nothing";
      auto deadline = Clock::now() + std::chrono::milliseconds(5 + rng() % 50);
      acks += ReadAcks(fd, deadline, false, &acked_end, &eof);
    }
    ASSERT_FALSE(eof) << "round " << round << ": the child exited before it was killed";
    ASSERT_TRUE(child.Kill()) << "round " << round;
    // Acks already in the pipe were written after their flush: they count.
    acks += ReadAcks(fd, Clock::now() + std::chrono::seconds(5), false, &acked_end, &eof);
    total_acks += acks;
    if (acks > 0) ++rounds_with_acks;
    VerifyDepot(dir.path(), acked_end, round);
    if (HasFatalFailure()) return;
  }
  std::printf("%d rounds, %d acknowledged batches, acknowledged ends %lld/%lld\n", kRounds,
              total_acks, static_cast<long long>(acked_end[0]),
              static_cast<long long>(acked_end[1]));
  EXPECT_GE(rounds_with_acks, kRounds * 3 / 4);
}

}  // namespace
}  // namespace strata
