// Damaged files on disk: a flipped byte in a compressed table page is an error naming the
// table (and a fatal-error report), never altered data; a damaged record in the middle of
// the WiredTiger log (a flipped byte, a damaged length, a zeroed sector) makes Open refuse
// (unless the loss is accepted), damage before the last checkpoint does not matter, a
// directory in use is kBusy before any scan, and the states a kill -9 leaves (a torn or
// unwritten tail, holes from out-of-order writes) open normally.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <wiredtiger.h>

#include "storage/storage.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::SmallStorageOptions;
using testing::TempDir;

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteWholeFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A record that snappy compresses well (repeated words) around a token that appears nowhere
// else: snappy stores a first occurrence as a literal, so the token is in the file verbatim.
std::string RecordWithToken(int i, const std::string& token) {
  std::string record = "record " + std::to_string(i) + " ";
  for (int w = 0; w < 20; ++w) record += "alpha beta gamma delta ";
  return record + token;
}

std::string UniqueToken() { return "QJXZKWVYPBMFHRTN"; }

TEST(CorruptionTest, FlippedByteInCompressedPageIsAnErrorNamingTheTable) {
  TempDir dir;
  const std::string table_name = "depot.m.d.0";
  constexpr int kRecords = 2000;
  constexpr int kTokenRecord = 1234;
  {
    std::unique_ptr<Storage> storage = Storage::Open(SmallStorageOptions(dir.path())).value();
    TableId table = storage->OpenTable(table_name, TableKind::kLog).value();
    std::unique_ptr<Session> session = storage->OpenSession().value();
    ASSERT_TRUE(session->Begin().ok());
    for (int i = 0; i < kRecords; ++i) {
      const std::string token = i == kTokenRecord ? UniqueToken() : "";
      ASSERT_TRUE(session->PutRecord(table, i, RecordWithToken(i, token)).ok());
    }
    ASSERT_TRUE(session->Commit().ok());
  }  // closing takes a checkpoint: the pages are written, compressed

  const std::string file = dir.Sub(table_name + ".wt");
  std::string bytes = ReadWholeFile(file);
  ASSERT_LT(bytes.size(), size_t{kRecords} * 100) << "the pages are not compressed";
  int flipped = 0;
  for (size_t at = bytes.find(UniqueToken()); at != std::string::npos;
       at = bytes.find(UniqueToken(), at + 1)) {
    bytes[at + 5] ^= 0x01;  // 'W' -> 'V': still a plausible letter
    ++flipped;
  }
  ASSERT_GT(flipped, 0) << "the token is not stored verbatim in " << file;
  WriteWholeFile(file, bytes);

  std::mutex mu;
  std::vector<Status> fatal;
  StorageOptions options = SmallStorageOptions(dir.path());
  options.on_fatal_error = [&](const Status& status) {
    std::lock_guard<std::mutex> lock(mu);
    fatal.push_back(status);
  };
  std::unique_ptr<Storage> storage = Storage::Open(options).value();
  TableId table = storage->OpenTable(table_name, TableKind::kLog).value();
  std::unique_ptr<Session> session = storage->OpenSession().value();
  std::string value;
  Result<bool> found = session->GetRecord(table, kTokenRecord, &value);
  ASSERT_FALSE(found.ok()) << "read back " << (found.ok() && *found ? value : "nothing")
                           << " from a damaged page without an error";
  EXPECT_NE(found.status().message().find(table_name), std::string::npos)
      << found.status().ToString();
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(fatal.size(), 1u);
  EXPECT_EQ(fatal[0].code(), StatusCode::kCorruption) << fatal[0].ToString();
  EXPECT_NE(fatal[0].message().find("table '" + table_name + "'"), std::string::npos)
      << fatal[0].ToString();
  EXPECT_NE(fatal[0].message().find("checksum"), std::string::npos) << fatal[0].ToString();
  EXPECT_EQ(storage->FatalError().code(), StatusCode::kCorruption);
  // The connection is dead: later operations fail too, with WiredTiger's panic.
  EXPECT_FALSE(session->GetRecord(table, 0, &value).ok());
}

