// Output for people (docs/shell.md, "Output"): aligned tables for maps and lists of records,
// JSON for everything else. Pure functions, thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "strata/diff.h"
#include "strata/value.h"

namespace strata::shell {

// Cells wider than this many columns are cut and end with "…".
inline constexpr size_t kMaxCellWidth = 40;
// Values whose compact JSON is longer than this are pretty-printed.
inline constexpr size_t kMaxCompactJson = 100;

struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;  // each as many cells as headers
};

// Columns separated by two spaces, a dashed line under the headers, then "(N rows)".
// Widths count UTF-8 code points (one column each).
std::string RenderTable(const Table& table, size_t max_cell_width = kMaxCellWidth);

// A value in one table cell: a printable string as itself, anything else as compact JSON.
std::string CellText(const Value& v);

// Whether the value is a record: a map with at least one entry, whose keys are all strings.
bool IsRecord(const Value& v);

// A non-empty map as a table (key, value — or key and one column per field when every
// value is a record); a non-empty list whose elements are all records as a table with one
// column per field; anything else as JSON (pretty-printed when long). Ends with "\n".
std::string RenderValue(const Value& v);

// One diff of a watched value on one line, values in their JSON form (docs/values.md):
// `key_set ["alice"] "bio" = "hi"`, `replace [] 3`, `seq_insert ["posts"] 0 {"id":1}`,
// `seq_remove ["posts"] 2`, `set_added [] "bob"`, `key_removed [] "alice"`, `resync [1,2]`.
// The op and its location (the steps from the watched value's root, a JSON list) come
// first, then the op's operands. No newline.
std::string DiffText(const Diff& diff);

}  // namespace strata::shell
