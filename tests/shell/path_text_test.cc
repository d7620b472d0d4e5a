// The shell's text parsers without a server: paths (every navigator and terminal spelling,
// round trip with Path::ToString, errors with positions), commands, multi-line detection
// and table rendering.
#include <gtest/gtest.h>

#include <string>

#include "command.h"
#include "path_text.h"
#include "render.h"
#include "strata/json.h"
#include "strata/testing/test_seed.h"
#include "testing/random_value.h"

namespace strata::shell {
namespace {

Path MustParse(std::string_view text) {
  Parsed<Path> p = ParsePathText(text);
  EXPECT_TRUE(p.ok()) << text << ": at " << p.error().position << ": " << p.error().message;
  return p.ok() ? *p : Path();
}

Value Json(std::string_view text) {
  Result<Value> v = ParseJson(text);
  EXPECT_TRUE(v.ok()) << text;
  return v.ok() ? *v : Value();
}

TEST(PathTextTest, EveryNavigatorAndTerminalHasASpelling) {
  struct Case {
    const char* text;
    Path want;
  };
  const Case cases[] = {
      {"key(\"alice\")", Path().Key("alice")},
      {"key(\"alice\", \"balance\")", Path().Key("alice", "balance")},
      {"key(17)", Path().Key(17)},
      {"key([-15, \"carol\"])", Path().Key(Value::ListOf({-15, "carol"}))},
      {"must(\"zed\").key(\"balance\")", Path().Must("zed").Key("balance")},
      {"nth(3)", Path().Nth(3)},
      {"first", Path().First()},
      {"last", Path().Last()},
      {"all", Path().All()},
      {"map_keys", Path().MapKeys()},
      {"map_vals", Path().MapVals()},
      {"size", Path().Size()},
      {"size()", Path().Size()},
      {"range([\"b\", \"d\"))", Path().Range({.from = "b", .to = "d"})},
      {"range((\"b\", \"d\"])",
       Path().Range({.from = "b", .from_inclusive = false, .to = "d", .to_inclusive = true})},
      {"range((-inf, +inf), limit 20, reverse)", Path().Range({.limit = 20, .reverse = true})},
      {"range([[-15, \"carol\"], +inf), limit 2)",
       Path().Range({.from = Value::ListOf({-15, "carol"}), .limit = 2})},
      {"range({\"limit\": 20})", Path().Range({.limit = 20})},
      {"range({\"from\": [-15, \"carol\"], \"from_inclusive\": false, \"limit\": 20})",
       Path().Range({.from = Value::ListOf({-15, "carol"}), .from_inclusive = false, .limit = 20})},
      {"filter(gt 10)", Path().Filter(PredicateOp::kGt, 10)},
      {"filter(eq \"x\")", Path().Filter(PredicateOp::kEq, "x")},
      {"filter(ne null)", Path().Filter(PredicateOp::kNe, Value())},
      {"filter(lt 1.5)", Path().Filter(PredicateOp::kLt, 1.5)},
      {"filter(le -2)", Path().Filter(PredicateOp::kLe, -2)},
      {"filter(ge [1])", Path().Filter(PredicateOp::kGe, Value::ListOf({1}))},
      {"filter(exists)", Path().Filter(PredicateOp::kExists)},
      {"all.filter(nth(1) gt 75).nth(0)",
       Path().All().FilterOn(Path().Nth(1), PredicateOp::kGt, 75).Nth(0)},
      {"filter(key(\"a\").size exists)",
       Path().FilterOn(Path().Key("a").Size(), PredicateOp::kExists)},
      {"filter((root) eq 1)", Path().FilterOn(Path(), PredicateOp::kEq, 1)},
      {"null_to([])", Path().NullTo(Value(Value::List{}))},
      {"set({\"a\": 1})", Path().Set(Value::MapOf({{"a", 1}}))},
      {"add(2.5)", Path().Add(2.5)},
      {"inc", Path().Inc()},
      {"append(1, \"two\")", Path().Append(1, "two")},
      {"add_to_set(\"x\")", Path().AddToSet("x")},
      {"set_if_absent(0)", Path().SetIfAbsent(0)},
      {"remove", Path().Remove()},
      {"  key( \"a\" ) . all  ", Path().Key("a").All()},
      {"(root)", Path()},
      {"", Path()},
      {"[\"alice\", \"bob\"]", Path().Key("alice", "bob")},
      {"[]", Path()},
      {"[[-15, \"carol\"], 3]", Path().Key(Value::ListOf({-15, "carol"}), 3)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Path got = MustParse(c.text);
    EXPECT_EQ(got.ToValue(), c.want.ToValue()) << got.ToString();
  }
}

// A random path of every navigator and terminal, with random JSON values as arguments.
// Filter subpaths (depth below the top) end without a terminal, as Validate requires.
Path RandomPath(testing::RandomValueGenerator& gen, int depth, bool top = true) {
  Path p;
  const int64_t steps = gen.Uniform(0, 5);
  for (int64_t i = 0; i < steps; ++i) {
    switch (gen.Uniform(0, 11)) {
      case 0:
        p.Key(gen.Any(2));
        break;
      case 1:
        p.Key(gen.Any(1), gen.Scalar());
        break;
      case 2:
        p.Must(gen.Any(2));
        break;
      case 3:
        p.Nth(gen.Uniform(0, 1000));
        break;
      case 4:
        p.First();
        break;
      case 5:
        p.Last();
        break;
      case 6:
        p.All();
        break;
      case 7:
        gen.Uniform(0, 1) ? p.MapKeys() : p.MapVals();
        break;
      case 8: {
        RangeSpec r;
        if (gen.Uniform(0, 2) > 0) {
          r.from = gen.Any(1);
          r.from_inclusive = gen.Uniform(0, 1) == 1;
        }
        if (gen.Uniform(0, 2) > 0) {
          r.to = gen.Any(1);
          r.to_inclusive = gen.Uniform(0, 1) == 1;
        }
        if (gen.Uniform(0, 1)) r.limit = gen.Uniform(0, 100);
        r.reverse = gen.Uniform(0, 1) == 1;
        p.Range(r);
        break;
      }
      case 9:
        p.Size();
        break;
      case 10: {
        auto op = static_cast<PredicateOp>(gen.Uniform(0, 6));
        Value arg = op == PredicateOp::kExists ? Value() : gen.Any(2);
        if (depth > 0 && gen.Uniform(0, 1)) {
          p.FilterOn(RandomPath(gen, depth - 1, /*top=*/false), op, arg);
        } else {
          p.Filter(op, arg);
        }
        break;
      }
      default:
        p.NullTo(gen.Any(2));
        break;
    }
  }
  if (top && gen.Uniform(0, 2) == 0) {
    switch (gen.Uniform(0, 6)) {
      case 0:
        p.Set(gen.Any(2));
        break;
      case 1:
        p.Add(gen.Uniform(0, 1) ? Value(gen.Int()) : Value(gen.Double()));
        break;
      case 2:
        p.Inc();
        break;
      case 3:
        p.Append(gen.Any(2), gen.Any(1));
        break;
      case 4:
        p.AddToSet(gen.Any(2));
        break;
      case 5:
        p.SetIfAbsent(gen.Any(2));
        break;
      default:
        p.Remove();
        break;
    }
  }
  return p;
}

TEST(PathTextTest, ParsesBackWhatToStringPrints) {
  const uint64_t seed = strata::testing::TestSeed(20240611);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  testing::RandomValueGenerator gen(seed);
  for (int i = 0; i < 3000; ++i) {
    Path p = RandomPath(gen, 2);
    ASSERT_TRUE(p.Validate().ok()) << p.ToString();
    const std::string text = p.ToString();
    Parsed<Path> back = ParsePathText(text);
    ASSERT_TRUE(back.ok()) << "seed " << seed << " case " << i << ": " << text << "\nat "
                           << back.error().position << ": " << back.error().message;
    ASSERT_EQ(back->ToValue(), p.ToValue()) << "seed " << seed << " case " << i << ": " << text;
  }
}

struct ErrorCase {
  const char* text;
  size_t position;
  const char* message_part;
};

TEST(PathTextTest, ErrorsSayWhatAndWhere) {
  const ErrorCase cases[] = {
      {"key(\"a\").kye", 9, "unknown path step \"kye\""},
      {"key(\"a\"", 7, "expected ')'"},
      {"key(\"a\").", 9, "expected a path step"},
      {"key(\"a\") all", 9, "unexpected 'a' after the path"},
      {"nth(-1)", 0, "nth needs an index >= 0"},
      {"all.nth(\"x\")", 4, "nth needs an int index"},
      {"key({\"a\": })", 10, "invalid JSON"},
      {"key(\"abc)", 4, "unterminated string"},
      {"key([1, 2)", 4, "unclosed '['"},
      {"filter(foo 1)", 7, "unknown path step \"foo\""},
      {"filter(gt)", 9, "expected a JSON value"},
      {"filter(nth(1) bigger 2)", 14, "expected a predicate"},
      {"range(\"a\", \"b\")", 6, "range takes an interval"},
      {"range([\"a\", \"b\"}", 15, "expected ']' (inclusive) or ')'"},
      {"range([\"a\", \"b\"), top 3)", 18, "expected 'limit N' or 'reverse'"},
      {"range({\"limit\": -1})", 0, "limit"},
      {"inc.all", 0, "must be the last step"},
      {"[\"a\"] x", 6, "unexpected 'x'"},
      {"[\"a\", ]", 6, "invalid JSON"},
      {"set(1, 2)", 0, "set takes exactly one value"},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.text);
    Parsed<Path> p = ParsePathText(c.text);
    ASSERT_FALSE(p.ok()) << p->ToString();
    EXPECT_EQ(p.error().position, c.position) << p.error().message;
    EXPECT_NE(p.error().message.find(c.message_part), std::string::npos) << p.error().message;
  }
}

TEST(PathTextTest, JsonValueInsideALongerText) {
  const std::string text = R"j(  {"a": [1, "x)"]} ack=none)j";
  size_t pos = 0;
  Parsed<Value> v = ParseJsonAt(text, &pos);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(*v, Json(R"j({"a": [1, "x)"]})j"));
  EXPECT_EQ(text.substr(pos), " ack=none");
}

