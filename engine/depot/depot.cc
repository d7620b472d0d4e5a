#include "depot/depot.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <utility>

namespace strata {
namespace {

Status CheckName(std::string_view what, std::string_view name) {
  bool valid = !name.empty() && name.size() <= Depot::kMaxNameLength &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-';
               });
  if (valid) return Status::Ok();
  return Status::InvalidArgument("bad " + std::string(what) + " name '" + std::string(name) +
                                 "': use 1-" + std::to_string(Depot::kMaxNameLength) +
                                 " characters of [A-Za-z0-9_-]");
}

// The partition numbers of the existing tables "<prefix><number>".
std::vector<int> PartitionsOnDisk(const std::vector<std::string>& tables, std::string_view prefix) {
  std::vector<int> numbers;
  for (const std::string& table : tables) {
    std::string_view suffix = std::string_view(table).substr(prefix.size());
    int number = 0;
    auto [end, error] = std::from_chars(suffix.data(), suffix.data() + suffix.size(), number);
    if (error == std::errc() && end == suffix.data() + suffix.size()) numbers.push_back(number);
  }
  return numbers;
}

}  // namespace

// A second Depot object on the same tables would keep its own end offsets and append
// mutexes, assign offsets the first one already used and overwrite acknowledged records.
// Another process cannot open the same Storage, so a registry per process suffices.
class Depot::OpenClaim {
 public:
  static Result<std::unique_ptr<OpenClaim>> Take(const Storage* storage, std::string full_name) {
    MutexLock lock(&mu_);
    if (!open_.emplace(storage, full_name).second) {
      return Status::Busy("depot " + full_name + " is already open on this storage");
    }
    return std::unique_ptr<OpenClaim>(new OpenClaim(storage, std::move(full_name)));
  }
  ~OpenClaim() {
    MutexLock lock(&mu_);
    open_.erase({storage_, full_name_});
  }
  OpenClaim(const OpenClaim&) = delete;
  OpenClaim& operator=(const OpenClaim&) = delete;

 private:
  OpenClaim(const Storage* storage, std::string full_name)
      : storage_(storage), full_name_(std::move(full_name)) {}

  static inline Mutex mu_;
  static inline std::set<std::pair<const Storage*, std::string>> open_ GUARDED_BY(mu_);
  const Storage* const storage_;
  const std::string full_name_;
};

std::string Depot::TableName(std::string_view module, std::string_view name, int partition,
                             int generation) {
  std::string table = "depot." + std::string(module) + "." + std::string(name);
  if (generation > 0) table += "@" + std::to_string(generation);
  return table + "." + std::to_string(partition);
}

Result<std::unique_ptr<Depot>> Depot::Open(Storage* storage, std::string_view module,
                                           std::string_view name, int partitions, int generation) {
  STRATA_RETURN_IF_ERROR(CheckName("module", module));
  STRATA_RETURN_IF_ERROR(CheckName("depot", name));
  if (generation < 0) {
    return Status::InvalidArgument("depot generation must be >= 0, not " +
                                   std::to_string(generation));
  }
  const std::string full_name = std::string(module) + "." + std::string(name) +
                                (generation > 0 ? "@" + std::to_string(generation) : "");
  if (partitions < 1 || partitions > kMaxPartitions) {
    return Status::InvalidArgument("depot " + full_name + ": partition count " +
                                   std::to_string(partitions) + " is outside [1, " +
                                   std::to_string(kMaxPartitions) + "]");
  }
  // Names cannot contain '.', so this prefix matches this depot's tables only.
  const std::string prefix = "depot." + full_name + ".";
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> existing, storage->ListTables(prefix));
  // Partitions are created in order, so the tables on disk are partitions [0, k). Fewer
  // than asked (k < partitions) is a creation that a crash interrupted, or a depot that
  // grows: the missing ones are created below. More than asked would hide data.
  std::vector<int> numbers = PartitionsOnDisk(existing, prefix);
  std::sort(numbers.begin(), numbers.end());
  bool prefix_of_asked =
      numbers.size() == existing.size() && static_cast<int>(numbers.size()) <= partitions;
  for (size_t i = 0; prefix_of_asked && i < numbers.size(); ++i) {
    prefix_of_asked = numbers[i] == static_cast<int>(i);
  }
  if (!prefix_of_asked) {
    return Status::InvalidArgument("depot " + full_name + " exists with " +
                                   std::to_string(existing.size()) +
                                   " partition tables on disk; cannot open it with " +
                                   std::to_string(partitions) + " partitions");
  }

  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<OpenClaim> claim, OpenClaim::Take(storage, full_name));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage->OpenSession());
  std::vector<std::unique_ptr<Partition>> parts;
  for (int p = 0; p < partitions; ++p) {
    auto part = std::make_unique<Partition>();
    STRATA_ASSIGN_OR_RETURN(
        part->table, storage->OpenTable(TableName(module, name, p, generation), TableKind::kLog));
    STRATA_ASSIGN_OR_RETURN(int64_t first, session->FirstRecordKey(part->table));
    STRATA_ASSIGN_OR_RETURN(int64_t last, session->LastRecordKey(part->table));
    part->start_offset = first < 0 ? 0 : first;
    part->end_offset.store(last + 1, std::memory_order_relaxed);
    parts.push_back(std::move(part));
  }
  return std::unique_ptr<Depot>(
      new Depot(std::move(claim), std::string(module), std::string(name), std::move(parts)));
}

