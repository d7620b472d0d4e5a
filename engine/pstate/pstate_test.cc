// PStates on a real WiredTiger: the navigator table on blob and subindexed layouts, schema
// violations, O(1) sizes, pagination, global PStates, transactions and reopening.
#include "pstate/pstate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "path/testing/navigator_cases.h"
#include "pstate/layout.h"
#include "pstate/testing/pstate_fixture.h"
#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/navigate.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

using testing::NavigatorCase;
using testing::NavigatorCaseData;
using testing::NavigatorCases;
using testing::ParseOrDie;
using testing::TestStore;

enum class Layout { kBlob, kSubindexed };

std::string LayoutName(Layout layout) { return layout == Layout::kBlob ? "blob" : "subindexed"; }
void PrintTo(Layout layout, std::ostream* os) { *os << LayoutName(layout); }

// The schema of the navigator table's data. With kSubindexed every nested map, set and list
// is stored one element per record (groups: a subindexed map of subindexed sets).
Schema AccountsSchema(Layout layout) {
  auto sub = [&](Schema s) { return layout == Layout::kSubindexed ? s.Subindexed() : s; };
  return Schema::Map(
      Schema::String(),
      Schema::Record(
          {{"balance", Schema::Int64()},
           {"tags", sub(Schema::Set(Schema::String()))},
           {"history", sub(Schema::List(Schema::Int64()))},
           {"scores", sub(Schema::Map(Schema::String(), Schema::Int64()))},
           {"groups", sub(Schema::Map(Schema::String(), sub(Schema::Set(Schema::String()))))},
           {"note", Schema::Any()}}));
}

#define ASSERT_OK(expr)                               \
  do {                                                \
    auto _st = (expr);                                \
    ASSERT_TRUE(_st.ok()) << _st.status().ToString(); \
  } while (0)

Result<int64_t> Apply(PState& ps, Session& s, const Path& path) { return ps.Transform(s, 0, path); }

Value ReadAll(PState& ps, Session& s) {
  Result<Value> v = ps.SelectOne(s, 0, Path());
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : Value();
}

// Every size a select can ask (served by size records when subindexed) equals the number of
// elements actually there.
void ExpectSizesConsistent(PState& ps, Session& s) {
  Value data = ReadAll(ps, s);
  Result<Value> root_size = ps.SelectOne(s, 0, Path().Size());
  ASSERT_TRUE(root_size.ok()) << root_size.status().ToString();
  EXPECT_EQ(*root_size, Value(static_cast<int64_t>(data.size())));
  for (const auto& [user, record] : data.as_map()) {
    for (const char* field : {"tags", "history", "scores", "groups"}) {
      const Value* v = record.Find(field);
      Result<Value> size = ps.SelectOne(s, 0, Path().Key(user, field).Size());
      ASSERT_TRUE(size.ok()) << size.status().ToString();
      EXPECT_EQ(*size, Value(static_cast<int64_t>(v ? v->size() : 0)))
          << user.ToString() << "." << field;
      if (v == nullptr || std::string_view(field) != "groups") continue;
      for (const auto& [group, members] : v->as_map()) {
        Result<Value> n = ps.SelectOne(s, 0, Path().Key(user, field, group).Size());
        ASSERT_TRUE(n.ok());
        EXPECT_EQ(*n, Value(static_cast<int64_t>(members.size())));
      }
    }
  }
}

// One Storage for the whole table: each case resets the data with a root set.
class PStateTableTest : public ::testing::TestWithParam<std::tuple<Layout, NavigatorCase>> {
 protected:
  static void SetUpTestSuite() {
    store_ = new TestStore();
    blob_ = store_->Open("blob", PStateSchema{AccountsSchema(Layout::kBlob)}).release();
    sub_ = store_->Open("sub", PStateSchema{AccountsSchema(Layout::kSubindexed)}).release();
  }
  static void TearDownTestSuite() {
    delete blob_;
    delete sub_;
    delete store_;
  }

  static TestStore* store_;
  static PState* blob_;
  static PState* sub_;
};

TestStore* PStateTableTest::store_ = nullptr;
PState* PStateTableTest::blob_ = nullptr;
PState* PStateTableTest::sub_ = nullptr;

