#include "log_scan.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

namespace strata {
namespace {

// WiredTiger 3.2.1's log format (src/include/log.h): every record starts on a 128-byte
// boundary with a 16-byte header { uint32 len (header included); uint32 checksum (CRC32C of
// the `len` bytes with this field zero); uint16 flags; uint8 unused[2]; uint32 mem_len },
// little-endian, and is padded with zeros to the next boundary. A file starts with its
// header record at offset 0; files of log version 3 follow it with a system record (record
// type WT_LOGREC_SYSTEM, the previous file's end). The first byte of a record's body is its
// packed record type: types up to 63 pack as 0x80 | type.
constexpr uint64_t kAlign = 128;
constexpr uint32_t kHeaderSize = 16;
constexpr uint8_t kPackedSystemType = 0x80 | WT_LOGREC_SYSTEM;
// A crash cuts a write short at a page boundary at most this fine (sectors).
constexpr uint64_t kTearGranularity = 512;
// How far log writes can be out of order (src/include/log.h, src/log/log_slot.c): records
// are written in slots, a slot's buffer holds at most WT_LOG_SLOT_BUF_SIZE (256 KiB) and
// WT_SLOT_POOL (128) slots exist; a slot is free again only once every earlier slot is
// written. So at any time at most 128 slots are written and not yet followed by all their
// predecessors: a slot left unwritten by a crash has valid records after it within 128
// slots. A record above WT_LOG_SLOT_BUF_MAX (half a buffer) is written unbuffered as a slot
// of its own, of its size: the window grows by each such record.
constexpr uint64_t kSlotPool = 128;
constexpr uint64_t kSlotBufSize = 256 << 10;
constexpr uint64_t kOutOfOrderWindow = kSlotPool * kSlotBufSize;
constexpr uint64_t kUnbufferedRecord = kSlotBufSize / 2;
constexpr std::string_view kLogPrefix = "WiredTigerLog.";

uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

uint64_t RoundUp(uint64_t value, uint64_t to) { return (value + to - 1) / to * to; }

// A log file mapped read-only (a preallocated file is mostly zeros; nothing is copied).
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() {
    if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  Status Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::IOError("cannot read log file '" + path + "': " + strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
      const int error = errno;
      ::close(fd);
      return Status::IOError("cannot stat log file '" + path + "': " + strerror(error));
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* mapped = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (mapped == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        return Status::IOError("cannot map log file '" + path + "': " + strerror(error));
      }
      data_ = static_cast<const uint8_t*>(mapped);
    }
    ::close(fd);
    return Status::Ok();
  }
  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

bool AllZero(const uint8_t* p, uint64_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

class Checker {
 public:
  Checker() : crc32c_(wiredtiger_crc32c_func()) {}

  // Whether a record with a plausible length starts at `pos` and its checksum matches.
  bool ValidRecordAt(const MappedFile& file, uint64_t pos, uint32_t* len) {
    if (pos + kHeaderSize > file.size()) return false;
    *len = Le32(file.data() + pos);
    if (*len <= kHeaderSize || pos + RoundUp(*len, kAlign) > file.size()) return false;
    // WiredTiger writes the unused bytes as zeros and only low flag bits (compressed,
    // encrypted): other bytes there are no header, and cost no checksum of `len` bytes
    // (which matters when looking for records inside a long claimed length).
    const uint8_t* header = file.data() + pos;
    if (header[9] != 0 || header[10] != 0 || header[11] != 0) return false;
    scratch_.assign(file.data() + pos, file.data() + pos + *len);
    std::memset(scratch_.data() + 4, 0, 4);
    return crc32c_(scratch_.data(), scratch_.size()) == Le32(file.data() + pos + 4);
  }

 private:
  uint32_t (*crc32c_)(const void*, size_t);
  std::vector<uint8_t> scratch_;
};

// Whether the `len`-byte record at `pos` (whose checksum failed) can be a write cut short:
// zeros from a tear boundary inside the record to its end, and no valid record inside it.
// A length field damaged upwards can reach into zeros too (near the end of the log), but
// the records it then claims to cover are still there, valid: that is damage.
bool PossiblyTorn(Checker& checker, const MappedFile& file, uint64_t pos, uint32_t len) {
  const uint8_t* begin = file.data() + pos;
  const uint8_t* end = begin + len;
  const uint8_t* last = end;
  while (last > begin && last[-1] == 0) --last;
  const uint64_t zeros_from = pos + static_cast<uint64_t>(last - begin);
  if (RoundUp(zeros_from, kTearGranularity) >= pos + len) return false;
  for (uint64_t at = pos + kAlign; at < pos + len; at += kAlign) {
    uint32_t inner = 0;
    if (Le32(file.data() + at) != 0 && checker.ValidRecordAt(file, at, &inner)) return false;
  }
  return true;
}

// The first 128-byte block at or after `pos` that is not all zeros; file.size() if none.
uint64_t NextNonZeroBlock(const MappedFile& file, uint64_t pos) {
  for (; pos + kAlign <= file.size(); pos += kAlign) {
    if (!AllZero(file.data() + pos, kAlign)) return pos;
  }
  return file.size();
}

struct LogFile {
  uint64_t number = 0;
  std::string name;
};

Result<std::vector<LogFile>> ListLogFiles(const std::string& dir) {
  std::vector<LogFile> files;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return files;  // a new data directory: no log yet
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kLogPrefix)) continue;
    const std::string digits = name.substr(kLogPrefix.size());
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    files.push_back({std::stoull(digits), name});
  }
  std::sort(files.begin(), files.end(),
            [](const LogFile& a, const LogFile& b) { return a.number < b.number; });
  return files;
}

