#include "runtime/outbox.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "strata/key_codec.h"
#include "strata/value.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

constexpr const char* kOutboxTable = "meta.outbox";

// Key: enc(module) enc(sequence number); value: {"depot", "partition", "record": bytes}.
Result<Outbox::Entry> DecodeEntry(std::string_view key, std::string_view value) {
  Result<std::vector<Value>> parts = DecodeKeyTuple(key);
  Result<Value> row = DecodeValue(value);
  if (!parts.ok() || parts->size() != 2 || !(*parts)[0].is_string() || !(*parts)[1].is_int() ||
      !row.ok() || !row->is_map()) {
    return Status::Corruption("a row of table meta.outbox does not decode");
  }
  const Value* depot = row->Find(Value("depot"));
  const Value* partition = row->Find(Value("partition"));
  const Value* record = row->Find(Value("record"));
  if (depot == nullptr || !depot->is_string() || partition == nullptr || !partition->is_int() ||
      record == nullptr || !record->is_bytes()) {
    return Status::Corruption("a row of table meta.outbox is malformed: " + row->ToString());
  }
  return Outbox::Entry{std::string(key),
                       (*parts)[1].as_int(),
                       (*parts)[0].as_string(),
                       depot->as_string(),
                       static_cast<int>(partition->as_int()),
                       record->as_bytes()};
}

}  // namespace

Result<std::unique_ptr<Outbox>> Outbox::Open(Storage& storage, Session& session) {
  STRATA_ASSIGN_OR_RETURN(TableId table, storage.OpenTable(kOutboxTable, TableKind::kBytes));
  // Rows are few (only appends not made yet), so a scan finds the highest number in use.
  int64_t next = 0;
  Status decode_error;
  STRATA_RETURN_IF_ERROR(
      session.Scan(table, "", "", false, [&](std::string_view key, std::string_view) {
        Result<std::vector<Value>> parts = DecodeKeyTuple(key);
        if (!parts.ok() || parts->size() != 2 || !(*parts)[1].is_int()) {
          decode_error = Status::Corruption("a key of table meta.outbox does not decode");
          return false;
        }
        next = std::max(next, (*parts)[1].as_int() + 1);
        return true;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  return std::unique_ptr<Outbox>(new Outbox(table, next));
}

Result<std::string> Outbox::Put(Session& session, std::string_view module, std::string_view depot,
                                int partition, std::string_view record) {
  std::string key = EncodeKey(Value(std::string(module)));
  AppendKey(Value(next_.fetch_add(1, std::memory_order_relaxed)), &key);
  std::string row;
  AppendValue(Value::MapOf({{"depot", std::string(depot)},
                            {"partition", int64_t{partition}},
                            {"record", Value::BytesOf(record)}}),
              &row);
  STRATA_RETURN_IF_ERROR(session.Put(table_, key, row));
  return key;
}

Status Outbox::Remove(Session& session, std::string_view key) {
  STRATA_ASSIGN_OR_RETURN(bool removed, session.Remove(table_, key));
  if (!removed)
    return Status::Corruption("meta.outbox has no row to remove (a record appended twice?)");
  return Status::Ok();
}

Status Outbox::ForEachLeftOver(Session& session, std::string_view module,
                               const std::function<Status(Entry)>& fn) {
  std::vector<Entry> entries;  // collected first: `fn` may use the session
  Status error;
  int64_t below = left_over_below_;
  {
    MutexLock lock(&adopted_mu_);
    if (auto it = adopted_.find(module); it != adopted_.end()) below = it->second;
  }
  const std::string prefix = EncodeKey(Value(std::string(module)));
  STRATA_RETURN_IF_ERROR(session.Scan(table_, prefix, PrefixEnd(prefix), false,
                                      [&](std::string_view key, std::string_view value) {
                                        Result<Entry> entry = DecodeEntry(key, value);
                                        if (!entry.ok()) {
                                          error = entry.status();
                                          return false;
                                        }
                                        if (entry->number < below)
                                          entries.push_back(std::move(*entry));
                                        return true;
                                      }));
  STRATA_RETURN_IF_ERROR(error);
  for (Entry& entry : entries) STRATA_RETURN_IF_ERROR(fn(std::move(entry)));
  return Status::Ok();
}

Status Outbox::Adopt(Session& session, std::string_view module) {
  const std::string prefix = EncodeKey(Value(std::string(module)));
  int64_t highest = -1;
  Status error;
  STRATA_RETURN_IF_ERROR(session.Scan(
      table_, prefix, PrefixEnd(prefix), false, [&](std::string_view key, std::string_view) {
        Result<std::vector<Value>> parts = DecodeKeyTuple(key);
        if (!parts.ok() || parts->size() != 2 || !(*parts)[1].is_int()) {
          error = Status::Corruption("a key of table meta.outbox does not decode");
          return false;
        }
        highest = std::max(highest, (*parts)[1].as_int());
        return true;
      }));
  STRATA_RETURN_IF_ERROR(error);
  int64_t next = next_.load();
  while (next <= highest && !next_.compare_exchange_weak(next, highest + 1)) {
  }
  MutexLock lock(&adopted_mu_);
  adopted_[std::string(module)] = std::max(next_.load(), highest + 1);
  return Status::Ok();
}

}  // namespace strata::runtime
