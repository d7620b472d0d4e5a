// stratad when its storage fails: a full disk (a small tmpfs) and a damaged depot page.
// The server must log the cause and exit with code 74 (docs/storage.md, "When the storage
// fails") instead of staying up answering errors, and every acknowledged append must be
// there after a restart. The disk-full test mounts a tmpfs, which needs root (CI runs the
// tests as root); without the permission it is skipped with a message.
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "strata/engine.h"
#include "strata/path.h"
#include "strata/protocol/messages.h"
#include "strata/testing/test_seed.h"
#include "stratad_test.h"
#include "test_client.h"

namespace strata::server_test {
namespace {

namespace fs = std::filesystem;
namespace proto = protocol;

constexpr int kExitStorageFailure = 74;

struct Acked {
  int partition;
  int64_t offset;
  std::string sentence;
};

class StorageFailureTest : public StratadTest {
 protected:
  StorageFailureTest() : StratadTest("stratad_storage_failure_test_", {"--cache-size", "64MB"}) {}
  ~StorageFailureTest() override {
    if (mounted_) umount2(mount_point_.c_str(), MNT_DETACH);
  }

  // Mounts a tmpfs of `size` on `dir`; false (with the reason in `why`) when not permitted.
  bool MountTmpfs(const std::string& dir, const std::string& size, std::string* why) {
    fs::create_directories(dir);
    const std::string options = "size=" + size;
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      *why = std::strerror(errno);
      return false;
    }
    mounted_ = true;
    mount_point_ = dir;
    return true;
  }
  // Fills the file system of `disk` with the file disk/filler until `room` bytes are left.
  // The server may take room meanwhile (WiredTiger preallocates its next log file in the
  // background): a write that finds the disk full ends the filling, and the filler is then
  // cut back so that the server still has `room`.
  void FillLeaving(const std::string& disk, uint64_t room) {
    struct statvfs disk_stats {};
    ASSERT_EQ(statvfs(disk.c_str(), &disk_stats), 0) << std::strerror(errno);
    const uint64_t free_bytes = uint64_t{disk_stats.f_bavail} * disk_stats.f_frsize;
    ASSERT_GT(free_bytes, room);
    {
      std::ofstream filler(disk + "/filler", std::ios::binary);
      const std::string chunk(1 << 20, 'f');
      for (uint64_t left = free_bytes - room; left > 0 && filler.good();) {
        const uint64_t n = std::min<uint64_t>(left, chunk.size());
        filler.write(chunk.data(), static_cast<std::streamsize>(n));
        if (filler.good()) filler.flush();
        left -= n;
      }
    }
    ASSERT_EQ(statvfs(disk.c_str(), &disk_stats), 0) << std::strerror(errno);
    const uint64_t now_free = uint64_t{disk_stats.f_bavail} * disk_stats.f_frsize;
    if (now_free < room) {
      const uint64_t filler_size = fs::file_size(disk + "/filler");
      fs::resize_file(disk + "/filler", filler_size - std::min(filler_size, room - now_free));
    }
  }
  // A 96 MiB tmpfs on `disk` holding the data directory; false (with the skip message in
  // `why`) where mounting is not permitted.
  bool MountSmallDisk(const std::string& disk, std::string* why) {
    if (!MountTmpfs(disk, "96m", why)) {
      *why = "cannot mount a 96 MiB tmpfs on " + disk + " (" + *why +
             "): this test fills a small disk and needs root (CAP_SYS_ADMIN)";
      return false;
    }
    data_dir_ = disk + "/data";
    return true;
  }
  void Unmount() {
    ASSERT_EQ(umount2(mount_point_.c_str(), 0), 0) << std::strerror(errno);
    mounted_ = false;
  }

