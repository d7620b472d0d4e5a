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
  uint64_t records_after = 0;    // valid transaction records after it
  uint64_t bytes_after = 0;      // log bytes from the damaged record to the end of the last of them
  int files_after = 0;           // log files holding those records (counting `file`)
  std::string last_file;         // the last log file holding one
  bool from_checkpoint = false;  // the walk started at the last checkpoint's LSN (else at
                                 // the oldest log file: the damage may be before it)
};

// Walks the log files WiredTigerLog.* of data directory `dir` in order, as recovery does,
// from the last checkpoint's LSN (checkpoint_lsn of the metadata entry in WiredTiger.turtle;
// recovery reads nothing before it; from the oldest file when it cannot be read) to the
// first record recovery would stop at. The stop is:
// - the end of the log: zeros to the end of the last file;
// - a hole: zeros up to a valid (or torn) record. WiredTiger writes log slots out of order,
//   so a crash can leave an unwritten slot before later ones; no flush covered them;
// - a torn write: a write cut short by a crash leaves a prefix of the record and zeros from
//   a 512-byte boundary to its end, and no valid record inside its length;
// - else damage: a record written whole and changed since (bad checksum, an impossible
//   length, a length reaching over valid records), or zeros that end inside written data.
// A hole or a torn write is damage too when a valid record follows it beyond the window in
// which WiredTiger's writes can be out of order (128 slots of 256 KiB, plus each record too
// large for a slot): such a record was written after the stop's slot was.
// Returns the damage, with the valid records (other than the header and previous-file
// records WiredTiger writes at the start of every log file) that follow it; nullopt for a
// clean log, a torn tail, or a hole. Errors: kIOError when a log file cannot be read.
Result<std::optional<LogDamage>> FindLogDamage(const std::string& dir);

// The operator's message for `damage` in data directory `dir` (what, where, how much follows).
std::string DescribeLogDamage(const std::string& dir, const LogDamage& damage);

}  // namespace strata
