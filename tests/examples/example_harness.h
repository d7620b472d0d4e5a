// Shared by the example module tests: temporary data directories, an embedded engine with
// the example plugins of build/modules, whole-PState dumps, and the oracle of docs/architecture.md
// promise 6 (recompute every PState from its depots in a fresh data directory).
//
// Everything here runs on the test's thread; the Engine it drives is thread-safe.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "split_words.h"
#include "strata/engine.h"
#include "strata/path.h"
#include "strata/status.h"
#include "strata/testing/test_seed.h"
#include "strata/value.h"

namespace strata::examples_test {

// Partitions every test deploys a module with (fewer than the default 8: the machine has
// few cores, and 4 still spreads every workload over several partitions).
inline constexpr int kPartitions = 4;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// build/modules/<name>.so
std::string ModulePath(const std::string& name);

// Opens an engine on `dir` with test-sized settings (2 task threads, 64 MB cache).
Result<std::unique_ptr<Engine>> OpenEngine(const std::string& dir);
// Deploys the example `name` with kPartitions partitions.
Status DeployExample(Engine& engine, const std::string& name);

// One key per partition: key i satisfies HashKey(key) % partitions == i, so Select with
// it as partition_key reads partition i (Engine::Select chooses partitions by key only).
std::vector<Value> PartitionKeys(int partitions);

// A PState's whole contents: entry i is what Select(Path()) returns on partition i (one
// entry for a global PState).
using PStateDump = std::vector<std::vector<Value>>;
Result<PStateDump> DumpPState(Engine& engine, const std::string& module, const std::string& pstate);
// Every PState of the module, by name.
Result<std::map<std::string, PStateDump>> DumpPStates(Engine& engine, const std::string& module);

// The values of a PState whose root map holds int64 values (e.g. $$balances), merged
// over all partitions.
Result<std::map<Value, int64_t>> CollectIntMap(Engine& engine, const std::string& module,
                                               const std::string& pstate);
// The same merge of a dump already taken (`pstate` names it in errors).
Result<std::map<Value, int64_t>> IntMapOf(const PStateDump& dump, const std::string& pstate);

// Records asked for per depot read by ReadWholeDepot (and by the crash harness over the wire).
inline constexpr int64_t kDepotReadPage = 1000;

// Every record of a depot with `partitions` partitions, read page by page: entry p is
// partition p in offset order. `read_page(p, from)` returns a Result<std::vector<Record>>:
// records of partition p from offset `from` on, empty past the end; a Record has an int64
// `offset`. Fails (kInternal, naming module, depot and partition) unless the offsets are
// dense from 0.
template <typename Record, typename ReadPage>
Result<std::vector<std::vector<Record>>> ReadDepotByPages(const std::string& module,
                                                          const std::string& depot, int partitions,
                                                          ReadPage read_page) {
  std::vector<std::vector<Record>> out(partitions);
  for (int p = 0; p < partitions; ++p) {
    for (int64_t from = 0;;) {
      STRATA_ASSIGN_OR_RETURN(std::vector<Record> page, read_page(p, from));
      if (page.empty()) break;
      for (Record& r : page) {
        if (r.offset != from) {
          return Status::Internal(module + " " + depot + " partition " + std::to_string(p) +
                                  ": expected offset " + std::to_string(from) + ", read " +
                                  std::to_string(r.offset));
        }
        ++from;
        out[p].push_back(std::move(r));
      }
    }
  }
  return out;
}

// Every record of the depot, partition by partition, in offset order.
Result<std::vector<std::vector<DepotEntry>>> ReadWholeDepot(Engine& engine,
                                                            const std::string& module,
                                                            const std::string& depot);

// The oracle: deploys `module` into `fresh` (an engine on an empty data directory) and
// re-appends every record of `live`'s depots — depot by depot in `depot_order`, partition
// by partition in offset order — waiting for all of a depot to be processed before the
// next one. Hash-partitioned records land on the partition and offset they had in `live`
// (checked); randomly partitioned ones may not.
Status Recompute(Engine& live, Engine& fresh, const std::string& module,
                 const std::vector<std::string>& depot_order);

// The whole contents of one depot of the module being recomputed, as ReadWholeDepot
// returns it (entry p: partition p in offset order, offsets from 0).
using DepotSource =
    std::function<Result<std::vector<std::vector<DepotEntry>>>(const std::string& depot)>;
// Recompute with the live depots read through `read_depot` (e.g. over the wire from a
// stratad): deploys `module` into `fresh` with `partition_count` partitions, then
// re-appends as Recompute does. `read_depot` is called once per depot, on the caller's
// thread.
Status RecomputeFrom(const DepotSource& read_depot, int partition_count, Engine& fresh,
                     const std::string& module, const std::vector<std::string>& depot_order);
// The same with the plugin at `module_path` (e.g. build/modules/bank_v2.so, the next
// version of "bank") instead of ModulePath(module).
Status RecomputeFromBuild(const DepotSource& read_depot, const std::string& module_path,
                          int partition_count, Engine& fresh, const std::string& module,
                          const std::vector<std::string>& depot_order);

// Dumps `pstates` (every PState of the module when empty) from both engines and compares
// them with DumpsEqual.
::testing::AssertionResult PStatesEqual(Engine& live, Engine& recomputed, const std::string& module,
                                        const std::vector<std::string>& pstates = {});

// Equality of two dumps, naming the first PState, partition and entry that differ.
::testing::AssertionResult DumpsEqual(const PStateDump& live, const PStateDump& recomputed);

inline void AppendPart(std::string* out, std::string_view s) { out->append(s); }
template <std::integral I>
void AppendPart(std::string* out, I n) {
  out->append(std::to_string(n));
}
// Concatenates strings and integers: Cat("t", 3, "-", 4) is "t3-4". (Written with append
// because `"t" + std::to_string(n)` trips a false -Wrestrict warning of g++ 12.)
template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::string out;
  (AppendPart(&out, parts), ...);
  return out;
}

