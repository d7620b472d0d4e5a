// The oracle of the replication tests: every replicated row of a storage, read back, to
// compare a follower built from the logs with its leader byte for byte. Header-only, for
// tests (gtest's EXPECT reports a failed read).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "replication/group.h"
#include "storage/storage.h"

namespace strata::replication::testing {

// Every replicated row of a storage: table name -> key -> value (log keys as decimal).
using Rows = std::map<std::string, std::map<std::string, std::string>>;
inline Rows ReplicatedRows(Storage& storage, Session& session) {
  Rows rows;
  Result<std::vector<std::string>> names = storage.ListTables("");
  EXPECT_TRUE(names.ok());
  for (const std::string& name : *names) {
    const bool meta = name.starts_with("meta.");
    if (!meta && !OwnerOf(name, "")) continue;
    auto& table = rows[name];
    if (name.starts_with("depot.")) {
      TableId t = *storage.OpenTable(name, TableKind::kLog);
      EXPECT_TRUE(session
                      .ScanRecords(t, 0, INT64_MAX,
                                   [&](int64_t k, std::string_view v) {
                                     table.emplace(std::to_string(k), v);
                                     return true;
                                   })
                      .ok());
    } else {
      TableId t = *storage.OpenTable(name, TableKind::kBytes);
      EXPECT_TRUE(session
                      .Scan(t, "", "", false,
                            [&](std::string_view k, std::string_view v) {
                              if (!meta || OwnerOf(name, k)) table.emplace(k, v);
                              return true;
                            })
                      .ok());
    }
  }
  // A table created but never written has nothing to replicate (a follower creates a table
  // at its first applied write).
  std::erase_if(rows, [](const auto& entry) { return entry.second.empty(); });
  return rows;
}

}  // namespace strata::replication::testing