TEST(CommandTest, ParsesEveryCommand) {
  Parsed<Command> c =
      ParseCommand(R"(append bank *deposits {"account": "alice", "amount": 100} ack=appended)");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kAppend);
  EXPECT_EQ(c->module, "bank");
  EXPECT_EQ(c->target, "*deposits");
  EXPECT_EQ(c->value, Json(R"({"account": "alice", "amount": 100})"));
  EXPECT_EQ(c->ack, protocol::AckLevel::kAppended);

  c = ParseCommand(
      R"(select social $$timelines key("alice").range((-inf, +inf), limit 20).map_vals)");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kSelect);
  EXPECT_EQ(c->target, "$$timelines");
  EXPECT_EQ(c->path.ToValue(), Path().Key("alice").Range({.limit = 20}).MapVals().ToValue());

  c = ParseCommand("select-one bank $$balances [\"alice\"]");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, Command::Kind::kSelectOne);
  EXPECT_EQ(c->path.ToValue(), Path().Key("alice").ToValue());

  c = ParseCommand("select bank $$balances partition_key=\"alice\" (root)");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->partition_key, Value("alice"));
  EXPECT_EQ(c->path.ToValue(), Path().ToValue());

  c = ParseCommand("scan bank *deposits partition=3 from=2 limit=5");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->partition, 3);
  EXPECT_EQ(c->from, 2);
  EXPECT_EQ(c->limit, 5);

  c = ParseCommand("scan bank *deposits");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->partition, -1);
  EXPECT_EQ(c->limit, 100);

  c = ParseCommand("deploy build/modules/bank.so partitions=4");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->word, "build/modules/bank.so");
  EXPECT_EQ(c->partitions, 4);

  c = ParseCommand("destroy bank --yes");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->yes);
  c = ParseCommand("stats");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->module, "");
  c = ParseCommand("timing on");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->on);
  for (const char* text :
       {"help", "help append", "modules", "describe bank", "stats bank", "quit", "exit"}) {
    EXPECT_TRUE(ParseCommand(text).ok()) << text;
  }
}