// A table an older build created (WiredTiger's default checksum=uncompressed) is reported
// at Open: WiredTiger 3.2.1 cannot change the setting, so its compressed pages stay
// unchecked until it is rebuilt.
TEST(CorruptionTest, OpenWarnsAboutTablesWithoutChecksums) {
  TempDir dir;
  {
    std::unique_ptr<Storage> storage = Storage::Open(SmallStorageOptions(dir.path())).value();
    ASSERT_TRUE(storage->OpenTable("new.table", TableKind::kBytes).ok());
  }
  {
    WT_CONNECTION* conn = nullptr;
    const std::string config = "log=(enabled=true),extensions=[" STRATA_WT_SNAPPY_EXTENSION "]";
    ASSERT_EQ(wiredtiger_open(dir.path().c_str(), nullptr, config.c_str(), &conn), 0);
    WT_SESSION* session = nullptr;
    ASSERT_EQ(conn->open_session(conn, nullptr, nullptr, &session), 0);
    ASSERT_EQ(session->create(session, "table:old.table",
                              "key_format=u,value_format=u,block_compressor=snappy"),
              0);
    ASSERT_EQ(conn->close(conn, nullptr), 0);
  }
  std::vector<std::string> warnings;
  StorageOptions options = SmallStorageOptions(dir.path());
  options.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
  std::unique_ptr<Storage> storage = Storage::Open(options).value();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("1 table(s)"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("'old.table'"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("checksum=on"), std::string::npos) << warnings[0];
}

// Out of file descriptors WiredTiger panics (creating a table fails to open its directory):
// on_fatal_error gets the cause once, and later calls fail with the panic. In a child
// process, whose descriptor limit it lowers.
TEST(CorruptionTest, OutOfFileDescriptorsIsReportedOnceAsFatal) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    StorageOptions options = SmallStorageOptions(dir.path());
    options.on_fatal_error = [&](const Status& status) {
      const std::string text = status.ToString() + "\n";
      if (write(fds[1], text.data(), text.size()) < 0) _exit(3);
    };
    auto storage = Storage::Open(options);
    if (!storage.ok()) _exit(2);
    rlimit limit{64, 64};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(4);
    int created = 0;
    // Table names t0, t1, ... (appended, not concatenated: g++ 12 warns, wrongly, about
    // "t" + std::to_string(n) here).
    while (created < 1000) {
      std::string name = std::to_string(created);
      name.insert(name.begin(), 't');
      if (!(*storage)->OpenTable(name, TableKind::kBytes).ok()) break;
      ++created;
    }
    // Later calls fail too; the callback is not called again.
    const bool later_fails = !(*storage)->OpenTable("after", TableKind::kBytes).ok();
    _exit(created < 1000 && later_fails && !(*storage)->FatalError().ok() ? 0 : 5);
  }
  close(fds[1]);
  std::string reported;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) reported.append(buffer, n);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << ": " << reported;
  EXPECT_EQ(std::count(reported.begin(), reported.end(), '\n'), 1) << reported;
  EXPECT_NE(reported.find("IOError: WiredTiger panicked"), std::string::npos) << reported;
  EXPECT_NE(reported.find("Too many open files"), std::string::npos) << reported;
}

// ---- The log ------------------------------------------------------------------------------

// The log files of a data directory, oldest first.
std::vector<std::string> LogFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().starts_with("WiredTigerLog.")) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

uint32_t Le32(const std::string& bytes, size_t at) {
  uint32_t value = 0;
  std::memcpy(&value, bytes.data() + at, 4);
  return value;
}

// Offsets and lengths of the records of a log file, walked by their length fields (the
// header record at offset 0 first) up to the first zero length.
std::vector<std::pair<size_t, uint32_t>> RecordsOf(const std::string& bytes) {
  std::vector<std::pair<size_t, uint32_t>> records;
  size_t pos = 0;
  while (pos + 16 <= bytes.size()) {
    const uint32_t len = Le32(bytes, pos);
    if (len == 0 || pos + len > bytes.size()) break;
    records.emplace_back(pos, len);
    pos += (len + 127) / 128 * 128;
  }
  return records;
}