TEST_P(PStateTableTest, MatchesTheTable) {
  const auto& [layout, nc] = GetParam();
  SCOPED_TRACE(LayoutName(layout) + ": " + nc.path.ToString());
  PState& ps = layout == Layout::kBlob ? *blob_ : *sub_;
  Session& s = store_->session();
  ASSERT_OK(Apply(ps, s, Path().Set(NavigatorCaseData())));
  ASSERT_EQ(ReadAll(ps, s), NavigatorCaseData());

  if (!nc.path.terminal()) {
    Result<std::vector<Value>> got = ps.Select(s, 0, nc.path);
    if (nc.error != StatusCode::kOk) {
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.status().code(), nc.error) << got.status().ToString();
    } else {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(Value(*got), ParseOrDie(nc.expected)) << Value(*got).ToString();
    }
    EXPECT_EQ(ReadAll(ps, s), NavigatorCaseData()) << "select changed the data";
    return;
  }
  Result<int64_t> applied = Apply(ps, s, nc.path);
  if (nc.error != StatusCode::kOk) {
    ASSERT_FALSE(applied.ok());
    EXPECT_EQ(applied.status().code(), nc.error) << applied.status().ToString();
    // The transform ran in its own transaction, which was rolled back.
    EXPECT_EQ(ReadAll(ps, s), NavigatorCaseData());
    return;
  }
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  if (nc.applied >= 0) {
    EXPECT_EQ(*applied, nc.applied);
  }
  Value want = ParseOrDie(nc.expected);
  if (!nc.key.empty()) {
    Value whole = NavigatorCaseData();
    if (want.is_nil()) {
      whole.Erase(nc.key);
    } else {
      whole.Insert(nc.key, want);
    }
    want = whole;
  }
  Value data = ReadAll(ps, s);
  EXPECT_EQ(data, want) << data.ToString();
  ExpectSizesConsistent(ps, s);
}

INSTANTIATE_TEST_SUITE_P(Table, PStateTableTest,
                         ::testing::Combine(::testing::Values(Layout::kBlob, Layout::kSubindexed),
                                            ::testing::ValuesIn(NavigatorCases())),
                         [](const auto& info) {
                           return LayoutName(std::get<0>(info.param)) + "_" +
                                  std::get<1>(info.param).name;
                         });

class PStateTest : public ::testing::Test {
 protected:
  TestStore store_;
  Session& s() { return store_.session(); }
};

class PStateLayoutTest : public ::testing::TestWithParam<Layout> {
 protected:
  void SetUp() override {
    ps_ = store_.Open("accounts", PStateSchema{AccountsSchema(GetParam())});
    ASSERT_NE(ps_, nullptr);
    ASSERT_OK(Apply(*ps_, s(), Path().Set(NavigatorCaseData())));
  }
  Session& s() { return store_.session(); }

  TestStore store_;
  std::unique_ptr<PState> ps_;
};

TEST_P(PStateLayoutTest, SchemaViolationsNameThePlaceAndChangeNothing) {
  struct Case {
    Path path;
    std::string message;
  };
  const Case cases[] = {
      {Path().Key("alice", "balance").Set("x"),
       R"($$accounts["alice"].balance: expected int64, got string "x")"},
      {Path().Key("alice", "balance").Add(0.5),
       R"($$accounts["alice"].balance: expected int64, got double 10.5)"},
      {Path().Key("alice", "tags").AddToSet(5),
       R"($$accounts["alice"].tags[5]: expected string, got int 5)"},
      {Path().Key("alice", "scores", "x").Set("s"),
       R"($$accounts["alice"].scores["x"]: expected int64, got string "s")"},
      {Path().Key("alice", "history").Append(1, "z"),
       R"($$accounts["alice"].history[4]: expected int64, got string "z")"},
      {Path().Key("alice", "groups", "g1").AddToSet(1),
       R"($$accounts["alice"].groups["g1"][1]: expected string, got int 1)"},
      {Path().Key("alice", "bogus").Set(1),
       R"($$accounts["alice"]: unknown field "bogus" (fields: balance, groups, history, note, scores, tags))"},
      {Path().Key(5).Set(Value::EmptyMap()), R"($$accounts[5]: expected string, got int 5)"},
      {Path().Key("bob").Set(ParseOrDie(R"({"scores": {"a": "x"}})")),
       R"($$accounts["bob"].scores["a"]: expected int64, got string "x")"},
      {Path().Key("carol", "scores").Set(Value::ListOf({1})),
       R"($$accounts["carol"].scores: expected )"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path.ToString());
    Result<int64_t> r = Apply(*ps_, s(), c.path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kSchemaViolation) << r.status().ToString();
    EXPECT_EQ(r.status().message().substr(0, c.message.size()), c.message) << r.status().message();
    EXPECT_EQ(ReadAll(*ps_, s()), NavigatorCaseData());
  }
}