Depot::Depot(std::unique_ptr<OpenClaim> claim, std::string module, std::string name,
             std::vector<std::unique_ptr<Partition>> parts)
    : claim_(std::move(claim)),
      module_(std::move(module)),
      name_(std::move(name)),
      partitions_(std::move(parts)) {}

Depot::~Depot() = default;

std::string Depot::Describe(int partition) const {
  return "depot " + module_ + "." + name_ + " partition " + std::to_string(partition);
}

Result<Depot::Partition*> Depot::GetPartition(int partition) const {
  if (partition < 0 || partition >= partitions()) {
    return Status::InvalidArgument("depot " + module_ + "." + name_ + ": partition " +
                                   std::to_string(partition) + " is outside [0, " +
                                   std::to_string(partitions()) + ")");
  }
  return partitions_[partition].get();
}

Result<int64_t> Depot::Append(Session& session, int partition, std::string_view record) {
  STRATA_ASSIGN_OR_RETURN(Partition * part, GetPartition(partition));
  STRATA_RETURN_IF_ERROR(CheckNoTransaction(session, partition));
  MutexLock lock(&part->append_mu);
  const int64_t offset = part->end_offset.load(std::memory_order_relaxed);
  // Outside a transaction the insert commits by itself: one session call instead of
  // Begin + PutRecord + Commit.
  STRATA_RETURN_IF_ERROR(session.PutRecord(part->table, offset, record));
  part->end_offset.store(offset + 1, std::memory_order_release);
  return offset;
}

Status Depot::CheckNoTransaction(const Session& session, int partition) const {
  if (!session.in_transaction()) return Status::Ok();
  return Status::InvalidArgument(Describe(partition) +
                                 ": append needs a session without an open transaction "
                                 "(the append commits its own)");
}

Result<int64_t> Depot::AppendBatch(Session& session, int partition,
                                   std::span<const std::string_view> records,
                                   const std::function<Status(Session&)>& also) {
  STRATA_ASSIGN_OR_RETURN(Partition * part, GetPartition(partition));
  if (records.empty()) {
    return Status::InvalidArgument(Describe(partition) + ": empty append batch");
  }
  STRATA_RETURN_IF_ERROR(CheckNoTransaction(session, partition));
  MutexLock lock(&part->append_mu);
  const int64_t first = part->end_offset.load(std::memory_order_relaxed);
  STRATA_RETURN_IF_ERROR(session.Begin());
  int64_t offset = first;
  for (std::string_view record : records) {
    Status status = session.PutRecord(part->table, offset++, record);
    if (!status.ok()) {
      session.Rollback();
      return status;
    }
  }
  if (also) {
    Status status = also(session);
    if (!status.ok()) {
      session.Rollback();
      return status;
    }
  }
  STRATA_RETURN_IF_ERROR(session.Commit());
  // Publish after the commit: a reader that sees the new end finds every record below it.
  part->end_offset.store(offset, std::memory_order_release);
  return first;
}

Result<std::vector<DepotRecord>> Depot::Read(Session& session, int partition, int64_t from,
                                             int64_t to, size_t limit) {
  STRATA_ASSIGN_OR_RETURN(Partition * part, GetPartition(partition));
  if (from < 0 || to < 0) {
    return Status::InvalidArgument(Describe(partition) + ": negative offset in read range [" +
                                   std::to_string(from) + ", " + std::to_string(to) + ")");
  }
  if (from > to) {
    return Status::InvalidArgument(Describe(partition) + ": read range [" + std::to_string(from) +
                                   ", " + std::to_string(to) + ") has from > to");
  }
  if (limit == 0) return Status::InvalidArgument(Describe(partition) + ": read limit is 0");
  const int64_t end = std::min(to, part->end_offset.load(std::memory_order_acquire));
  std::vector<DepotRecord> records;
  if (from >= end) return records;
  const int64_t stop =
      from + static_cast<int64_t>(std::min<uint64_t>(limit, static_cast<uint64_t>(end - from)));
  // Capped: a large limit over a long partition must not allocate before anything is read.
  records.reserve(std::min<size_t>(static_cast<size_t>(stop - from), kMaxReadReservation));
  int64_t expected = from;
  bool hole = false;
  STRATA_RETURN_IF_ERROR(
      session.ScanRecords(part->table, from, stop, [&](int64_t offset, std::string_view data) {
        if (offset != expected) {
          hole = true;
          return false;
        }
        records.push_back({offset, std::string(data)});
        ++expected;
        return true;
      }));
  // Every offset below the watermark was committed, so a hole is damage, not a race. A
  // transaction's snapshot may predate the latest appends: since appends commit in offset
  // order it then sees a prefix, and a result that stops early is just that prefix.
  if (hole || (expected != stop && !session.in_transaction())) {
    return Status::Corruption(Describe(partition) + ": offset " + std::to_string(expected) +
                              " is missing below the end offset " + std::to_string(end));
  }
  return records;
}

Result<int64_t> Depot::StartOffset(int partition) const {
  STRATA_ASSIGN_OR_RETURN(Partition * part, GetPartition(partition));
  return part->start_offset;
}

Result<int64_t> Depot::EndOffset(int partition) const {
  STRATA_ASSIGN_OR_RETURN(Partition * part, GetPartition(partition));
  return part->end_offset.load(std::memory_order_acquire);
}

}  // namespace strata