StorageOptions LogTestOptions(const std::string& path) {
  StorageOptions options = SmallStorageOptions(path);
  // No checkpoint after the first: recovery replays the whole log, so a record dropped by
  // recovery is lost for good.
  options.checkpoint_interval_s = 3600;
  options.checkpoint_log_bytes = 0;
  return options;
}

// A child process that writes `threads` streams of committed, durable records into table
// "t" (key "<thread>/<n>", a value without zero bytes) and reports progress through a pipe
// byte per durable batch, until killed.
pid_t StartWriter(const std::string& dir, int threads, int* progress_fd) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid != 0) {
    close(fds[1]);
    *progress_fd = fds[0];
    return pid;
  }
  close(fds[0]);
  auto storage = Storage::Open(LogTestOptions(dir));
  if (!storage.ok()) _exit(2);
  TableId table = (*storage)->OpenTable("t", TableKind::kBytes).value();
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      std::unique_ptr<Session> session = (*storage)->OpenSession().value();
      for (int n = 0;; ++n) {
        const std::string key = std::to_string(t) + "/" + std::to_string(n);
        if (!session->Put(table, key, "value of " + key + std::string(100 + n % 300, 'v')).ok()) {
          _exit(3);
        }
        if (n % 16 == 15) {
          if (!(*storage)->WaitDurable().ok()) _exit(4);
          const char byte = 1;
          if (write(fds[1], &byte, 1) != 1) _exit(5);
        }
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  _exit(0);
}

// Kills a writer (SIGKILL) once it reported `batches` durable batches.
void KillAfter(pid_t pid, int progress_fd, int batches) {
  char buffer[64];
  int seen = 0;
  while (seen < batches) {
    const ssize_t n = read(progress_fd, buffer, sizeof buffer);
    if (n <= 0) break;
    seen += static_cast<int>(n);
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(progress_fd);
  ASSERT_GE(seen, batches) << "the writer stopped early (status " << status << ")";
}

int CountRows(Storage& storage) {
  TableId table = storage.OpenTable("t", TableKind::kBytes).value();
  std::unique_ptr<Session> session = storage.OpenSession().value();
  int rows = 0;
  EXPECT_TRUE(session->Scan(table, "", "", false, [&](auto, auto) { return ++rows, true; }).ok());
  return rows;
}

TEST(LogDamageTest, DamagedRecordInTheMiddleRefusesToOpenUnlessAccepted) {
  TempDir dir;
  int progress = -1;
  const pid_t pid = StartWriter(dir.path(), 1, &progress);
  ASSERT_GT(pid, 0);
  ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, 200));

  // Flip one byte in the body of a record in the middle of the longest log file.
  std::string damaged_file;
  std::string bytes;
  std::vector<std::pair<size_t, uint32_t>> records;
  for (const std::string& file : LogFiles(dir.path())) {
    std::string content = ReadWholeFile(file);
    auto walked = RecordsOf(content);
    if (walked.size() > records.size()) {
      damaged_file = file;
      bytes = std::move(content);
      records = std::move(walked);
    }
  }
  ASSERT_GT(records.size(), 100u);
  // The rows recovery finds in an intact copy, to compare with what accepting the loss keeps.
  TempDir intact;
  fs::copy(dir.path(), intact.path(),
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  int intact_rows = 0;
  {
    std::unique_ptr<Storage> storage = Storage::Open(LogTestOptions(intact.path())).value();
    intact_rows = CountRows(*storage);
  }
  ASSERT_GE(intact_rows, 200 * 16);
  const auto [pos, len] = records[records.size() / 2];
  bytes[pos + len / 2] ^= 0x20;
  WriteWholeFile(damaged_file, bytes);

  Result<std::unique_ptr<Storage>> refused = Storage::Open(LogTestOptions(dir.path()));
  ASSERT_FALSE(refused.ok()) << "opened a log with a damaged record in the middle";
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  const std::string& message = refused.status().message();
  EXPECT_NE(message.find("damaged record"), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(pos) + " of " +
                         fs::path(damaged_file).filename().string()),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("bytes of log"), std::string::npos) << message;
  EXPECT_NE(message.find("accept_log_loss"), std::string::npos) << message;
  // Refusing changed nothing: a second try says the same.
  EXPECT_EQ(Storage::Open(LogTestOptions(dir.path())).status().message(), message);

  StorageOptions accepting = LogTestOptions(dir.path());
  accepting.accept_log_loss = true;
  std::vector<std::string> warnings;
  accepting.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
  Result<std::unique_ptr<Storage>> opened = Storage::Open(accepting);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("accept_log_loss"), std::string::npos) << warnings[0];
  // What the refusal protected: recovery stopped at the damaged record.
  EXPECT_LT(CountRows(**opened), intact_rows);
  opened->reset();
  // Once recovered (and truncated) the log is clean again.
  EXPECT_TRUE(Storage::Open(LogTestOptions(dir.path())).ok());
}