  TestClient Connected() { return ConnectedTestClient(server_->port()); }
  void DeployWordcount(TestClient& client) {
    proto::DeployRequest deploy;
    deploy.path = WORDCOUNT_MODULE;
    Result<proto::Response> r = client.Call(deploy);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_FALSE(r->error.has_value()) << r->error->message;
  }
  static proto::AppendRequest Sentences(std::vector<std::string> texts) {
    proto::AppendRequest request;
    request.module = "wordcount";
    request.depot = "*sentences";
    for (std::string& t : texts) request.records.push_back(Value(std::move(t)));
    request.ack = proto::AckLevel::kProcessed;
    return request;
  }
  // Exit status of the server, which must end by itself (StratadProcess::Wait gives up
  // after 60 s and kills it: the zombie this guards against).
  void ExpectExitForStorageFailure(const std::string& cause_words) {
    const int status = server_->Wait();
    const std::string log = ReadFile(log_);
    ASSERT_NE(status, -1) << "stratad did not exit by itself after the storage failed:\n" << log;
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\n" << log;
    EXPECT_EQ(WEXITSTATUS(status), kExitStorageFailure) << log;
    EXPECT_NE(log.find("fatal storage error"), std::string::npos) << log;
    EXPECT_NE(log.find(cause_words), std::string::npos) << log;
    const size_t line = log.find("fatal storage error");
    if (line != std::string::npos) {
      std::cerr << "stratad: " << log.substr(line, log.find('\n', line) - line) << "\n";
    }
  }

