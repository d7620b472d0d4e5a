// The outbox of topology appends (docs/runtime.md, "Topology appends"). A record a step
// appends with TopologyContext::Append is first written as a row of `meta.outbox` in the
// step's own transaction, so it commits — and after a crash survives — exactly when the
// step's PState writes do. The owner thread of the target depot partition later appends
// it and deletes the row in the depot append's transaction. Engine::Open re-posts every
// row left by a crash between the two commits, so a committed step's append is never lost
// and never made twice: the rows it re-posts are those that existed when the outbox was
// opened (rows put later, by replayed steps, are posted by their own steps).
//
// Threading: thread-safe; each call uses the caller's Session (and its transaction).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "storage/storage.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class Outbox {
 public:
  // One row: a record waiting for depot `depot` (its name, with '*') of `module`.
  struct Entry {
    std::string key;  // the row's key, for Remove
    int64_t number = 0;
    std::string module;
    std::string depot;
    int partition = -1;
    std::string record;  // the encoded record (FlexBuffers)
  };

  // Opens (creating) the table and finds the next free sequence number: rows numbered below
  // it were left by the previous run.
  static Result<std::unique_ptr<Outbox>> Open(Storage& storage, Session& session);

  // Writes a row in `session`'s open transaction and returns its key.
  Result<std::string> Put(Session& session, std::string_view module, std::string_view depot,
                          int partition, std::string_view record);
  // Deletes the row `key` in `session`'s open transaction.
  Status Remove(Session& session, std::string_view key);
  // Every row of `module` left by the previous run (put before Open, or before Adopt), in
  // the order they were put.
  Status ForEachLeftOver(Session& session, std::string_view module,
                         const std::function<Status(Entry)>& fn);
  // A replicated engine's module about to start (Replication::Lead): its rows present now —
  // which a previous leader may have put, replicated here after Open — are all left over,
  // and later rows are numbered above them. The module must not be running.
  Status Adopt(Session& session, std::string_view module);

  TableId table() const { return table_; }

 private:
  Outbox(TableId table, int64_t next) : table_(table), left_over_below_(next), next_(next) {}

  const TableId table_;
  const int64_t left_over_below_;  // rows numbered below it were put before Open
  std::atomic<int64_t> next_;      // the sequence number of the next row
  Mutex adopted_mu_;
  // By module (Adopt): rows numbered below it are left over, instead of left_over_below_.
  std::map<std::string, int64_t, std::less<>> adopted_ GUARDED_BY(adopted_mu_);
};

}  // namespace strata::runtime