// The value at `key` of map `v`; nil when v is not a map or lacks the key.
Value Field(const Value& v, const Value& key);

// ---- The examples' records and folds (shared by the example tests) ---------------------

// A bank / mbbank *deposits record: {account, amount}.
Value DepositRecord(const std::string& account, int64_t amount);
// A bank / mbbank *transfers record: {id, from, to, amount}.
Value TransferRecord(const std::string& id, const std::string& from, const std::string& to,
                     int64_t amount);

// The sum of the "amount" fields of the records of a bank *deposits depot (as
// ReadWholeDepot returns it): what bank's query total-money answers, every deposit being
// valid.
int64_t DepositedSum(const std::vector<std::vector<DepotEntry>>& deposits);

// The texts of the records of a social *posts depot: [author, id] -> text.
using PostTexts = std::map<std::pair<Value, Value>, Value>;
PostTexts PostTextsOf(const std::vector<std::vector<DepotEntry>>& posts);
// What social's query timeline(user, n) answers for `entries`, the first n values of the
// user's $$timelines ({author, id}, newest first): each with the "text" of its post (nil
// when `texts` lacks it).
Value TimelineWithTexts(const std::vector<Value>& entries, const PostTexts& texts);

// The word split of the word-counting examples (examples/common/split_words.h): the runs
// of ASCII letters and digits of `text`, lower-cased, in order ("Hi, hi2!" -> {"hi", "hi2"}).
using strata_examples::SplitWords;

// Word -> occurrences over every record (a sentence) of `module`'s depot `depot`, read back:
// the oracle of the word-counting examples.
Result<std::map<Value, int64_t>> WordCountsOfLog(Engine& engine, const std::string& module,
                                                 const std::string& depot);

// The `n` largest entries of `counts` as agg::TopN stores them: a list of [key, count],
// count descending, then key ascending.
Value TopCounts(const std::map<Value, int64_t>& counts, size_t n);

// `map` as text, one "key: value" line per entry in key order, so that a failed
// EXPECT_EQ of two maps prints a readable diff.
std::string IntMapText(const std::map<Value, int64_t>& map);

// A PState map<k1, map<k2, v>> (dumped by DumpPState), merged over its partitions:
// [k1, k2] -> v. Fails (kInternal, naming `pstate`) on a root or value that is not a map
// or a [k1, k2] on two partitions.
Result<std::map<std::pair<Value, Value>, Value>> TwoLevelMapOf(const PStateDump& dump,
                                                               const std::string& pstate);

// Invokes the query `rounds` times and prints the mean answer time (for the record, never
// asserted: timing goals live in the benchmarks). Fails the test if an invocation fails.
void PrintInvokeTime(Engine& engine, const std::string& module, const std::string& query,
                     const std::vector<Value>& args, int rounds);

// A seed for a randomized test: STRATA_TEST_SEED from the environment when set, else
// `fixed`; printed so that a failure can be reproduced (strata/testing/test_seed.h).
using strata::testing::TestSeed;

// A fixture: an engine on a fresh temporary directory with one example deployed.
class ExampleTest : public ::testing::Test {
 protected:
  explicit ExampleTest(std::string module) : module_(std::move(module)) {}
  void SetUp() override;

  // Select / SelectOne on the deployed module; a failing select fails the test and
  // returns an empty list / the string "select failed".
  std::vector<Value> Select(const std::string& pstate, const Path& path);
  Value SelectOne(const std::string& pstate, const Path& path);
  // Invokes query `query` of the deployed module; a failing invocation fails the test and
  // returns the string "invoke failed".
  Value Invoke(const std::string& query, std::vector<Value> args);
  // Requires Invoke(query, args) to fail with `code` and a message that names the query
  // (module/query) and contains `expected`.
  void ExpectInvokeError(const std::string& query, std::vector<Value> args, StatusCode code,
                         const std::string& expected);
  // The ack return of `topology` in a processed append's result (nil when absent).
  static Value AckReturn(const AppendResult& result, const std::string& topology);
  // Recomputes the module's PStates from its depots (Recompute, in `depot_order`) in a
  // fresh data directory and requires them equal to the live ones.
  void ExpectRecomputationEqual(const std::vector<std::string>& depot_order);

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
  const std::string module_;
};

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

}  // namespace strata::examples_test

// Fails the test (and returns) when a Status / Result is not OK, printing it.
#define EX_ASSERT_OK(expr)                                                         \
  do {                                                                             \
    const auto& _st_ref = (expr);                                                  \
    ASSERT_TRUE(::strata::examples_test::StatusOf(_st_ref).ok())                   \
        << #expr << ": " << ::strata::examples_test::StatusOf(_st_ref).ToString(); \
  } while (0)

// `EX_ASSIGN_OR_FAIL(auto x, ExprReturningResult())`: fails the test when not OK.
#define EX_ASSIGN_OR_FAIL(lhs, expr) \
  EX_ASSIGN_OR_FAIL_IMPL(STRATA_CONCAT(_ex_res_, __LINE__), lhs, expr)
#define EX_ASSIGN_OR_FAIL_IMPL(tmp, lhs, expr)                       \
  auto tmp = (expr);                                                 \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()