// The end of the log as a crash leaves it opens without a word; a damaged last record (no
// valid record after it: recovery always ended before it) opens with a warning.
TEST(LogDamageTest, TornOrUnwrittenTailOpensNormally) {
  enum class Tail { kTorn, kUnwritten, kDamaged };
  for (const Tail tail : {Tail::kTorn, Tail::kUnwritten, Tail::kDamaged}) {
    SCOPED_TRACE(tail == Tail::kTorn        ? "last record torn"
                 : tail == Tail::kUnwritten ? "last record unwritten"
                                            : "last record damaged");
    TempDir dir;
    int progress = -1;
    const pid_t pid = StartWriter(dir.path(), 1, &progress);
    ASSERT_GT(pid, 0);
    ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, 100));
    const std::vector<std::string> files = LogFiles(dir.path());
    ASSERT_FALSE(files.empty());
    // The last file holding records after its header.
    std::string file;
    std::string bytes;
    std::vector<std::pair<size_t, uint32_t>> records;
    for (auto it = files.rbegin(); it != files.rend() && records.size() < 3; ++it) {
      file = *it;
      bytes = ReadWholeFile(file);
      records = RecordsOf(bytes);
    }
    ASSERT_GE(records.size(), 3u);
    // The last record cut at a 512-byte boundary (a write interrupted by a crash), entirely
    // missing, or whole with one byte flipped.
    const auto [pos, len] = records.back();
    if (tail == Tail::kDamaged) {
      bytes[pos + len / 2] ^= 0x20;
    } else {
      size_t cut = (pos + 16 + 511) / 512 * 512;
      if (tail == Tail::kUnwritten || cut >= pos + len) cut = pos;
      std::fill(bytes.begin() + cut, bytes.begin() + pos + len, '\0');
    }
    WriteWholeFile(file, bytes);

    StorageOptions options = LogTestOptions(dir.path());
    std::vector<std::string> warnings;
    options.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
    Result<std::unique_ptr<Storage>> opened = Storage::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    // Every durable row but the one the last record held (the writer was killed after an
    // acknowledgement; a real crash tears only a write nobody was told about).
    EXPECT_GE(CountRows(**opened), 100 * 16 - 1);
    if (tail == Tail::kDamaged) {
      ASSERT_EQ(warnings.size(), 1u);
      EXPECT_NE(warnings[0].find("last record"), std::string::npos) << warnings[0];
      EXPECT_NE(warnings[0].find("offset " + std::to_string(pos)), std::string::npos)
          << warnings[0];
    } else {
      EXPECT_TRUE(warnings.empty()) << warnings[0];
    }
  }
}

// Open refuses the log of `dir` with kCorruption naming the damaged record (`offset` in
// log file `file`) and saying `words`; `why` is the failure message when it opens.
void ExpectDamageRefused(const std::string& dir, const std::string& file, size_t offset,
                         const std::string& words, const std::string& why) {
  Result<std::unique_ptr<Storage>> refused = Storage::Open(LogTestOptions(dir));
  ASSERT_FALSE(refused.ok()) << why;
  EXPECT_EQ(refused.status().code(), StatusCode::kCorruption);
  const std::string& message = refused.status().message();
  EXPECT_NE(message.find("offset " + std::to_string(offset) + " of " +
                         fs::path(file).filename().string()),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(words), std::string::npos) << message;
}