// Random transforms on the PState and on a plain Value must keep them equal, and every size
// consistent.
TEST_P(PStateLayoutTest, RandomTransformsMatchAPlainValue) {
  const uint64_t seed = strata::testing::TestSeed(GetParam() == Layout::kBlob ? 7 : 8);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const char* users[] = {"alice", "bob", "carol", "dave"};
  Value model = NavigatorCaseData();
  for (int op = 0; op < 400; ++op) {
    const Value user(users[pick(4)]);
    const Value word(std::string(1, static_cast<char>('a' + pick(8))));
    Path p;
    switch (pick(12)) {
      case 0:
        p = Path().Key(user, "scores", word).Set(pick(100));
        break;
      case 1:
        p = Path().Key(user, "scores", word).Remove();
        break;
      case 2:
        p = Path().Key(user, "tags").AddToSet(word);
        break;
      case 3:
        p = Path().Key(user, "tags", word).Remove();
        break;
      case 4:
        p = Path().Key(user, "history").Append(pick(10));
        break;
      case 5:
        p = Path().Key(user, "history").Nth(pick(4)).Remove();
        break;
      case 6:
        p = Path().Key(user, "groups", word).AddToSet(Value(std::to_string(pick(5))));
        break;
      case 7:
        p = Path().Key(user, "groups", word).All().Filter(PredicateOp::kLt, "2").Remove();
        break;
      case 8:
        p = Path().Key(user, "scores").Range({.from = word, .limit = 2}).Remove();
        break;
      case 9:
        p = Path().Key(user, "scores").MapVals().Inc();
        break;
      case 10:
        p = Path().Key(user, "balance").Add(pick(7) - 3);
        break;
      default:
        p = pick(5) == 0 ? Path().Key(user).Remove() : Path().Key(user, "groups", word).Remove();
        break;
    }
    SCOPED_TRACE(std::to_string(op) + ": " + p.ToString());
    Result<int64_t> want = Transform(&model, p);
    Result<int64_t> got = Apply(*ps_, s(), p);
    ASSERT_EQ(got.ok(), want.ok()) << got.status().ToString() << " / " << want.status().ToString();
    if (got.ok()) {
      EXPECT_EQ(*got, *want);
    }
    if (op % 20 == 19) {
      ASSERT_EQ(ReadAll(*ps_, s()), model);
      ExpectSizesConsistent(*ps_, s());
    }
  }
  EXPECT_EQ(ReadAll(*ps_, s()), model);
}

TEST_P(PStateLayoutTest, PagesThroughASortedMap) {
  Value::Map scores;
  for (int i = 0; i < 1000; ++i) {
    char key[8];
    snprintf(key, sizeof key, "k%04d", i);
    scores.emplace_back(key, i);
  }
  ASSERT_OK(Apply(*ps_, s(), Path().Key("alice", "scores").Set(Value::MapOf(scores))));
  // Forward pages of 64 from an exclusive start key.
  std::vector<Value> keys;
  std::optional<Value> after;
  while (true) {
    Result<Value> page = ps_->SelectOne(
        s(), 0,
        Path().Key("alice", "scores").Range({.from = after, .from_inclusive = false, .limit = 64}));
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (page->size() == 0) break;
    EXPECT_LE(page->size(), 64u);
    for (const auto& [k, v] : page->as_map()) keys.push_back(k);
    after = page->as_map().back().first;
  }
  ASSERT_EQ(keys.size(), 1000u);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(keys[i], scores[i].first);
  // Backward pages with reverse.
  std::vector<Value> back;
  std::optional<Value> before;
  while (true) {
    Result<std::vector<Value>> page =
        ps_->Select(s(), 0,
                    Path()
                        .Key("alice", "scores")
                        .Range({.to = before, .limit = 100, .reverse = true})
                        .MapKeys());
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    if (page->empty()) break;
    back.insert(back.end(), page->begin(), page->end());
    before = page->back();
  }
  ASSERT_EQ(back.size(), 1000u);
  EXPECT_EQ(back.front(), scores.back().first);
  EXPECT_EQ(back.back(), scores.front().first);
  Result<Value> size = ps_->SelectOne(s(), 0, Path().Key("alice", "scores").Size());
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, Value(1000));
}