TEST(CommandTest, ParsesInvokeAndPagedSelect) {
  Parsed<Command> c = ParseCommand(R"(invoke social timeline "alice" 20 timeout=250 {"a": [1]})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kInvoke);
  EXPECT_EQ(c->module, "social");
  EXPECT_EQ(c->target, "timeline");
  EXPECT_EQ(c->args, (std::vector<Value>{Value("alice"), Value(20), Json(R"({"a": [1]})")}));
  EXPECT_EQ(c->timeout_ms, 250);
  c = ParseCommand("invoke bank total-money");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->args.empty());
  EXPECT_EQ(c->timeout_ms, 10'000);

  c = ParseCommand("select bank $$balances all-partitions");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kSelect);
  EXPECT_TRUE(c->all_partitions);
  EXPECT_EQ(c->path.ToValue(), Path().All().ToValue());
  EXPECT_EQ(c->limit, 100);
  c = ParseCommand("select bank $$balances all-partitions map_keys limit=7");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->path.ToValue(), Path().MapKeys().ToValue());
  EXPECT_EQ(c->limit, 7);
  c = ParseCommand("select bank $$balances all-partitions limit=10000");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->path.ToValue(), Path().All().ToValue());
  EXPECT_EQ(c->limit, 10'000);
  // Only the whole word: a PState path starting with it is a path.
  c = ParseCommand("select bank $$balances all");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_FALSE(c->all_partitions);
  c = ParseCommand("next");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kNext);
}

