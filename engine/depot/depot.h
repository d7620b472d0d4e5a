// engine/depot: durable, append-only, partitioned logs of records (see docs/storage.md).
//
// A depot of P partitions is P log tables `depot.<module>.<depot>.<p>` (int64 offset ->
// record bytes). Offsets start at 0 and are dense per partition: every offset below the
// partition's end offset holds a record, forever (there is no trimming yet).
//
// Threading: a Depot is thread-safe; the Session passed to each call belongs to the
// calling thread. Appends to one partition are serialized by a per-partition mutex held
// across offset assignment, insert and commit, so commits happen in offset order and the
// end offset (the committed watermark) only moves past committed records. Readers never
// see a gap: Read caps every range at the watermark. Appends to different partitions run
// in parallel.
//
// Durability: an append returns once it is committed (visible to readers, crash
// consistent) but not yet durable. It is durable once Storage::WhenDurable() /
// WaitDurable(), called after the append returned, reports OK. A crash loses at most
// a suffix of the non-durable appends of a partition, never a record in the middle.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"

namespace strata {

struct DepotRecord {
  int64_t offset;
  std::string data;

  bool operator==(const DepotRecord&) const = default;
};

class Depot {
 public:
  static constexpr int kMaxPartitions = 1024;
  static constexpr size_t kMaxNameLength = 64;

  // Opens the depot `module`.`name` with `partitions` partitions, creating its tables when
  // they do not exist, and recovers each partition's end offset from its last record.
  // Names are 1-64 characters of [A-Za-z0-9_-]. Fails with kInvalidArgument when the depot
  // has more partitions on disk than `partitions`; creates missing ones when it has fewer
  // (a creation interrupted by a crash). Keeping the count fixed is the module layer's
  // job. Fails with kBusy while another Depot object of the same depot is open on
  // `storage` (two would assign the same offsets). `storage` must outlive the Depot.
  // `generation` > 0 opens a separate set of tables for the same depot (a rescale copies
  // the records into generation g + 1 before the module switches to it).
  static Result<std::unique_ptr<Depot>> Open(Storage* storage, std::string_view module,
                                             std::string_view name, int partitions,
                                             int generation = 0);
  // The table that holds one partition: "depot.<module>.<name>.<partition>" for generation
  // 0, "depot.<module>.<name>@<generation>.<partition>" for later ones.
  static std::string TableName(std::string_view module, std::string_view name, int partition,
                               int generation = 0);

  ~Depot();
  Depot(const Depot&) = delete;
  Depot& operator=(const Depot&) = delete;

  // Appends one record in its own transaction and returns its offset. `session` must not
  // have an open transaction. Fails with kAlreadyExists, appending nothing, if the offset
  // it would take already holds a record (written behind the Depot's back).
  Result<int64_t> Append(Session& session, int partition, std::string_view record);
  // Appends the records, in order, in one transaction (all or none) at consecutive
  // offsets and returns the first one. `records` must not be empty; `session` must not
  // have an open transaction. kAlreadyExists as for Append. `also`, when set, runs in the
  // same transaction before it commits (other writes that must commit with the records);
  // its error rolls everything back and is returned.
  Result<int64_t> AppendBatch(Session& session, int partition,
                              std::span<const std::string_view> records,
                              const std::function<Status(Session&)>& also = nullptr);
  // Records with offsets in [from, to), capped at the end offset and at `limit` records,
  // in offset order. A range at or past the end offset is empty (tailing readers poll
  // with to = INT64_MAX). Inside a transaction of `session`, the result stops where the
  // transaction's snapshot ends (a snapshot transaction may predate later appends).
  // Errors: negative offsets, from > to, limit 0, a bad partition (kInvalidArgument); a
  // missing record below the end offset (kCorruption).
  Result<std::vector<DepotRecord>> Read(Session& session, int partition, int64_t from, int64_t to,
                                        size_t limit);
  // The first offset of the partition (0: nothing is trimmed).
  Result<int64_t> StartOffset(int partition) const;
  // The committed watermark: the next offset to be assigned; every offset below it is
  // committed and visible.
  Result<int64_t> EndOffset(int partition) const;

  int partitions() const { return static_cast<int>(partitions_.size()); }
  const std::string& module() const { return module_; }
  const std::string& name() const { return name_; }

 private:
  struct Partition {
    TableId table = 0;
    int64_t start_offset = 0;
    // Held across offset assignment, insert and commit of an append.
    Mutex append_mu;
    // Written under append_mu after the commit (release); read by anyone (acquire).
    std::atomic<int64_t> end_offset{0};
  };

  // Registers an open Depot object per (Storage, depot) in this process.
  class OpenClaim;

  Depot(std::unique_ptr<OpenClaim> claim, std::string module, std::string name,
        std::vector<std::unique_ptr<Partition>> parts);
  // Records a Read reserves room for up front; a longer result grows as it is read.
  static constexpr size_t kMaxReadReservation = 1024;

  Result<Partition*> GetPartition(int partition) const;
  Status CheckNoTransaction(const Session& session, int partition) const;
  std::string Describe(int partition) const;

  const std::unique_ptr<OpenClaim> claim_;
  const std::string module_;
  const std::string name_;
  const std::vector<std::unique_ptr<Partition>> partitions_;
};

}  // namespace strata