struct LogPosition {
  uint64_t file = 0;
  uint64_t offset = 0;
};

// Recovery's starting point: the checkpoint LSN WiredTiger keeps in the metadata file's
// entry of WiredTiger.turtle ("file:WiredTiger.wt", then its configuration with
// checkpoint_lsn=(FILE,OFFSET)); recovery reads no log before it. nullopt when the turtle
// file or the entry is missing or unreadable (then every log file is read).
std::optional<LogPosition> ReadCheckpointLsn(const std::string& dir) {
  std::ifstream turtle(dir + "/WiredTiger.turtle");
  std::string line;
  while (std::getline(turtle, line)) {
    if (line != "file:WiredTiger.wt") continue;
    if (!std::getline(turtle, line)) return std::nullopt;
    constexpr std::string_view kKey = "checkpoint_lsn=(";
    const size_t at = line.find(kKey);
    if (at == std::string::npos) return std::nullopt;
    unsigned long long file = 0;
    unsigned long long offset = 0;
    if (std::sscanf(line.c_str() + at + kKey.size(), "%llu,%llu)", &file, &offset) != 2) {
      return std::nullopt;
    }
    return LogPosition{file, offset};
  }
  return std::nullopt;
}

// A stop of recovery's walk that is not damage by itself: a hole (zeros, then a record) or
// a torn record. Damage all the same when a valid transaction record follows it beyond the
// out-of-order window; returns that record's file index and offset.
struct LaterRecord {
  size_t file = 0;
  uint64_t offset = 0;
};
Result<std::optional<LaterRecord>> ValidRecordBeyondWindow(const std::string& dir,
                                                           const std::vector<LogFile>& files,
                                                           Checker& checker, size_t stop_file,
                                                           uint64_t stop_pos, uint64_t resume) {
  uint64_t window = kOutOfOrderWindow;
  uint64_t distance_base = 0;  // log bytes from the stop to the start of file i
  for (size_t i = stop_file; i < files.size(); ++i) {
    MappedFile file;
    STRATA_RETURN_IF_ERROR(file.Open(dir + "/" + files[i].name));
    uint64_t pos = i == stop_file ? resume : kAlign;
    const uint64_t origin = i == stop_file ? stop_pos : 0;
    while (pos + kAlign <= file.size()) {
      uint32_t len = 0;
      if (Le32(file.data() + pos) != 0 && checker.ValidRecordAt(file, pos, &len)) {
        if (file.data()[pos + kHeaderSize] != kPackedSystemType) {
          if (distance_base + (pos - origin) > window)
            return std::optional<LaterRecord>(LaterRecord{i, pos});
          if (len > kUnbufferedRecord) window += RoundUp(len, kAlign);
        }
        pos += RoundUp(len, kAlign);
      } else {
        pos += kAlign;
      }
    }
    distance_base += file.size() - origin;
  }
  return std::optional<LaterRecord>();
}

}  // namespace