TEST(CommandTest, ParsesWatchLikeSelectWithACount) {
  Parsed<Command> c = ParseCommand(R"(watch wordcount $$word_counts key("the"))");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kWatch);
  EXPECT_EQ(c->module, "wordcount");
  EXPECT_EQ(c->target, "$$word_counts");
  EXPECT_EQ(c->path.ToValue(), Path().Key("the").ToValue());
  EXPECT_EQ(c->count, 0);
  c = ParseCommand(R"(watch-one wordcount $$word_counts key("the") count=2)");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->kind, Command::Kind::kWatchOne);
  EXPECT_EQ(c->path.ToValue(), Path().Key("the").ToValue());
  EXPECT_EQ(c->count, 2);
  c = ParseCommand("watch bank $$balances partition_key=\"alice\" (root) count=10 ");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->partition_key, Value("alice"));
  EXPECT_EQ(c->path.ToValue(), Path().ToValue());
  EXPECT_EQ(c->count, 10);
  // A key that looks like the option is part of the path.
  c = ParseCommand(R"(watch bank $$balances key("count=3"))");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->path.ToValue(), Path().Key("count=3").ToValue());
  EXPECT_EQ(c->count, 0);
  // all-partitions is select's alone: here it is a path (and not a valid one).
  EXPECT_FALSE(ParseCommand("watch bank $$balances all-partitions").ok());
}

TEST(CommandTest, ErrorsPointAtTheOffendingColumn) {
  const ErrorCase cases[] = {
      {"apend bank", 0, "unknown command 'apend'"},
      {"append bank *deposits {\"amount\": 10", 22, "unclosed '{'"},
      {"append bank *deposits {\"amount\": 1O}", 34, "invalid JSON"},
      {"append bank", 11, "missing DEPOT"},
      {"append bank *deposits 1 ack=maybe", 28, "ack must be none, appended, processed or streams"},
      {"append bank *deposits 1 2", 24, "unexpected '2'"},
      {"select social $$posts key(\"bob\").kye", 33, "unknown path step \"kye\""},
      {"select social $$posts key(\"bob\").inc", 22, "select paths are for reading"},
      {"select social $$posts", 21, "missing PATH"},
      {"select bank $$balances partition_key={ (root)", 37, "unclosed '{'"},
      {"scan bank *deposits limit=0", 26, "expected an integer >= 1"},
      {"scan bank *deposits offset=3", 20, "unexpected 'offset=3'"},
      {"timing maybe", 7, "timing takes on or off"},
      {"destroy bank now", 13, "expected --yes"},
      {"describe", 8, "missing MODULE"},
      {"modules all", 8, "unexpected 'all'"},
      {"invoke bank", 11, "missing QUERY"},
      {"invoke bank q timeout=0", 22, "expected an integer >= 1"},
      {"invoke bank q timeout=3600001", 22, "expected an integer <= 3600000"},
      {"invoke bank q {\"a\": x}", 20, "invalid JSON"},
      {"select bank $$b all-partitions limit=10001", 37, "expected an integer <= 10000"},
      {"select bank $$b all-partitions key(\"a\").kye", 40, "unknown path step \"kye\""},
      {"select bank $$b all-partitions all.inc", 30, "select paths are for reading"},
      {"select-one bank $$b all-partitions", 20, "select-one reads one partition"},
      {"next page", 5, "unexpected 'page'"},
      {"watch bank $$b", 14, "missing PATH"},
      {"watch bank $$b count=2", 22, "missing PATH"},
      {"watch bank $$b (root) count=0", 28, "expected an integer >= 1"},
      {"watch bank $$b (root) count=x", 28, "expected an integer >= 1"},
      {"watch-one bank $$b key(\"a\").inc count=1", 19, "watch paths are for reading"},
      {"watch bank $$b key(\"a\").kye", 24, "unknown path step \"kye\""},
  };
  for (const ErrorCase& c : cases) {
    SCOPED_TRACE(c.text);
    Parsed<Command> p = ParseCommand(c.text);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().position, c.position) << p.error().message;
    EXPECT_NE(p.error().message.find(c.message_part), std::string::npos) << p.error().message;
  }
}