  bool mounted_ = false;
  std::string mount_point_;
};

std::string RandomText(std::mt19937_64& random, size_t words) {
  static const char kLetters[] = "abcdefghijklmnopqrstuvwxyz";
  std::string text;
  for (size_t w = 0; w < words; ++w) {
    if (!text.empty()) text += ' ';
    const int length = 3 + static_cast<int>(random() % 8);
    for (int i = 0; i < length; ++i) text += kLetters[random() % 26];
  }
  return text;
}

// With the free-space check off (--min-free-disk 0), or when something else fills the disk,
// the storage runs out of space and fails for good: the server logs why and exits.
TEST_F(StorageFailureTest, DiskFullLogsTheCauseExitsAndKeepsAcknowledgedAppends) {
  const std::string disk = dir_ + "/small";
  if (std::string why; !MountSmallDisk(disk, &why)) GTEST_SKIP() << why;
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 random(seed);
  StartServer({"--min-free-disk", "0"});
  TestClient client = Connected();
  DeployWordcount(client);
  // Leave the server 12 MiB of the disk (its log files are preallocated at 16 MiB, so the
  // next one does not fit either).
  ASSERT_NO_FATAL_FAILURE(FillLeaving(disk, uint64_t{12} << 20));

  // Append until the disk is full: each batch is acknowledged (durable and processed) or
  // answered with an error, or the connection ends when the server exits.
  std::vector<Acked> acked;
  std::string first_error;
  for (int batch = 0; batch < 100000 && first_error.empty(); ++batch) {
    std::vector<std::string> texts;
    for (int i = 0; i < 20; ++i) {
      texts.push_back("b" + std::to_string(batch) + "r" + std::to_string(i) + " " +
                      RandomText(random, 200));
    }
    Result<proto::Response> r = client.Call(Sentences(texts));
    if (!r.ok()) {
      first_error = "connection: " + r.status().ToString();
    } else if (r->error) {
      first_error = std::string(proto::ErrorCodeName(r->error->code)) + ": " + r->error->message;
      EXPECT_NE(r->error->code, proto::ErrorCode::kOverloaded) << first_error;
    } else {
      const auto& results = std::get<proto::Appended>(r->body).results;
      for (size_t i = 0; i < results.size(); ++i) {
        acked.push_back({results[i].partition, results[i].offset, texts[i]});
      }
    }
  }
  ASSERT_FALSE(first_error.empty()) << "40 MiB never filled up";
  ASSERT_GT(acked.size(), 100u) << "the disk filled before anything was acknowledged: "
                                << first_error;
  ASSERT_NO_FATAL_FAILURE(ExpectExitForStorageFailure("No space left on device"));
  std::cerr << "first error a client saw: " << first_error << "\n"
            << acked.size() << " records acknowledged before it\n";

  // Move the data to a disk with room and restart: every acknowledged append is there.
  const std::string moved = dir_ + "/moved";
  fs::copy(data_dir_, moved, fs::copy_options::recursive);
  fs::remove(disk + "/filler");
  ASSERT_NO_FATAL_FAILURE(Unmount());
  data_dir_ = moved;
  StartServer();
  TestClient reader = Connected();
  Result<std::map<int, std::map<int64_t, Value>>> stored = ReadAllSentences(reader, 8);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  size_t missing = 0;
  for (const Acked& a : acked) {
    auto p = stored->find(a.partition);
    if (p == stored->end() || !p->second.contains(a.offset) ||
        p->second.at(a.offset) != Value(a.sentence)) {
      ++missing;
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged appends";
  StopServer();
}

// With the free-space check on, a disk that fills up is answered before the storage runs
// out: appends get IO_ERROR saying how much is free, reads and the server go on, and
// appends work again once space is freed.
TEST_F(StorageFailureTest, ANearlyFullDiskRefusesAppendsWithAClearErrorAndKeepsServing) {
  const std::string disk = dir_ + "/small";
  if (std::string why; !MountSmallDisk(disk, &why)) GTEST_SKIP() << why;
  StartServer({"--min-free-disk", "24MB"});
  TestClient client = Connected();
  DeployWordcount(client);
  Result<proto::Response> first = client.Call(Sentences({"before the disk filled"}));
  ASSERT_TRUE(first.ok() && !first->error) << "the first append failed";
  ASSERT_NO_FATAL_FAILURE(FillLeaving(disk, uint64_t{12} << 20));
  // The free space is read at most every 100 ms: append until refused.
  std::optional<proto::Error> refused;
  for (int i = 0; i < 100000 && !refused; ++i) {
    Result<proto::Response> r = client.Call(Sentences({"while the disk fills"}));
    ASSERT_TRUE(r.ok()) << "the server went away: " << r.status().ToString();
    if (r->error) refused = r->error;
  }
  ASSERT_TRUE(refused.has_value()) << "appends were never refused";
  EXPECT_EQ(refused->code, proto::ErrorCode::kIoError) << refused->message;
  EXPECT_NE(refused->message.find("appends are refused until space is freed"), std::string::npos)
      << refused->message;
  // Reads go on, and the server is alive.
  proto::SelectRequest select;
  select.module = "wordcount";
  select.pstate = "$$word_counts";
  select.path = Path().Key("disk").ToValue();
  Result<proto::Response> read = client.Call(select);
  ASSERT_TRUE(read.ok() && !read->error) << "a read failed while appends were refused";
  fs::remove(disk + "/filler");
  bool accepted = false;
  for (int i = 0; i < 100000 && !accepted; ++i) {
    Result<proto::Response> r = client.Call(Sentences({"after space was freed"}));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    accepted = !r->error;
  }
  EXPECT_TRUE(accepted) << "appends stayed refused after space was freed";
  StopServer();
  ASSERT_NO_FATAL_FAILURE(Unmount());
}

// Whatever WiredTiger does with a damaged page, a reader never gets the altered record:
// WiredTiger 3.2.1 panics on a block that fails its checksum, so the server logs the table
// and exits.
TEST_F(StorageFailureTest, DamagedDepotPageIsNeverServedAndTheServerExitsNamingTheTable) {
  StartServer();
  const std::string token = "QJXZKWVYPBMFHRTN";
  {
    TestClient client = Connected();
    DeployWordcount(client);
    // Many pages per partition, the token only in the first records: opening the depot
    // reads its last page, so the damaged one is first read by the client's read.
    for (int batch = 0; batch < 10; ++batch) {
      std::vector<std::string> texts;
      for (int i = 0; i < 400; ++i) {
        std::string text = "sentence " + std::to_string(batch) + "." + std::to_string(i);
        for (int w = 0; w < 30; ++w) text += " the quick brown fox";
        texts.push_back(batch == 0 && i < 16 ? text + " " + token : text);
      }
      Result<proto::Response> r = client.Call(Sentences(texts));
      ASSERT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
    }
  }
  StopServer();  // the final checkpoint writes the depot pages, compressed

  // Alter the token in one byte wherever a depot partition's file holds it verbatim.
  std::vector<std::string> damaged;
  for (const auto& entry : fs::directory_iterator(data_dir_)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("depot.wordcount.") || !name.ends_with(".wt")) continue;
    std::string bytes = ReadFile(entry.path().string());
    bool changed = false;
    for (size_t at = bytes.find(token); at != std::string::npos; at = bytes.find(token, at + 1)) {
      bytes[at + 5] ^= 0x01;
      changed = true;
    }
    if (!changed) continue;
    std::ofstream(entry.path(), std::ios::binary | std::ios::trunc)
        .write(bytes.data(), bytes.size());
    damaged.push_back(name.substr(0, name.size() - 3));
  }
  ASSERT_FALSE(damaged.empty()) << "no depot file holds the token verbatim";

  // stratad reads the first and last record of every depot partition at start, so a
  // damaged first or last page stops it there; any other page at the first read of it.
  server_ = std::make_unique<StratadProcess>();
  if (server_->Start(data_dir_, log_, {"--cache-size", "64MB"})) {
    TestClient client = Connected();
    Result<std::map<int, std::map<int64_t, Value>>> read = ReadAllSentences(client, 8);
    if (read.ok()) {
      for (const auto& [partition, records] : *read) {
        for (const auto& [offset, value] : records) {
          const std::string& sentence = value.as_string();
          ASSERT_TRUE(!sentence.starts_with("sentence 0.") ||
                      std::stoi(sentence.substr(11)) >= 16 ||
                      sentence.find(token) != std::string::npos)
              << "partition " << partition << " offset " << offset
              << " served altered: " << sentence;
        }
      }
    }
    ASSERT_FALSE(read.ok()) << "every damaged record read back intact?";
    EXPECT_EQ(read.status().message().find("OVERLOADED"), std::string::npos)
        << read.status().ToString();
  }
  ASSERT_NO_FATAL_FAILURE(ExpectExitForStorageFailure("checksum"));
  const std::string log = ReadFile(log_);
  bool names_a_table = false;
  for (const std::string& table : damaged)
    names_a_table |= log.find("table '" + table + "'") != std::string::npos;
  EXPECT_TRUE(names_a_table) << log;
}

// Offsets and lengths of the records of a WiredTiger log file (records start on 128-byte
// boundaries with their length in the first 4 bytes, little-endian), from the file header
// at offset 0 to the first zero length.
std::vector<std::pair<size_t, uint32_t>> LogRecordsOf(const std::string& bytes) {
  std::vector<std::pair<size_t, uint32_t>> records;
  size_t pos = 0;
  while (pos + 16 <= bytes.size()) {
    uint32_t len = 0;
    std::memcpy(&len, bytes.data() + pos, 4);
    if (len == 0 || pos + len > bytes.size()) break;
    records.emplace_back(pos, len);
    pos += (len + 127) / 128 * 128;
  }
  return records;
}

TEST_F(StorageFailureTest, DamagedLogRecordRefusesToStartUnlessTheLossIsAccepted) {
  StartServer();
  {
    TestClient client = Connected();
    DeployWordcount(client);
    for (int batch = 0; batch < 100; ++batch) {
      std::vector<std::string> texts;
      for (int i = 0; i < 10; ++i)
        texts.push_back("batch " + std::to_string(batch) + " sentence " + std::to_string(i));
      Result<proto::Response> r = client.Call(Sentences(texts));
      ASSERT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
    }
  }
  const int killed = server_->Stop(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(killed));

  // One flipped byte in a record in the middle of the longest log file.
  std::string file;
  std::string bytes;
  std::vector<std::pair<size_t, uint32_t>> records;
  for (const auto& entry : fs::directory_iterator(data_dir_)) {
    if (!entry.path().filename().string().starts_with("WiredTigerLog.")) continue;
    std::string content = ReadFile(entry.path().string());
    auto walked = LogRecordsOf(content);
    if (walked.size() > records.size()) {
      file = entry.path().string();
      bytes = std::move(content);
      records = std::move(walked);
    }
  }
  ASSERT_GT(records.size(), 100u);
  const auto [pos, len] = records[records.size() / 2];
  bytes[pos + len / 2] ^= 0x20;
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());

  server_ = std::make_unique<StratadProcess>();
  ASSERT_FALSE(server_->Start(data_dir_, log_, {"--cache-size", "64MB"}))
      << "started over a damaged log record:\n"
      << ReadFile(log_);
  const int refused = server_->Wait();
  std::string log = ReadFile(log_);
  ASSERT_TRUE(WIFEXITED(refused)) << log;
  EXPECT_EQ(WEXITSTATUS(refused), 1) << log;
  EXPECT_NE(log.find("damaged record (bad checksum) at offset " + std::to_string(pos) + " of " +
                     fs::path(file).filename().string()),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("bytes of log"), std::string::npos) << log;
  EXPECT_NE(log.find("--accept-log-loss"), std::string::npos) << log;
  const size_t line = log.find("ERROR");
  if (line != std::string::npos)
    std::cerr << "stratad: " << log.substr(line, log.find('\n', line) - line) << "\n";

  StartServer({"--accept-log-loss"});
  log = ReadFile(log_);
  EXPECT_NE(log.find("WARN the WiredTiger log"), std::string::npos) << log;
  EXPECT_NE(log.find("accept_log_loss is set"), std::string::npos) << log;
  StopServer();
  StartServer();  // the log was truncated at the damaged record: a normal start
  StopServer();
}

// The embedded engine after a panic it survives (no callback that exits): a read that needs
// a new storage session gets the storage's own error, not kBusy (which stratad answers as
// OVERLOADED, telling clients to retry forever).
TEST_F(StorageFailureTest, ReadsAfterAStoragePanicKeepTheStorageErrorCode) {
  // Digits: the other words are random letters, so no part of the token repeats in a page
  // and snappy keeps it as a literal. The 'm' puts its key in a page in the middle of the
  // table, away from the schema record that opening the engine reads.
  const std::string token = "m7305819264738150";
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Status> fatal;
  EngineOptions options;
  options.data_dir = data_dir_;
  options.task_threads = 1;
  options.cache_size_bytes = 32ull << 20;
  options.log_file_max_bytes = 1ull << 20;
  options.on_fatal_storage_error = [&](const Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    fatal.push_back(status);
    cv.notify_all();
  };
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 random(seed);
  {
    std::unique_ptr<Engine> engine = Engine::Open(options).value();
    ASSERT_TRUE(engine->Deploy(WORDCOUNT_MODULE, {.partitions = 1}).ok());
    // Enough distinct words for many $$word_counts pages; the token's key is stored once.
    std::vector<Value> sentences;
    for (int i = 0; i < 3000; ++i) sentences.push_back(Value(RandomText(random, 10)));
    sentences.push_back(Value(token));
    ASSERT_TRUE(engine->AppendBatch("wordcount", "*sentences", std::move(sentences)).ok());
  }  // closing checkpoints the pages
  const std::string file = data_dir_ + "/pstate.wordcount.word_counts.0.wt";
  std::string bytes = ReadFile(file);
  int flipped = 0;
  for (size_t at = bytes.find(token); at != std::string::npos; at = bytes.find(token, at + 1)) {
    bytes[at + 5] ^= 0x01;
    ++flipped;
  }
  ASSERT_GT(flipped, 0) << "the token is not stored verbatim in " << file;
  std::ofstream(file, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());

  Result<std::unique_ptr<Engine>> reopened = Engine::Open(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  std::unique_ptr<Engine> engine = std::move(reopened).value();
  // The topology reads the token's count on the task thread: the damaged page panics.
  Result<AppendResult> appended = engine->Append("wordcount", "*sentences", Value(token));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return !fatal.empty(); }))
        << "no fatal storage error was reported";
    EXPECT_EQ(fatal[0].code(), StatusCode::kCorruption) << fatal[0].ToString();
    EXPECT_NE(fatal[0].message().find("table 'pstate.wordcount.word_counts.0'"), std::string::npos)
        << fatal[0].ToString();
  }
  EXPECT_FALSE(appended.ok() && appended->failure.ok()) << "processed a record over a damaged page";
  // No read ran yet, so the reader's session pool is empty: this read opens a session.
  Result<Value> count = engine->SelectOne("wordcount", "$$word_counts", Path().Key("alpha"));
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().code(), StatusCode::kBusy) << count.status().ToString();
  EXPECT_NE(count.status().message().find("WT_PANIC"), std::string::npos)
      << count.status().ToString();
  Result<std::vector<DepotEntry>> records =
      engine->ReadDepot("wordcount", "*sentences", 0, 0, 10, 10);
  ASSERT_FALSE(records.ok());
  EXPECT_NE(records.status().code(), StatusCode::kBusy) << records.status().ToString();
}

}  // namespace
}  // namespace strata::server_test
