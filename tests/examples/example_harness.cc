#include "example_harness.h"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>

#include "strata/key_codec.h"
#include "strata/path.h"

namespace strata::examples_test {
namespace {

constexpr size_t kAppendChunk = 500;

std::string Shorten(const std::string& s) {
  constexpr size_t kMax = 1500;
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...(" + std::to_string(s.size()) + " chars)";
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/strata-examples-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << templ << ") failed";
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ModulePath(const std::string& name) {
  return std::string(STRATA_MODULES_DIR) + "/" + name + ".so";
}

Result<std::unique_ptr<Engine>> OpenEngine(const std::string& dir) {
  EngineOptions options;
  options.data_dir = dir;
  options.task_threads = 2;
  options.cache_size_bytes = 64ull << 20;
  return Engine::Open(options);
}

Status DeployExample(Engine& engine, const std::string& name) {
  DeployOptions options;
  options.partitions = kPartitions;
  return engine.Deploy(ModulePath(name), options).status();
}

std::vector<Value> PartitionKeys(int partitions) {
  std::vector<Value> keys(partitions);
  int found = 0;
  for (int64_t k = 0; found < partitions; ++k) {
    Value& slot = keys[HashKey(Value(k)) % static_cast<uint64_t>(partitions)];
    if (slot.is_nil()) {
      slot = Value(k);
      ++found;
    }
  }
  return keys;
}

Result<PStateDump> DumpPState(Engine& engine, const std::string& module,
                              const std::string& pstate) {
  STRATA_ASSIGN_OR_RETURN(ModuleInfo info, engine.Describe(module));
  auto it = std::find_if(info.pstates.begin(), info.pstates.end(),
                         [&](const PStateInfo& p) { return p.name == pstate; });
  if (it == info.pstates.end()) {
    return Status::NotFound("module " + module + " has no PState " + pstate);
  }
  std::vector<Value> keys = PartitionKeys(it->schema.global ? 1 : info.partitions);
  PStateDump dump;
  for (const Value& key : keys) {
    STRATA_ASSIGN_OR_RETURN(std::vector<Value> contents,
                            engine.Select(module, pstate, Path(), key));
    dump.push_back(std::move(contents));
  }
  return dump;
}

Result<std::map<std::string, PStateDump>> DumpPStates(Engine& engine, const std::string& module) {
  STRATA_ASSIGN_OR_RETURN(ModuleInfo info, engine.Describe(module));
  std::map<std::string, PStateDump> dumps;
  for (const PStateInfo& p : info.pstates) {
    STRATA_ASSIGN_OR_RETURN(dumps[p.name], DumpPState(engine, module, p.name));
  }
  return dumps;
}

Result<std::map<Value, int64_t>> CollectIntMap(Engine& engine, const std::string& module,
                                               const std::string& pstate) {
  STRATA_ASSIGN_OR_RETURN(PStateDump dump, DumpPState(engine, module, pstate));
  return IntMapOf(dump, pstate);
}

Result<std::map<Value, int64_t>> IntMapOf(const PStateDump& dump, const std::string& pstate) {
  std::map<Value, int64_t> out;
  for (const std::vector<Value>& partition : dump) {
    for (const Value& root : partition) {
      if (root.is_nil()) continue;
      if (!root.is_map()) {
        return Status::InvalidArgument(pstate + ": expected a map root, got " + root.ToString());
      }
      for (const auto& [key, value] : root.as_map()) {
        if (!value.is_int()) {
          return Status::InvalidArgument(pstate + ": expected int values, got " + value.ToString());
        }
        if (!out.emplace(key, value.as_int()).second) {
          return Status::InvalidArgument(pstate + ": key " + key.ToString() +
                                         " is on two partitions");
        }
      }
    }
  }
  return out;
}

Result<std::vector<std::vector<DepotEntry>>> ReadWholeDepot(Engine& engine,
                                                            const std::string& module,
                                                            const std::string& depot) {
  STRATA_ASSIGN_OR_RETURN(ModuleInfo info, engine.Describe(module));
  return ReadDepotByPages<DepotEntry>(module, depot, info.partitions, [&](int p, int64_t from) {
    return engine.ReadDepot(module, depot, p, from, std::numeric_limits<int64_t>::max(),
                            kDepotReadPage);
  });
}

Status Recompute(Engine& live, Engine& fresh, const std::string& module,
                 const std::vector<std::string>& depot_order) {
  STRATA_ASSIGN_OR_RETURN(ModuleInfo info, live.Describe(module));
  return RecomputeFrom(
      [&](const std::string& depot) { return ReadWholeDepot(live, module, depot); },
      info.partitions, fresh, module, depot_order);
}

Status RecomputeFrom(const DepotSource& read_depot, int partition_count, Engine& fresh,
                     const std::string& module, const std::vector<std::string>& depot_order) {
  return RecomputeFromBuild(read_depot, ModulePath(module), partition_count, fresh, module,
                            depot_order);
}

Status RecomputeFromBuild(const DepotSource& read_depot, const std::string& module_path,
                          int partition_count, Engine& fresh, const std::string& module,
                          const std::vector<std::string>& depot_order) {
  DeployOptions options;
  options.partitions = partition_count;
  STRATA_ASSIGN_OR_RETURN(ModuleInfo info, fresh.Deploy(module_path, options));
  if (info.name != module) {
    return Status::InvalidArgument(module_path + " defines module " + info.name + ", not " +
                                   module);
  }
  for (const std::string& depot : depot_order) {
    auto d = std::find_if(info.depots.begin(), info.depots.end(),
                          [&](const DepotInfo& x) { return x.name == depot; });
    if (d == info.depots.end())
      return Status::NotFound("module " + module + " has no depot " + depot);
    bool hashed = d->partitioning.rfind("hash", 0) == 0;
    STRATA_ASSIGN_OR_RETURN(auto partitions, read_depot(depot));
    for (size_t p = 0; p < partitions.size(); ++p) {
      const std::vector<DepotEntry>& records = partitions[p];
      for (size_t begin = 0; begin < records.size(); begin += kAppendChunk) {
        size_t end = std::min(records.size(), begin + kAppendChunk);
        std::vector<Value> chunk;
        for (size_t i = begin; i < end; ++i) chunk.push_back(records[i].record);
        STRATA_ASSIGN_OR_RETURN(
            std::vector<AppendResult> results,
            fresh.AppendBatch(module, depot, std::move(chunk), AckLevel::kAppended));
        for (size_t i = 0; hashed && i < results.size(); ++i) {
          const DepotEntry& original = records[begin + i];
          if (results[i].partition != static_cast<int>(p) || results[i].offset != original.offset) {
            return Status::Internal(depot + " record " + original.record.ToString() + " was at " +
                                    std::to_string(p) + "/" + std::to_string(original.offset) +
                                    ", re-appended at " + std::to_string(results[i].partition) +
                                    "/" + std::to_string(results[i].offset));
          }
        }
      }
    }
    STRATA_RETURN_IF_ERROR(fresh.WaitProcessed(module));
  }
  return Status::Ok();
}

::testing::AssertionResult DumpsEqual(const PStateDump& live, const PStateDump& recomputed) {
  if (live.size() != recomputed.size()) {
    return ::testing::AssertionFailure() << "partition counts differ: live " << live.size()
                                         << ", recomputed " << recomputed.size();
  }
  for (size_t p = 0; p < live.size(); ++p) {
    const Value l = Value(Value::List(live[p]));
    const Value r = Value(Value::List(recomputed[p]));
    if (l == r) continue;
    // Name the first differing top-level key when both are one root map.
    if (live[p].size() == 1 && recomputed[p].size() == 1 && live[p][0].is_map() &&
        recomputed[p][0].is_map()) {
      const Value& lm = live[p][0];
      const Value& rm = recomputed[p][0];
      for (const auto& [key, value] : lm.as_map()) {
        const Value* other = rm.Find(key);
        if (other == nullptr || *other != value) {
          return ::testing::AssertionFailure()
                 << "partition " << p << " key " << key.ToString() << ": live "
                 << Shorten(value.ToString()) << ", recomputed "
                 << (other == nullptr ? std::string("absent") : Shorten(other->ToString()));
        }
      }
      for (const auto& [key, value] : rm.as_map()) {
        if (lm.Find(key) == nullptr) {
          return ::testing::AssertionFailure()
                 << "partition " << p << " key " << key.ToString() << ": absent live, recomputed "
                 << Shorten(value.ToString());
        }
      }
    }
    return ::testing::AssertionFailure() << "partition " << p << ": live " << Shorten(l.ToString())
                                         << ", recomputed " << Shorten(r.ToString());
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult PStatesEqual(Engine& live, Engine& recomputed, const std::string& module,
                                        const std::vector<std::string>& pstates) {
  Result<std::map<std::string, PStateDump>> live_dumps = DumpPStates(live, module);
  Result<std::map<std::string, PStateDump>> recomputed_dumps = DumpPStates(recomputed, module);
  if (!live_dumps.ok() || !recomputed_dumps.ok()) {
    return ::testing::AssertionFailure()
           << "dumping " << module << ": " << live_dumps.status().ToString() << " / "
           << recomputed_dumps.status().ToString();
  }
  std::vector<std::string> names = pstates;
  if (names.empty()) {
    for (const auto& [name, dump] : *live_dumps) names.push_back(name);
  }
  for (const std::string& name : names) {
    auto l = live_dumps->find(name);
    auto r = recomputed_dumps->find(name);
    if (l == live_dumps->end() || r == recomputed_dumps->end()) {
      return ::testing::AssertionFailure() << module << " has no PState " << name;
    }
    ::testing::AssertionResult equal = DumpsEqual(l->second, r->second);
    if (!equal)
      return ::testing::AssertionFailure() << module << " " << name << ": " << equal.message();
  }
  return ::testing::AssertionSuccess();
}

void ExampleTest::SetUp() {
  EX_ASSIGN_OR_FAIL(engine_, OpenEngine(dir_.path()));
  EX_ASSERT_OK(DeployExample(*engine_, module_));
}

std::vector<Value> ExampleTest::Select(const std::string& pstate, const Path& path) {
  Result<std::vector<Value>> r = engine_->Select(module_, pstate, path);
  EXPECT_TRUE(r.ok()) << pstate << " " << path.ToString() << ": " << r.status().ToString();
  return r.ok() ? *r : std::vector<Value>{};
}

Value ExampleTest::SelectOne(const std::string& pstate, const Path& path) {
  Result<Value> r = engine_->SelectOne(module_, pstate, path);
  EXPECT_TRUE(r.ok()) << pstate << " " << path.ToString() << ": " << r.status().ToString();
  return r.ok() ? *r : Value("select failed");
}

void PrintInvokeTime(Engine& engine, const std::string& module, const std::string& query,
                     const std::vector<Value>& args, int rounds) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) {
    Result<Value> r = engine.Invoke(module, query, args);
    ASSERT_TRUE(r.ok()) << module << "/" << query << ": " << r.status().ToString();
  }
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::cout << "[ timing   ] " << module << "/" << query << " " << Value(args).ToString() << ": "
            << us / rounds << " us per answer (" << rounds << " answers)" << std::endl;
}

Value ExampleTest::Invoke(const std::string& query, std::vector<Value> args) {
  Result<Value> r = engine_->Invoke(module_, query, std::move(args));
  EXPECT_TRUE(r.ok()) << module_ << "/" << query << ": " << r.status().ToString();
  return r.ok() ? *r : Value("invoke failed");
}

void ExampleTest::ExpectInvokeError(const std::string& query, std::vector<Value> args,
                                    StatusCode code, const std::string& expected) {
  const std::string shown = Value(args).ToString();
  Result<Value> r = engine_->Invoke(module_, query, std::move(args));
  ASSERT_FALSE(r.ok()) << query << " " << shown << " answered " << r->ToString();
  EXPECT_EQ(r.status().code(), code) << query << " " << shown << ": " << r.status().ToString();
  EXPECT_NE(r.status().message().find(module_ + "/" + query), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find(expected), std::string::npos) << r.status().ToString();
}

Value ExampleTest::AckReturn(const AppendResult& result, const std::string& topology) {
  for (const auto& [name, value] : result.ack_returns) {
    if (name == topology) return value;
  }
  return Value();
}

void ExampleTest::ExpectRecomputationEqual(const std::vector<std::string>& depot_order) {
  TempDir fresh_dir;
  EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> fresh, OpenEngine(fresh_dir.path()));
  EX_ASSERT_OK(Recompute(*engine_, *fresh, module_, depot_order));
  EXPECT_TRUE(PStatesEqual(*engine_, *fresh, module_));
}

Value Field(const Value& v, const Value& key) {
  const Value* found = v.is_map() ? v.Find(key) : nullptr;
  return found != nullptr ? *found : Value();
}

Value DepositRecord(const std::string& account, int64_t amount) {
  return Value::MapOf({{"account", account}, {"amount", amount}});
}

Value TransferRecord(const std::string& id, const std::string& from, const std::string& to,
                     int64_t amount) {
  return Value::MapOf({{"id", id}, {"from", from}, {"to", to}, {"amount", amount}});
}

Result<std::map<Value, int64_t>> WordCountsOfLog(Engine& engine, const std::string& module,
                                                 const std::string& depot) {
  STRATA_ASSIGN_OR_RETURN(auto partitions, ReadWholeDepot(engine, module, depot));
  std::map<Value, int64_t> counts;
  for (const auto& partition : partitions) {
    for (const DepotEntry& e : partition) {
      for (const std::string& word : SplitWords(e.record.as_string())) ++counts[Value(word)];
    }
  }
  return counts;
}

int64_t DepositedSum(const std::vector<std::vector<DepotEntry>>& deposits) {
  int64_t sum = 0;
  for (const auto& partition : deposits) {
    for (const DepotEntry& r : partition) sum += Field(r.record, "amount").as_int();
  }
  return sum;
}

PostTexts PostTextsOf(const std::vector<std::vector<DepotEntry>>& posts) {
  PostTexts texts;
  for (const auto& partition : posts) {
    for (const DepotEntry& r : partition) {
      texts[{Field(r.record, "author"), Field(r.record, "id")}] = Field(r.record, "text");
    }
  }
  return texts;
}

Value TimelineWithTexts(const std::vector<Value>& entries, const PostTexts& texts) {
  Value::List joined;
  for (const Value& entry : entries) {
    Value post = entry;
    auto text = texts.find({Field(entry, "author"), Field(entry, "id")});
    post.Insert("text", text == texts.end() ? Value() : text->second);
    joined.push_back(std::move(post));
  }
  return Value(std::move(joined));
}

Value TopCounts(const std::map<Value, int64_t>& counts, size_t n) {
  std::vector<std::pair<Value, int64_t>> ranked(counts.begin(), counts.end());
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  Value::List items;
  for (size_t i = 0; i < ranked.size() && i < n; ++i) {
    items.push_back(Value::ListOf({ranked[i].first, ranked[i].second}));
  }
  return Value(std::move(items));
}

std::string IntMapText(const std::map<Value, int64_t>& map) {
  std::string out;
  for (const auto& [key, n] : map) out += key.ToString() + ": " + std::to_string(n) + "\n";
  return out;
}

Result<std::map<std::pair<Value, Value>, Value>> TwoLevelMapOf(const PStateDump& dump,
                                                               const std::string& pstate) {
  std::map<std::pair<Value, Value>, Value> out;
  for (const std::vector<Value>& partition : dump) {
    for (const Value& root : partition) {
      if (root.is_nil()) continue;
      if (!root.is_map()) return Status::Internal(pstate + ": root " + root.ToString());
      for (const auto& [k1, inner] : root.as_map()) {
        if (!inner.is_map()) return Status::Internal(pstate + ": value " + inner.ToString());
        for (const auto& [k2, v] : inner.as_map()) {
          if (!out.emplace(std::make_pair(k1, k2), v).second) {
            return Status::Internal(pstate + ": " + k1.ToString() + "/" + k2.ToString() +
                                    " on two partitions");
          }
        }
      }
    }
  }
  return out;
}

}  // namespace strata::examples_test