TEST(CommandTest, ContinuesWhileABracketOrStringIsOpen) {
  EXPECT_FALSE(NeedsMoreInput("append bank *deposits {\"account\": \"alice\"}"));
  EXPECT_TRUE(NeedsMoreInput("append bank *deposits {\"account\":"));
  EXPECT_TRUE(NeedsMoreInput("select social $$posts key(\"bob\""));
  EXPECT_TRUE(NeedsMoreInput("append m *d [1, [2"));
  EXPECT_TRUE(NeedsMoreInput("append m *d \"open"));
  EXPECT_FALSE(NeedsMoreInput("append m *d \"a ( [ { \\\" b\""));
  EXPECT_FALSE(NeedsMoreInput("modules"));
}

TEST(RenderTest, MapsAndRecordListsAreAlignedTables) {
  EXPECT_EQ(RenderValue(Json(R"({"a": 1, "hello": "world"})")),
            "key    value\n"
            "-----  -----\n"
            "a      1\n"
            "hello  world\n"
            "(2 rows)\n");
  EXPECT_EQ(RenderValue(
                Json(R"([{"author": "bob", "id": 20}, {"author": "carol", "id": 15, "x": null}])")),
            "author  id  x\n"
            "------  --  ----\n"
            "bob     20\n"
            "carol   15  null\n"
            "(2 rows)\n");
  EXPECT_EQ(RenderValue(Json(R"({"alice": {"balance": 10}})")),
            "key    balance\n"
            "-----  -------\n"
            "alice  10\n"
            "(1 row)\n");
}

TEST(RenderTest, OtherValuesAreJsonAndLongCellsAreCut) {
  EXPECT_EQ(RenderValue(Json("[1, 2]")), "[1,2]\n");
  EXPECT_EQ(RenderValue(Json("{}")), "{}\n");
  EXPECT_EQ(RenderValue(Json("\"é\"")), "\"é\"\n");
  Table t{{"k"}, {{"ééééé"}}};
  EXPECT_EQ(RenderTable(t, 3), "k\n---\néé…\n(1 row)\n");
  const std::string long_list = ToJson(Json(
      R"([{"$set": [1, 2, 3]}, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])"));
  EXPECT_EQ(RenderValue(Json(long_list)), ToJson(Json(long_list), 2) + "\n");
  EXPECT_EQ(CellText(Value("a\nb")), "\"a\\nb\"");
}

TEST(RenderTest, DiffsAreOneLineWithJsonValues) {
  auto diff = [](Diff::Op op, std::vector<Value> at, Value key, Value value, int64_t index) {
    return DiffText(Diff{op, std::move(at), std::move(key), std::move(value), index});
  };
  EXPECT_EQ(diff(Diff::Op::kKeySet, {Value("alice")}, Value("bio"), Value("hi"), 0),
            R"(key_set ["alice"] "bio" = "hi")");
  EXPECT_EQ(diff(Diff::Op::kKeyRemoved, {}, Value("alice"), Value(), 0),
            R"(key_removed [] "alice")");
  EXPECT_EQ(diff(Diff::Op::kReplace, {}, Value(), Value(3), 0), "replace [] 3");
  EXPECT_EQ(
      diff(Diff::Op::kSetAdded, {Value("bob"), Value(2)}, Value(), Json(R"({"$set": [1]})"), 0),
      R"(set_added ["bob",2] {"$set":[1]})");
  EXPECT_EQ(diff(Diff::Op::kSetRemoved, {}, Value(), Value("x"), 0), R"(set_removed [] "x")");
  EXPECT_EQ(diff(Diff::Op::kSeqInsert, {Value("posts")}, Value(), Json(R"({"id": 1})"), 0),
            R"(seq_insert ["posts"] 0 {"id":1})");
  EXPECT_EQ(diff(Diff::Op::kSeqRemove, {Value("posts")}, Value(), Value(), 2),
            R"(seq_remove ["posts"] 2)");
  EXPECT_EQ(diff(Diff::Op::kResync, {}, Value(), Json("[1, 2]"), 0), "resync [1,2]");
}

}  // namespace
}  // namespace strata::shell