// The last file of the log that holds records after its header, its bytes and records.
struct LastLogFile {
  std::string path;
  std::string bytes;
  std::vector<std::pair<size_t, uint32_t>> records;
};
LastLogFile LastFileWithRecords(const std::string& dir, size_t at_least) {
  LastLogFile last;
  const std::vector<std::string> files = LogFiles(dir);
  for (auto it = files.rbegin(); it != files.rend() && last.records.size() < at_least; ++it) {
    last.path = *it;
    last.bytes = ReadWholeFile(last.path);
    last.records = RecordsOf(last.bytes);
  }
  return last;
}

// One bit set in the length field of a record near the end of the log: its claimed extent
// reaches past the last record into the preallocated zeros, like a torn write, but the
// records it claims to cover are still there, valid and acknowledged. That is damage.
TEST(LogDamageTest, DamagedLengthNearTheEndIsNotATornWrite) {
  TempDir dir;
  int progress = -1;
  const pid_t pid = StartWriter(dir.path(), 1, &progress);
  ASSERT_GT(pid, 0);
  ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, 40));
  LastLogFile last = LastFileWithRecords(dir.path(), 10);
  ASSERT_GE(last.records.size(), 10u);
  // Three records from the end: the two after it (< 4 KiB) are inside its claimed extent.
  const auto [pos, len] = last.records[last.records.size() - 3];
  ASSERT_LT(last.records.back().first + last.records.back().second, pos + (len | 4096));
  const uint32_t damaged = len | 4096;
  std::memcpy(last.bytes.data() + pos, &damaged, 4);
  WriteWholeFile(last.path, last.bytes);

  ExpectDamageRefused(dir.path(), last.path, pos, "followed by 2 valid log records",
                      "a damaged length was taken for a torn write");
}

// A 512-byte sector zeroed at a record start in the middle of the log, ending inside later
// written data: not a hole (an unwritten slot ends where a later record starts) but damage.
TEST(LogDamageTest, ZeroedSectorInTheMiddleIsNotAHole) {
  TempDir dir;
  int progress = -1;
  const pid_t pid = StartWriter(dir.path(), 1, &progress);
  ASSERT_GT(pid, 0);
  ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, 40));
  LastLogFile last = LastFileWithRecords(dir.path(), 100);
  ASSERT_GE(last.records.size(), 100u);
  // From the middle on, the first record starting on a sector whose end is inside a record.
  std::set<size_t> starts;
  for (const auto& record : last.records) starts.insert(record.first);
  size_t sector = 0;
  for (size_t i = last.records.size() / 2; i < last.records.size() && sector == 0; ++i) {
    const size_t pos = last.records[i].first;
    if (pos % 512 == 0 && !starts.contains(pos + 512)) sector = pos;
  }
  ASSERT_NE(sector, 0u);
  std::fill(last.bytes.begin() + static_cast<std::ptrdiff_t>(sector),
            last.bytes.begin() + static_cast<std::ptrdiff_t>(sector + 512), '\0');
  WriteWholeFile(last.path, last.bytes);

  ExpectDamageRefused(dir.path(), last.path, sector, "zero bytes",
                      "a zeroed sector was taken for a hole");
}

// Recovery starts at the last checkpoint: a damaged record before it is never read, so the
// log opens without a word and every row is there.
TEST(LogDamageTest, DamageBeforeTheLastCheckpointIsIgnored) {
  TempDir dir;
  constexpr int kRows = 640;
  {
    std::unique_ptr<Storage> storage = Storage::Open(LogTestOptions(dir.path())).value();
    TableId table = storage->OpenTable("t", TableKind::kBytes).value();
    std::unique_ptr<Session> session = storage->OpenSession().value();
    for (int n = 0; n < kRows; ++n) {
      const std::string key = "0/" + std::to_string(n);
      ASSERT_TRUE(
          session->Put(table, key, "value of " + key + std::string(100 + n % 300, 'v')).ok());
    }
    ASSERT_TRUE(storage->WaitDurable().ok());
  }  // closing takes a checkpoint
  const std::string turtle = ReadWholeFile(dir.path() + "/WiredTiger.turtle");
  const size_t meta = turtle.find("file:WiredTiger.wt\n");
  ASSERT_NE(meta, std::string::npos);
  const size_t key = turtle.find("checkpoint_lsn=(", meta);
  ASSERT_NE(key, std::string::npos);
  unsigned long long lsn_file = 0;
  unsigned long long lsn_offset = 0;
  ASSERT_EQ(std::sscanf(turtle.c_str() + key, "checkpoint_lsn=(%llu,%llu)", &lsn_file, &lsn_offset),
            2);
  char name[64];
  std::snprintf(name, sizeof name, "/WiredTigerLog.%010llu", lsn_file);
  const std::string path = dir.path() + name;
  std::string bytes = ReadWholeFile(path);
  std::vector<std::pair<size_t, uint32_t>> before;
  for (const auto& record : RecordsOf(bytes)) {
    if (record.first > 0 && record.first + record.second <= lsn_offset) before.push_back(record);
  }
  ASSERT_GE(before.size(), 100u) << "too few records before the checkpoint LSN " << lsn_offset;
  const auto [pos, len] = before[before.size() / 2];
  bytes[pos + len / 2] ^= 0x20;
  WriteWholeFile(path, bytes);

  StorageOptions options = LogTestOptions(dir.path());
  std::vector<std::string> warnings;
  options.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
  Result<std::unique_ptr<Storage>> opened = Storage::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  EXPECT_EQ(CountRows(**opened), kRows);
}

