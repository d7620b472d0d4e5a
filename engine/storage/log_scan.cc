#include "log_scan.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
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
    scratch_.assign(file.data() + pos, file.data() + pos + *len);
    std::memset(scratch_.data() + 4, 0, 4);
    return crc32c_(scratch_.data(), scratch_.size()) == Le32(file.data() + pos + 4);
  }

 private:
  uint32_t (*crc32c_)(const void*, size_t);
  std::vector<uint8_t> scratch_;
};

// Whether the `len`-byte record at `pos` can be a write cut short: zeros from a tear
// boundary inside the record to its end.
bool PossiblyTorn(const MappedFile& file, uint64_t pos, uint32_t len) {
  const uint8_t* begin = file.data() + pos;
  const uint8_t* end = begin + len;
  const uint8_t* last = end;
  while (last > begin && last[-1] == 0) --last;
  const uint64_t zeros_from = pos + static_cast<uint64_t>(last - begin);
  return RoundUp(zeros_from, kTearGranularity) < pos + len;
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

}  // namespace

Result<std::optional<LogDamage>> FindLogDamage(const std::string& dir) {
  STRATA_ASSIGN_OR_RETURN(std::vector<LogFile> files, ListLogFiles(dir));
  Checker checker;
  std::optional<LogDamage> damage;
  size_t damaged_file = 0;
  uint64_t damaged_pos = 0;
  // The walk recovery does: record after record, file after file, to the first stop.
  for (size_t i = 0; i < files.size() && !damage; ++i) {
    MappedFile file;
    STRATA_RETURN_IF_ERROR(file.Open(dir + "/" + files[i].name));
    uint64_t pos = 0;
    bool stop = false;
    while (pos + kAlign <= file.size()) {
      uint32_t len = 0;
      if (checker.ValidRecordAt(file, pos, &len)) {
        pos += RoundUp(len, kAlign);
        continue;
      }
      len = Le32(file.data() + pos);
      if (len == 0) {
        // The end of this file's records when only zeros follow (go on with the next file);
        // otherwise a hole, where recovery stops too: no damage.
        stop = !AllZero(file.data() + pos, file.size() - pos);
        break;
      }
      if (len > kHeaderSize && pos + RoundUp(len, kAlign) <= file.size() &&
          PossiblyTorn(file, pos, len)) {
        stop = true;  // a torn write: the end of the log
        break;
      }
      damage.emplace();
      damage->file = files[i].name;
      damage->offset = pos;
      damage->reason = len > kHeaderSize && pos + RoundUp(len, kAlign) <= file.size()
                           ? "bad checksum"
                           : "record length " + std::to_string(len) + " is impossible there";
      damaged_file = i;
      damaged_pos = pos;
      break;
    }
    if (stop) return std::optional<LogDamage>();
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
  if (damage.records_after == 0) {
    return "the last record of the WiredTiger log in '" + dir + "' is damaged (" + damage.reason +
           ") at offset " + std::to_string(damage.offset) + " of " + damage.file +
           ": recovery ends before it, and its transactions (acknowledged or not) are lost";
  }
  return "the WiredTiger log in '" + dir + "' has a damaged record (" + damage.reason +
         ") at offset " + std::to_string(damage.offset) + " of " + damage.file + ", followed by " +
         std::to_string(damage.records_after) + " valid log records (" +
         std::to_string(damage.bytes_after) + " bytes of log in " +
         std::to_string(damage.files_after) + " file(s), up to " + damage.last_file +
         "): recovery stops at the damaged record and would drop every transaction after it, "
         "acknowledged ones included";
}

}  // namespace strata