// The root map's values hold subindexed structures here, so scans of the root jump over
// each element's subtree, forwards and backwards.
TEST_P(PStateLayoutTest, PagesThroughMapWhoseValuesHaveSubtrees) {
  for (int i = 0; i < 300; ++i) {
    char user[8];
    snprintf(user, sizeof user, "u%03d", i);
    ASSERT_OK(Apply(*ps_, s(), Path().Key(user, "tags").AddToSet("a", "b", "c")));
    ASSERT_OK(Apply(*ps_, s(), Path().Key(user, "groups", "g").AddToSet("x", "y")));
  }
  Result<std::vector<Value>> page =
      ps_->Select(s(), 0, Path().Range({.from = "u100", .limit = 5}).MapKeys());
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(Value(*page), ParseOrDie(R"(["u100", "u101", "u102", "u103", "u104"])"));
  page = ps_->Select(s(), 0, Path().Range({.to = "u100", .limit = 3, .reverse = true}).MapKeys());
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(Value(*page), ParseOrDie(R"(["u099", "u098", "u097"])"));
  page = ps_->Select(s(), 0,
                     Path().Range({.from = "u2", .limit = 2}).MapVals().Key("groups", "g").Size());
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Value(*page), ParseOrDie("[2, 2]"));
  Result<Value> n = ps_->SelectOne(s(), 0, Path().Size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, Value(303));
}

INSTANTIATE_TEST_SUITE_P(Layouts, PStateLayoutTest,
                         ::testing::Values(Layout::kBlob, Layout::kSubindexed),
                         [](const auto& info) { return LayoutName(info.param); });

// White box: a subindexed size is one record read, not a count.
TEST_F(PStateTest, SubindexedSizeIsReadFromItsSizeRecord) {
  auto ps = store_.Open("accounts", PStateSchema{AccountsSchema(Layout::kSubindexed)});
  ASSERT_OK(Apply(*ps, s(), Path().Set(NavigatorCaseData())));
  Result<TableId> table =
      store_.storage().OpenTable(PState::TableName("test", "accounts", 0), TableKind::kBytes);
  ASSERT_TRUE(table.ok());
  std::string prefix = EncodeKey(Value("alice")) + EncodeKey(Value("tags"));
  std::string bytes;
  ASSERT_TRUE(*s().Get(*table, pstate_layout::SizeKey(prefix), &bytes));
  uint64_t n = 0;
  ASSERT_TRUE(pstate_layout::DecodeSize(bytes, &n));
  EXPECT_EQ(n, 3u);
  // Element records sit beside it, one per member.
  int members = 0;
  ASSERT_TRUE(s().Scan(*table, pstate_layout::ElementsBegin(prefix), PrefixEnd(prefix), false,
                       [&](std::string_view, std::string_view) {
                         ++members;
                         return true;
                       })
                  .ok());
  EXPECT_EQ(members, 3);
  ASSERT_TRUE(
      s().Put(*table, pstate_layout::SizeKey(prefix), pstate_layout::EncodeSize(1000)).ok());
  Result<Value> size = ps->SelectOne(s(), 0, Path().Key("alice", "tags").Size());
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, Value(1000));
}

