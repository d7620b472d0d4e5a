#include "render.h"

#include <algorithm>

#include "strata/json.h"

namespace strata::shell {
namespace {

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

size_t Width(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !IsContinuation(c); }));
}

std::string Truncate(const std::string& s, size_t max_width) {
  if (Width(s) <= max_width) return s;
  std::string out;
  size_t columns = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuation(s[i]) && ++columns == max_width) break;
    out += s[i];
  }
  return out + "…";
}

// The field names of a list of records, in the order they first appear.
std::vector<std::string> Fields(const std::vector<const Value*>& records) {
  std::vector<std::string> fields;
  for (const Value* r : records) {
    for (const auto& [k, v] : r->as_map()) {
      if (std::find(fields.begin(), fields.end(), k.as_string()) == fields.end()) {
        fields.push_back(k.as_string());
      }
    }
  }
  return fields;
}

std::vector<std::string> RecordCells(const Value& record, const std::vector<std::string>& fields) {
  std::vector<std::string> cells;
  for (const std::string& f : fields) {
    const Value* v = record.Find(Value(f));
    cells.push_back(v ? CellText(*v) : "");
  }
  return cells;
}

std::string Json(const Value& v) {
  std::string compact = ToJson(v);
  return (compact.size() <= kMaxCompactJson ? compact : ToJson(v, 2)) + "\n";
}

}  // namespace

bool IsRecord(const Value& v) {
  if (!v.is_map() || v.as_map().empty()) return false;
  return std::all_of(v.as_map().begin(), v.as_map().end(),
                     [](const auto& entry) { return entry.first.is_string(); });
}

std::string CellText(const Value& v) {
  if (v.is_string()) {
    const std::string& s = v.as_string();
    bool printable = std::none_of(s.begin(), s.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    // Non-UTF-8 strings print as {"$string": …}: the JSON form tells.
    if (printable && ToJson(v).front() == '"') return s;
  }
  return ToJson(v);
}

std::string RenderTable(const Table& table, size_t max_cell_width) {
  std::vector<std::vector<std::string>> lines;
  lines.push_back(table.headers);
  for (const auto& row : table.rows) {
    std::vector<std::string> cells;
    for (const std::string& cell : row) cells.push_back(Truncate(cell, max_cell_width));
    lines.push_back(std::move(cells));
  }
  std::vector<size_t> widths(table.headers.size(), 0);
  for (const auto& line : lines) {
    for (size_t i = 0; i < line.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], Width(line[i]));
  }
  std::string out;
  auto emit = [&](const std::vector<std::string>& line) {
    std::string text;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < line.size() ? line[i] : "";
      text += cell;
      if (i + 1 < widths.size()) text += std::string(widths[i] - Width(cell) + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + "\n";
  };
  emit(lines[0]);
  std::vector<std::string> dashes;
  for (size_t w : widths) dashes.emplace_back(w, '-');
  emit(dashes);
  for (size_t i = 1; i < lines.size(); ++i) emit(lines[i]);
  out +=
      "(" + std::to_string(table.rows.size()) + (table.rows.size() == 1 ? " row)\n" : " rows)\n");
  return out;
}

std::string RenderValue(const Value& v) {
  if (v.is_map() && !v.as_map().empty()) {
    std::vector<const Value*> values;
    for (const auto& [k, val] : v.as_map()) values.push_back(&val);
    const bool records =
        std::all_of(values.begin(), values.end(), [](const Value* x) { return IsRecord(*x); });
    Table t;
    if (records) {
      std::vector<std::string> fields = Fields(values);
      t.headers = {"key"};
      t.headers.insert(t.headers.end(), fields.begin(), fields.end());
      for (const auto& [k, val] : v.as_map()) {
        std::vector<std::string> row{CellText(k)};
        std::vector<std::string> cells = RecordCells(val, fields);
        row.insert(row.end(), cells.begin(), cells.end());
        t.rows.push_back(std::move(row));
      }
    } else {
      t.headers = {"key", "value"};
      for (const auto& [k, val] : v.as_map()) t.rows.push_back({CellText(k), CellText(val)});
    }
    return RenderTable(t);
  }
  if (v.is_list() && !v.as_list().empty() &&
      std::all_of(v.as_list().begin(), v.as_list().end(),
                  [](const Value& x) { return IsRecord(x); })) {
    std::vector<const Value*> records;
    for (const Value& r : v.as_list()) records.push_back(&r);
    Table t;
    t.headers = Fields(records);
    for (const Value& r : v.as_list()) t.rows.push_back(RecordCells(r, t.headers));
    return RenderTable(t);
  }
  return Json(v);
}

std::string DiffText(const Diff& diff) {
  std::string out(DiffOpName(diff.op));
  if (diff.op != Diff::Op::kResync) out += " " + ToJson(Value(Value::List(diff.at)));
  switch (diff.op) {
    case Diff::Op::kKeySet:
      return out + " " + ToJson(diff.key) + " = " + ToJson(diff.value);
    case Diff::Op::kKeyRemoved:
      return out + " " + ToJson(diff.key);
    case Diff::Op::kSeqInsert:
      return out + " " + std::to_string(diff.index) + " " + ToJson(diff.value);
    case Diff::Op::kSeqRemove:
      return out + " " + std::to_string(diff.index);
    case Diff::Op::kReplace:
    case Diff::Op::kSetAdded:
    case Diff::Op::kSetRemoved:
    case Diff::Op::kResync:
      break;
  }
  return out + " " + ToJson(diff.value);
}

}  // namespace strata::shell