Result<std::optional<LogDamage>> FindLogDamage(const std::string& dir) {
  STRATA_ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(dir));
  // Recovery starts at the checkpoint LSN: what is before it is never read again.
  const std::optional<LogPosition> checkpoint = ReadCheckpointLsn(dir);
  if (checkpoint) {
    std::erase_if(files, [&](const LogFile& f) { return f.number < checkpoint->file; });
  }
  Checker checker;
  std::optional<LogDamage> damage;
  size_t damaged_file = 0;
  uint64_t damaged_pos = 0;
  auto record_damage = [&](size_t i, uint64_t pos, std::string reason) {
    damage.emplace();
    damage->file = files[i].name;
    damage->offset = pos;
    damage->reason = std::move(reason);
    damaged_file = i;
    damaged_pos = pos;
    damage->from_checkpoint = checkpoint.has_value();
  };
  // The walk recovery does: record after record, file after file, to the first stop.
  for (size_t i = 0; i < files.size() && !damage; ++i) {
    MappedFile file;
    STRATA_RETURN_IF_ERROR(file.Open(dir + "/" + files[i].name));
    uint64_t pos = 0;
    if (checkpoint && files[i].number == checkpoint->file)
      pos = RoundUp(checkpoint->offset, kAlign);
    // A stop that is damage only if valid records follow beyond the window.
    const char* suspect = nullptr;
    uint64_t resume = 0;
    while (pos + kAlign <= file.size()) {
      uint32_t len = 0;
      if (checker.ValidRecordAt(file, pos, &len)) {
        pos += RoundUp(len, kAlign);
        continue;
      }
      len = Le32(file.data() + pos);
      if (len == 0) {
        const uint64_t next = NextNonZeroBlock(file, pos);
        if (next == file.size()) break;  // the end of this file's records: on with the next
        // A hole is a slot left unwritten: it ends where a later slot, a record, starts.
        // Zeros that end inside written data are a damaged sector, not a hole.
        uint32_t next_len = 0;
        if (checker.ValidRecordAt(file, next, &next_len) ||
            (next_len > kHeaderSize && next + RoundUp(next_len, kAlign) <= file.size() &&
             PossiblyTorn(checker, file, next, next_len))) {
          suspect = "hole";
          resume = next;
          break;
        }
        record_damage(
            i, pos,
            std::to_string(next - pos) + " zero bytes, then bytes that start no valid record");
        break;
      }
      if (len > kHeaderSize && pos + RoundUp(len, kAlign) <= file.size() &&
          PossiblyTorn(checker, file, pos, len)) {
        suspect = "torn record";
        resume = pos + RoundUp(len, kAlign);
        break;
      }
      record_damage(i, pos,
                    len > kHeaderSize && pos + RoundUp(len, kAlign) <= file.size()
                        ? "bad checksum"
                        : "record length " + std::to_string(len) + " is impossible there");
      break;
    }
    if (suspect == nullptr) continue;
    // Recovery ends here. Nothing acknowledged is lost if what follows was written out of
    // order (within the window); valid records beyond it were written after this one was.
    STRATA_ASSIGN_OR_RETURN(std::optional<LaterRecord> later,
                            ValidRecordBeyondWindow(dir, files, checker, i, pos, resume));
    if (!later) return std::optional<LogDamage>();
    record_damage(i, pos,
                  std::string(suspect) + " followed by valid records beyond WiredTiger's " +
                      std::to_string(kOutOfOrderWindow >> 20) + " MiB out-of-order write window");
  }
  if (!damage) return damage;

  // What recovery would drop: every valid transaction record after the damaged one.
  for (size_t i = damaged_file; i < files.size(); ++i) {
    MappedFile file;
    STRATA_RETURN_IF_ERROR(file.Open(dir + "/" + files[i].name));
    const uint64_t from = i == damaged_file ? damaged_pos : 0;
    uint64_t pos = i == damaged_file ? damaged_pos + kAlign : kAlign;
    uint64_t last_end = 0;
    while (pos + kAlign <= file.size()) {
      uint32_t len = 0;
      if (Le32(file.data() + pos) != 0 && checker.ValidRecordAt(file, pos, &len)) {
        if (file.data()[pos + kHeaderSize] != kPackedSystemType) {
          ++damage->records_after;
          last_end = pos + len;
        }
        pos += RoundUp(len, kAlign);
      } else {
        pos += kAlign;
      }
    }
    if (last_end > 0) {
      damage->bytes_after += last_end - from;
      ++damage->files_after;
      damage->last_file = files[i].name;
    }
  }
  return damage;
}

std::string DescribeLogDamage(const std::string& dir, const LogDamage& damage) {
  const std::string where =
      damage.from_checkpoint
          ? " (after the last checkpoint, where recovery starts)"
          : " (the last checkpoint's position could not be read from WiredTiger.turtle: the "
            "damage may be before it, where recovery does not read)";
  if (damage.records_after == 0) {
    return "the last record of the WiredTiger log in '" + dir + "' is damaged (" + damage.reason +
           ") at offset " + std::to_string(damage.offset) + " of " + damage.file + where +
           ": recovery ends before it, and its transactions (acknowledged or not) are lost";
  }
  return "the WiredTiger log in '" + dir + "' has a damaged record (" + damage.reason +
         ") at offset " + std::to_string(damage.offset) + " of " + damage.file + where +
         ", followed by " + std::to_string(damage.records_after) + " valid log records (" +
         std::to_string(damage.bytes_after) + " bytes of log in " +
         std::to_string(damage.files_after) + " file(s), up to " + damage.last_file +
         "): recovery stops at the damaged record and would drop every transaction after it, "
         "acknowledged ones included";
}

}  // namespace strata
