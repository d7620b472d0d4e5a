// engine/storage: a read-only check of the WiredTiger log before recovery runs. Internal to
// strata_storage (Storage::Open uses it). See docs/storage.md, "Damaged log".
//
// WiredTiger 3.2.1's recovery reads the log record by record and treats the first record
// that fails its checksum as the end of the log: it truncates the log there and every later
// transaction is gone, acknowledged or not. After a crash that is right for a torn write at
// the end; for a damaged record in the middle it silently drops committed work. Recovery
// truncates as it opens, and a log cursor exists only on an open connection, so the files
// are read here, before wiredtiger_open, with WiredTiger's own CRC32C.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "strata/status.h"

namespace strata {

// A damaged record, and the valid log records after it.
struct LogDamage {
  std::string file;     // the log file holding the damaged record, e.g. "WiredTigerLog.0000000003"
  uint64_t offset = 0;  // byte offset of the damaged record in `file`
  std::string reason;   // "bad checksum", "record length past the end of the file"
  uint64_t records_after = 0;  // valid transaction records after it
  uint64_t bytes_after = 0;    // log bytes from the damaged record to the end of the last of them
  int files_after = 0;         // log files holding those records (counting `file`)
  std::string last_file;       // the last log file holding one
};

// Walks the log files WiredTigerLog.* of data directory `dir` in order, as recovery does,
// to the first record it would stop at. A stop is damage when the record's length field is
// set (a record that was never written reads as zeros) and the record is not a torn write:
// a write cut short by a crash leaves a prefix of the record and zeros from a 512-byte
// boundary to its end, so a record with a bad checksum that does not end in such zeros was
// written whole and damaged since. Returns the damage, with the valid records (other than
// the header and previous-file records WiredTiger writes at the start of every log file)
// that follow it; nullopt for a clean log, a torn tail, or a hole (slots are written out of
// order, so a crash can leave zeros before a later record, which no flush ever covered).
// Errors: kIOError when a log file cannot be read.
Result<std::optional<LogDamage>> FindLogDamage(const std::string& dir);

// The operator's message for `damage` in data directory `dir` (what, where, how much follows).
std::string DescribeLogDamage(const std::string& dir, const LogDamage& damage);

}  // namespace strata