// A directory another process has open is kBusy, also while its log is being written: it
// is locked before the log is scanned. A scan of a live log could take a record being
// written for damage; here a record in the middle of the live log is damaged for certain,
// and still the answer is kBusy, not kCorruption.
TEST(LogDamageTest, OpenWhileAnotherProcessWritesIsBusy) {
  TempDir dir;
  int progress = -1;
  const pid_t pid = StartWriter(dir.path(), 1, &progress);
  ASSERT_GT(pid, 0);
  char byte = 0;
  for (int batch = 0; batch < 100; ++batch) ASSERT_EQ(read(progress, &byte, 1), 1);
  // One byte flipped in a record in the middle of the first log file (written and synced:
  // WiredTiger does not read it again while it runs).
  const std::string first = LogFiles(dir.path()).front();
  const auto records = RecordsOf(ReadWholeFile(first));
  ASSERT_GT(records.size(), 20u);
  const auto [pos, len] = records[records.size() / 2];
  {
    std::fstream file(first, std::ios::binary | std::ios::in | std::ios::out);
    file.seekg(static_cast<std::streamoff>(pos + len / 2));
    const char old = static_cast<char>(file.get());
    file.seekp(static_cast<std::streamoff>(pos + len / 2));
    file.put(static_cast<char>(old ^ 0x20));
  }
  for (int attempt = 0; attempt < 20; ++attempt) {
    ASSERT_EQ(read(progress, &byte, 1), 1) << "the writer stopped";  // it is writing
    StorageOptions options = LogTestOptions(dir.path());
    std::vector<std::string> warnings;
    options.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
    Result<std::unique_ptr<Storage>> second = Storage::Open(options);
    ASSERT_FALSE(second.ok()) << "opened a directory in use";
    EXPECT_EQ(second.status().code(), StatusCode::kBusy) << second.status().ToString();
    EXPECT_TRUE(warnings.empty()) << warnings[0];
  }
  ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, 0));
}

// No false alarm: the states kill -9 leaves behind, with four threads committing at once
// (WiredTiger writes their log slots out of order), always open.
TEST(LogDamageTest, Kill9DuringConcurrentCommitsNeverLooksDamaged) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 random(seed);
  TempDir dir;
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int progress = -1;
    const pid_t pid = StartWriter(dir.path(), 4, &progress);
    ASSERT_GT(pid, 0);
    const int batches = 20 + static_cast<int>(random() % 200);
    ASSERT_NO_FATAL_FAILURE(KillAfter(pid, progress, batches));
    StorageOptions options = LogTestOptions(dir.path());
    std::vector<std::string> warnings;
    options.on_warning = [&](const std::string& warning) { warnings.push_back(warning); };
    Result<std::unique_ptr<Storage>> opened = Storage::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_TRUE(warnings.empty()) << warnings[0];
    // Every round writes the same keys again: at least this round's durable rows.
    EXPECT_GE(CountRows(**opened), batches * 16);
  }
}

}  // namespace
}  // namespace strata
