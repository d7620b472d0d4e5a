// The encoding of replication log entries (docs/cluster.md, "Entry encoding").
#include "replication/log_entry.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

#include "strata/testing/test_seed.h"
#include "strata/value.h"
#include "strata/value_codec.h"

namespace strata::replication {
namespace {

LogEntry Sample() {
  LogEntry entry;
  entry.epoch = 7;
  entry.ops.push_back({"pstate.bank.balances.3", TableKind::kBytes, WriteOp::kPut, "k\x00\x01", 0,
                       std::string("v\x00", 2)});
  entry.ops.push_back(
      {"pstate.bank.balances.3", TableKind::kBytes, WriteOp::kRemove, "gone", 0, ""});
  entry.ops.push_back(
      {"depot.bank.deposits.1", TableKind::kLog, WriteOp::kPutRecord, "", 42, "record"});
  return entry;
}

// The Value the spec describes, encoded by the value codec.
std::string SpecBytes(const LogEntry& entry) {
  Value::List ops;
  for (const CapturedWrite& w : entry.ops) {
    ops.push_back(Value::ListOf(
        {Value(w.table), Value(static_cast<int64_t>(w.kind)), Value(static_cast<int64_t>(w.op)),
         w.kind == TableKind::kLog ? Value(w.record) : Value::BytesOf(w.key),
         Value::BytesOf(w.value)}));
  }
  std::string out;
  AppendValue(Value::MapOf({{Value("epoch"), Value(entry.epoch)}, {Value("ops"), Value(ops)}}),
              &out);
  return out;
}

TEST(LogEntryTest, IsTheValueCodecsEncodingOfTheSpecifiedValue) {
  const LogEntry entry = Sample();
  EXPECT_EQ(EncodeEntry(entry), SpecBytes(entry));
  EXPECT_EQ(EncodeEntry(LogEntry{0, {}}), SpecBytes(LogEntry{0, {}}));
}

TEST(LogEntryTest, RoundTrips) {
  const LogEntry entry = Sample();
  Result<LogEntry> decoded = DecodeEntry(EncodeEntry(entry));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->epoch, 7);
  ASSERT_EQ(decoded->ops.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(decoded->ops[i].table, entry.ops[i].table);
    EXPECT_EQ(decoded->ops[i].kind, entry.ops[i].kind);
    EXPECT_EQ(decoded->ops[i].op, entry.ops[i].op);
    EXPECT_EQ(decoded->ops[i].key, entry.ops[i].key);
    EXPECT_EQ(decoded->ops[i].record, entry.ops[i].record);
    EXPECT_EQ(decoded->ops[i].value, entry.ops[i].value);
  }
  EXPECT_EQ(*DecodeEntryEpoch(EncodeEntry(entry)), 7);
}

TEST(LogEntryTest, RefusesWhatTheSpecDoesNotAllow) {
  auto bytes_of = [](const Value& v) {
    std::string out;
    AppendValue(v, &out);
    return out;
  };
  auto op = [](Value table, Value kind, Value opcode, Value key, Value value) {
    return Value::ListOf(
        {std::move(table), std::move(kind), std::move(opcode), std::move(key), std::move(value)});
  };
  auto entry = [&](Value epoch, Value::List ops) {
    return bytes_of(Value::MapOf({{Value("epoch"), std::move(epoch)}, {Value("ops"), Value(ops)}}));
  };
  const Value good = op("t", int64_t{0}, int64_t{0}, Value::BytesOf("k"), Value::BytesOf("v"));
  EXPECT_TRUE(DecodeEntry(entry(int64_t{1}, {good})).ok());
  const std::vector<std::string> bad = {
      "",
      "not flexbuffers",
      bytes_of(Value(int64_t{3})),
      entry(int64_t{-1}, {good}),
      entry(Value("1"), {good}),
      entry(int64_t{1}, {Value::ListOf({"t", int64_t{0}})}),
      entry(int64_t{1}, {op("", int64_t{0}, int64_t{0}, Value::BytesOf("k"), Value::BytesOf("v"))}),
      entry(int64_t{1},
            {op("t", int64_t{2}, int64_t{0}, Value::BytesOf("k"), Value::BytesOf("v"))}),
      entry(int64_t{1},
            {op("t", int64_t{0}, int64_t{3}, Value::BytesOf("k"), Value::BytesOf("v"))}),
      entry(int64_t{1},
            {op("t", int64_t{0}, int64_t{2}, Value::BytesOf("k"), Value::BytesOf("v"))}),
      entry(int64_t{1}, {op("t", int64_t{1}, int64_t{0}, int64_t{4}, Value::BytesOf("v"))}),
      entry(int64_t{1}, {op("t", int64_t{1}, int64_t{2}, int64_t{-4}, Value::BytesOf("v"))}),
      entry(int64_t{1}, {op("t", int64_t{0}, int64_t{0}, Value::BytesOf(""), Value::BytesOf("v"))}),
      entry(int64_t{1}, {op("t", int64_t{0}, int64_t{0}, Value::BytesOf("k"), Value("v"))}),
      bytes_of(Value::MapOf({{Value("epoch"), Value(int64_t{1})},
                             {Value("ops"), Value(Value::List{})},
                             {Value("x"), Value(int64_t{1})}})),
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(DecodeEntry(bad[i]).status().code(), StatusCode::kCorruption) << "case " << i;
  }
}

TEST(LogEntryTest, DamagedBytesDecodeOrAreRefusedNeverCrash) {
  const uint64_t seed = strata::testing::TestSeed(5);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const std::string bytes = EncodeEntry(Sample());
  for (int round = 0; round < 2000; ++round) {
    std::string damaged = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      damaged[rng() % damaged.size()] = static_cast<char>(rng());
    }
    if (rng() % 8 == 0) damaged.resize(rng() % damaged.size());
    Result<LogEntry> decoded = DecodeEntry(damaged);
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
    }
  }
}

}  // namespace
}  // namespace strata::replication