// A write of a whole element of a subindexed map reads nothing first (one insert finds out
// whether the element is new): the size counts new elements once, overwrites not at all,
// also in a caller's transaction and after a removal in it.
TEST_F(PStateTest, WholeElementWritesKeepTheSizeWithoutReadingFirst) {
  auto ps = store_.Open("accounts", PStateSchema{AccountsSchema(Layout::kSubindexed)});
  auto size = [&] {
    Result<Value> n = ps->SelectOne(s(), 0, Path().Key("alice", "scores").Size());
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? n->as_int() : -1;
  };
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "art").Set(70)));
  EXPECT_EQ(size(), 1);
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "art").Set(71)));
  EXPECT_EQ(size(), 1);
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "bio").Set(80)));
  EXPECT_EQ(size(), 2);
  ASSERT_TRUE(s().Begin(true).ok());
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "bio").Remove()));
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "bio").Set(81)));
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "chem").Set(60)));
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "scores", "chem").Set(61)));
  ASSERT_TRUE(s().Commit().ok());
  EXPECT_EQ(size(), 3);
  EXPECT_EQ(*ps->SelectOne(s(), 0, Path().Key("alice", "scores")),
            ParseOrDie(R"({"art": 71, "bio": 81, "chem": 61})"));
  // A refused value writes nothing and leaves the size alone.
  EXPECT_FALSE(Apply(*ps, s(), Path().Key("alice", "scores", "dog").Set("x")).ok());
  EXPECT_EQ(size(), 3);
}

// White box: existence is answered by the size record when there is one (it lives only as
// long as its container), by the entry record otherwise (an empty container that never
// counted an element). Both kinds of empty container exist; a removed one leaves no record.
TEST_F(PStateTest, ContainerExistsWithOrWithoutItsSizeRecord) {
  auto ps = store_.Open("accounts", PStateSchema{AccountsSchema(Layout::kSubindexed)});
  Result<TableId> table =
      store_.storage().OpenTable(PState::TableName("test", "accounts", 0), TableKind::kBytes);
  ASSERT_TRUE(table.ok());
  const std::string prefix = EncodeKey(Value("alice")) + EncodeKey(Value("tags"));
  std::string bytes;
  auto records_under_prefix = [&] {
    int n = 0;
    EXPECT_TRUE(s().Scan(*table, prefix, PrefixEnd(prefix), false,
                         [&](std::string_view, std::string_view) {
                           ++n;
                           return true;
                         })
                    .ok());
    return n;
  };
  auto expect_tags = [&](const char* json, int64_t size) {
    Result<Value> tags = ps->SelectOne(s(), 0, Path().Key("alice", "tags"));
    ASSERT_TRUE(tags.ok()) << tags.status().ToString();
    EXPECT_EQ(*tags, ParseOrDie(json));
    Result<Value> n = ps->SelectOne(s(), 0, Path().Key("alice", "tags").Size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    EXPECT_EQ(*n, Value(size));
  };

  // Written empty: an entry record and no size record.
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice").Set(Value::MapOf({{"tags", Value::EmptySet()}}))));
  EXPECT_FALSE(*s().Get(*table, pstate_layout::SizeKey(prefix), &bytes));
  expect_tags(R"({"$set": []})", 0);
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "tags").AddToSet("x", "y")));
  expect_tags(R"({"$set": ["x", "y"]})", 2);

  // Emptied element by element: the size record stays, holding 0.
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "tags").All().Remove()));
  ASSERT_TRUE(*s().Get(*table, pstate_layout::SizeKey(prefix), &bytes));
  EXPECT_EQ(bytes, pstate_layout::EncodeSize(0));
  expect_tags(R"({"$set": []})", 0);

  // Removed: nothing is left under its prefix, and it does not exist.
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "tags").Remove()));
  EXPECT_EQ(records_under_prefix(), 0);
  expect_tags("null", 0);
  // Created again by a write, inside one transaction with reads before and after it.
  ASSERT_TRUE(s().Begin().ok());
  expect_tags("null", 0);
  ASSERT_OK(Apply(*ps, s(), Path().Key("alice", "tags").AddToSet("z")));
  expect_tags(R"({"$set": ["z"]})", 1);
  ASSERT_TRUE(s().Commit().ok());
  EXPECT_EQ(records_under_prefix(), 3);  // entry, size and the member
}

TEST_F(PStateTest, ReadsOneRecordOnlyForKeysIntoBlobValuesOfTheRootMap) {
  auto counts =
      store_.Open("counts", PStateSchema{Schema::Map(Schema::String(), Schema::Int64()), false}, 2);
  auto follows = store_.Open(
      "follows",
      PStateSchema{Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()),
                   false},
      2);
  auto counter = store_.Open("total", PStateSchema{Schema::Int64(), true}, 1);
  ASSERT_TRUE(counts && follows && counter);
  EXPECT_TRUE(counts->ReadsOneRecord(Path().Key("the")));
  EXPECT_TRUE(counts->ReadsOneRecord(Path().Must("the")));
  EXPECT_FALSE(counts->ReadsOneRecord(Path()));
  EXPECT_FALSE(counts->ReadsOneRecord(Path().All()));
  EXPECT_FALSE(counts->ReadsOneRecord(Path().Key("the").NullTo(0)));
  EXPECT_FALSE(follows->ReadsOneRecord(Path().Key("alice")));  // a subindexed set: many
  EXPECT_FALSE(counter->ReadsOneRecord(Path()));
}

