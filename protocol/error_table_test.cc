// The error table has one source, strata.fbs's enum ErrorCode (the generated
// strata_generated.h): docs/protocol.md's "Errors" table and the C++ names must say the
// same, row for row.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "strata/protocol/messages.h"
#include "strata_generated.h"

namespace strata::protocol {
namespace {

using Row = std::pair<int, std::string>;  // code, name

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Trimmed(const std::string& s) {
  const size_t begin = s.find_first_not_of(' ');
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(' ') - begin + 1);
}

// The rows `| N | NAME | ...` of the first table after the heading "## Errors"; a row whose
// first cell is not a number is a test failure (a malformed row must not go unchecked).
std::vector<Row> DocumentedErrorCodes(const std::string& markdown) {
  std::vector<Row> rows;
  std::istringstream lines(markdown);
  std::string line;
  bool in_section = false;
  bool in_table = false;
  while (std::getline(lines, line)) {
    if (!in_section) {
      in_section = line == "## Errors";
      continue;
    }
    if (line.rfind("## ", 0) == 0) break;
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;  // the table ended
      continue;
    }
    in_table = true;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    std::string cell;
    while (std::getline(row, cell, '|')) cells.push_back(Trimmed(cell));
    if (cells.size() < 2 || cells[0] == "code" || cells[0].rfind("---", 0) == 0) continue;
    size_t used = 0;
    int code = -1;
    try {
      code = std::stoi(cells[0], &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EXPECT_TRUE(used == cells[0].size() && code >= 0) << "not a code number: " << line;
    rows.emplace_back(code, cells[1]);
  }
  return rows;
}

std::vector<Row> SchemaErrorCodes() {
  std::vector<Row> rows;
  for (wire::ErrorCode code : wire::EnumValuesErrorCode()) {
    rows.emplace_back(static_cast<int>(code), wire::EnumNameErrorCode(code));
  }
  return rows;
}

TEST(ErrorTableTest, DocsTableListsTheSchemaCodes) {
  const std::string markdown = ReadFile(STRATA_PROTOCOL_DOC);
  ASSERT_FALSE(markdown.empty()) << "cannot read " << STRATA_PROTOCOL_DOC;
  const std::vector<Row> documented = DocumentedErrorCodes(markdown);
  const std::vector<Row> schema = SchemaErrorCodes();
  for (size_t i = 0; i < std::max(documented.size(), schema.size()); ++i) {
    const Row doc = i < documented.size() ? documented[i] : Row{-1, "(missing)"};
    const Row fbs = i < schema.size() ? schema[i] : Row{-1, "(missing)"};
    EXPECT_EQ(doc, fbs) << "row " << i
                        << " of the table in docs/protocol.md, \"Errors\": " << doc.first << " "
                        << doc.second << "; strata.fbs has " << fbs.first << " " << fbs.second;
  }
}

TEST(ErrorTableTest, CxxNamesAreTheSchemaNames) {
  for (wire::ErrorCode code : wire::EnumValuesErrorCode()) {
    // The same number names the same code (messages.cc checks the numbers agree).
    const auto cxx = static_cast<ErrorCode>(static_cast<uint16_t>(code));
    EXPECT_EQ(ErrorCodeName(cxx), wire::EnumNameErrorCode(code));
  }
  EXPECT_EQ(ErrorCodeName(ErrorCode::kShuttingDown), "SHUTTING_DOWN");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kConfirmationRequired), "CONFIRMATION_REQUIRED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTimeout), "TIMEOUT");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kQueryFailed), "QUERY_FAILED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotLeader), "NOT_LEADER");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotEnoughReplicas), "NOT_ENOUGH_REPLICAS");
}

}  // namespace
}  // namespace strata::protocol