TEST_F(PStateTest, GlobalCounterAndLists) {
  auto counter = store_.Open("counter", PStateSchema{Schema::Int64(), true}, 4);
  ASSERT_NE(counter, nullptr);
  EXPECT_EQ(counter->partitions(), 1);
  ASSERT_OK(counter->Transform(s(), 0, Path().Inc()));
  ASSERT_OK(counter->Transform(s(), 0, Path().Add(41)));
  Result<Value> v = counter->SelectOne(s(), 0, Path());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, Value(42));
  Result<Value> other = counter->SelectOne(s(), 1, Path());
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("has 1 partition(s); there is no partition 1"),
            std::string::npos);
  EXPECT_EQ(counter->Transform(s(), 0, Path().Set("x")).status().code(),
            StatusCode::kSchemaViolation);

  // A global list, blob and subindexed: same answers.
  for (bool subindexed : {false, true}) {
    Schema list = Schema::List(Schema::String());
    auto ps = store_.Open(subindexed ? "log_sub" : "log_blob",
                          PStateSchema{subindexed ? list.Subindexed() : list, true});
    SCOPED_TRACE(subindexed);
    ASSERT_OK(ps->Transform(s(), 0, Path().Append("a", "b", "c")));
    ASSERT_OK(ps->Transform(s(), 0, Path().Append("d")));
    ASSERT_OK(ps->Transform(s(), 0, Path().Nth(1).Remove()));
    ASSERT_OK(ps->Transform(s(), 0, Path().Last().Set("z")));
    Result<Value> all = ps->SelectOne(s(), 0, Path());
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(*all, ParseOrDie(R"(["a", "c", "z"])"));
    Result<Value> size = ps->SelectOne(s(), 0, Path().Size());
    ASSERT_TRUE(size.ok());
    EXPECT_EQ(*size, Value(3));
    Result<Value> second = ps->SelectOne(s(), 0, Path().Nth(1));
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(*second, Value("c"));
    EXPECT_EQ(ps->Transform(s(), 0, Path().Append(1)).status().code(),
              StatusCode::kSchemaViolation);
  }
}

TEST_F(PStateTest, GlobalRecordWithSubindexedField) {
  auto ps = store_.Open(
      "stats", PStateSchema{Schema::Record({{"count", Schema::Int64()},
                                            {"seen", Schema::Set(Schema::String()).Subindexed()}}),
                            true});
  ASSERT_NE(ps, nullptr);
  Result<Value> empty = ps->SelectOne(s(), 0, Path());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->is_nil());
  ASSERT_OK(ps->Transform(s(), 0, Path().Key("seen").AddToSet("x", "y")));
  ASSERT_OK(ps->Transform(s(), 0, Path().Key("count").Inc()));
  Result<Value> all = ps->SelectOne(s(), 0, Path());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, ParseOrDie(R"({"count": 1, "seen": {"$set": ["x", "y"]}})"));
  ASSERT_OK(ps->Transform(s(), 0, Path().Remove()));
  all = ps->SelectOne(s(), 0, Path());
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->is_nil());
  Result<Value> n = ps->SelectOne(s(), 0, Path().Key("seen").Size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, Value(0));
}

TEST_F(PStateTest, PartitionsAreSeparateTables) {
  auto ps = store_.Open("$$words", PStateSchema{Schema::Map(Schema::String(), Schema::Int64())}, 3);
  ASSERT_NE(ps, nullptr);
  EXPECT_EQ(ps->name(), "words");
  for (int p = 0; p < 3; ++p) ASSERT_OK(ps->Transform(s(), p, Path().Key("w").Add(p + 1)));
  for (int p = 0; p < 3; ++p) {
    Result<Value> v = ps->SelectOne(s(), p, Path().Key("w"));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, Value(p + 1));
  }
  Result<std::vector<std::string>> tables = store_.storage().ListTables("pstate.test.words.");
  ASSERT_TRUE(tables.ok());
  EXPECT_EQ(*tables, (std::vector<std::string>{"pstate.test.words.0", "pstate.test.words.1",
                                               "pstate.test.words.2"}));
}

TEST_F(PStateTest, WritesJoinTheCallersTransaction) {
  auto ps = store_.Open("words", PStateSchema{Schema::Map(Schema::String(), Schema::Int64())});
  Result<TableId> marker = store_.storage().OpenTable("progress", TableKind::kBytes);
  ASSERT_TRUE(marker.ok());
  ASSERT_TRUE(s().Begin().ok());
  ASSERT_OK(ps->Transform(s(), 0, Path().Key("a").Inc()));
  ASSERT_TRUE(s().in_transaction());
  s().Rollback();
  Result<Value> v = ps->SelectOne(s(), 0, Path().Key("a"));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is_nil());

  ASSERT_TRUE(s().Begin().ok());
  ASSERT_OK(ps->Transform(s(), 0, Path().Key("a").Inc()));
  ASSERT_TRUE(s().Put(*marker, "m", "1").ok());
  ASSERT_TRUE(s().Commit().ok());
  v = ps->SelectOne(s(), 0, Path().Key("a"));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, Value(1));
}

TEST_F(PStateTest, ConcurrentIncrementsLoseNothing) {
  auto ps = store_.Open("words", PStateSchema{Schema::Map(Schema::String(), Schema::Int64())});
  constexpr int kPerThread = 1000;
  std::atomic<int> aborted{0};
  auto work = [&] {
    auto session = store_.storage().OpenSession();
    ASSERT_TRUE(session.ok());
    for (int i = 0; i < kPerThread;) {
      Result<int64_t> r = ps->Transform(**session, 0, Path().Key("n").Inc());
      if (r.ok()) {
        ++i;
      } else {
        ASSERT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
        ++aborted;
      }
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  Result<Value> n = ps->SelectOne(s(), 0, Path().Key("n"));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, Value(2 * kPerThread))
      << n->ToString() << "; " << aborted.load() << " conflicts were retried";
}

TEST_F(PStateTest, DataAndSchemaSurviveReopen) {
  PStateSchema schema{AccountsSchema(Layout::kSubindexed)};
  {
    auto ps = store_.Open("accounts", schema);
    ASSERT_OK(Apply(*ps, s(), Path().Set(NavigatorCaseData())));
  }
  store_.Reopen();
  auto ps = store_.Open("accounts", schema);
  ASSERT_NE(ps, nullptr);
  EXPECT_EQ(ReadAll(*ps, s()), NavigatorCaseData());
  // Opening the same tables with another schema is refused.
  auto other = PState::Open(&store_.storage(), "test", "accounts",
                            PStateSchema{AccountsSchema(Layout::kBlob)}, 1);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      other.status().message().find("table pstate.test.accounts.0 holds a PState with schema"),
      std::string::npos)
      << other.status().message();
}

TEST_F(PStateTest, OpenChecksNamesAndSchema) {
  PStateSchema ok{Schema::Int64(), true};
  EXPECT_EQ(PState::Open(&store_.storage(), "my.mod", "x", ok, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PState::Open(&store_.storage(), "m", "", ok, 1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PState::Open(&store_.storage(), "m", "x", ok, 0).status().code(),
            StatusCode::kInvalidArgument);
  auto bad =
      PState::Open(&store_.storage(), "m", "x", PStateSchema{Schema::Int64().Subindexed()}, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "PState $$x: schema at root: only maps, sets and lists can be subindexed, not int64");
}

TEST_F(PStateTest, SelectOneSaysHowManyMatched) {
  auto ps = store_.Open("accounts", PStateSchema{AccountsSchema(Layout::kSubindexed)});
  ASSERT_OK(Apply(*ps, s(), Path().Set(NavigatorCaseData())));
  Result<Value> many = ps->SelectOne(s(), 0, Path().Key("alice", "tags").All());
  EXPECT_EQ(many.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(many.status().message(),
            R"(select_one: key("alice", "tags").all matched 3 values, expected exactly 1)");
  Result<Value> none = ps->SelectOne(s(), 0, Path().Must("zed"));
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
