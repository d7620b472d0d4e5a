// Live subscriptions end to end (issue 21; docs/subscriptions.md) against a real stratad with
// the example modules: the diffs of every kind the examples' views produce, applied to the
// first value, give what a select returns; a slow reader's updates collapse into a RESYNC
// that still ends at the right value; kill -9, Destroy, SIGTERM and the per-connection cap
// end or refuse subscriptions as documented. Waits for conditions, never for a time.
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "strata/client.h"
#include "strata/diff.h"
#include "strata/path.h"
#include "strata/testing/test_seed.h"
#include "stratad_test.h"
#include "test_client.h"

namespace strata::server_test {
namespace {

namespace proto = protocol;
using proto::ErrorCode;

#define ASSERT_CALL_OK(lhs, expr)                                                     \
  auto lhs##_result = (expr);                                                         \
  ASSERT_TRUE(lhs##_result.ok()) << #expr << ": " << lhs##_result.error().ToString(); \
  auto lhs = std::move(lhs##_result).value()

constexpr auto kPatience = std::chrono::seconds(60);

// "<prefix><i>", built by appending: g++ 12 warns falsely (-Wrestrict) on "u" + to_string(i).
std::string Named(const char* prefix, int64_t i) {
  std::string name = prefix;
  name += std::to_string(i);
  return name;
}

// One subscription as a client sees it: the first value with every update's diffs applied
// in order, the diff ops seen, and how it ended. Updates that arrive before Start (the
// driver may run the handler before Subscribe returns to its caller) wait for it.
class Watch : public std::enable_shared_from_this<Watch> {
 public:
  // Holds the watch: a handler may run after the test's own reference is gone.
  Client::SubscriptionHandler Handler() {
    return [this, self = shared_from_this()](ClientResult<proto::SubscriptionUpdate> update) {
      std::lock_guard lock(mu_);
      if (!update.ok()) {
        error_ = update.error();
      } else if (!started_) {
        early_.push_back(std::move(update).value());
      } else {
        Apply(update.value());
      }
      cv_.notify_all();
    };
  }
  void Start(const proto::Subscribed& subscribed) {
    std::lock_guard lock(mu_);
    value_ = subscribed.value;
    started_ = true;
    for (const proto::SubscriptionUpdate& u : early_) Apply(u);
    early_.clear();
    cv_.notify_all();
  }
  // Waits until `done` holds for the watch (under its lock); false after kPatience.
  bool WaitFor(const std::function<bool(const Watch&)>& done) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kPatience, [&] { return done(*this); });
  }
  Value value() const {
    std::lock_guard lock(mu_);
    return value_;
  }
  std::map<Diff::Op, int64_t> ops() const {
    std::lock_guard lock(mu_);
    return ops_;
  }
  std::optional<ClientError> error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  std::optional<proto::Error> ended() const {
    std::lock_guard lock(mu_);
    return ended_;
  }
  std::string apply_error() const {
    std::lock_guard lock(mu_);
    return apply_error_;
  }

  // Read under the lock, from WaitFor's predicate.
  const Value& value_locked() const { return value_; }
  const std::optional<ClientError>& error_locked() const { return error_; }
  const std::optional<proto::Error>& ended_locked() const { return ended_; }

 private:
  void Apply(const proto::SubscriptionUpdate& update) {
    for (const Diff& diff : update.diffs) {
      ++ops_[diff.op];
      Status applied = ApplyDiff(&value_, diff);
      if (!applied.ok() && apply_error_.empty()) {
        apply_error_ = DiffToString(diff) + ": " + applied.ToString();
      }
    }
    if (update.ended) ended_ = update.ended;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;
  std::vector<proto::SubscriptionUpdate> early_;
  Value value_;
  std::map<Diff::Op, int64_t> ops_;
  std::string apply_error_;
  std::optional<ClientError> error_;
  std::optional<proto::Error> ended_;
};

class SubscriptionServerTest : public StratadTest {
 protected:
  SubscriptionServerTest() : StratadTest("strata_subscription_test_") {}

  std::unique_ptr<Client> Connect() {
    ClientOptions options;
    options.port = server_->port();
    options.request_timeout = std::chrono::minutes(2);
    auto client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.error().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }
};

// What one subscription of the diff test watches, and the select that must equal it.
struct View {
  std::string name;
  std::string module;
  std::string pstate;
  Path path;
  ClientSubscribeOptions options;
  std::shared_ptr<Watch> watch = std::make_shared<Watch>();
};

TEST_F(SubscriptionServerTest, EveryDiffKindOfTheExamplesViewsAppliesToTheSelectedValue) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::unique_ptr<Client> subscriber = Connect();
  std::unique_ptr<Client> writer = Connect();
  ASSERT_TRUE(subscriber && writer);
  for (const char* module : {WORDCOUNT_MODULE, SOCIAL_MODULE, TOPWORDS_MODULE, BANK_MODULE}) {
    ASSERT_CALL_OK(info, writer->Deploy(module, 4));
  }

  std::vector<View> subs;
  auto add = [&](std::string name, std::string module, std::string pstate, Path path,
                 std::optional<Value> partition_key = std::nullopt) {
    View s{std::move(name), std::move(module), std::move(pstate), std::move(path), {}};
    s.options.partition_key = std::move(partition_key);
    s.options.one = true;
    subs.push_back(std::move(s));
  };
  // Whole partitions of a map (key_set) and of a set (set_added / set_removed: a word's
  // [-count, word] entry is replaced by its next one).
  add("word_counts partition", "wordcount", "$$word_counts", Path(), Value("w0"));
  add("ranking partition", "wordcount", "$$ranking", Path(), Value("w1"));
  // One word's count, one balance: a number (replace).
  add("one word", "wordcount", "$$word_counts", Path().Key("w2"));
  add("one balance", "bank", "$$balances", Path().Key("a0"));
  // A subindexed set that gains and loses followers; a timeline that the cap of 800 trims
  // (key_set / key_removed).
  add("followers", "social", "$$followers", Path().Key("u0"));
  add("timeline", "social", "$$timelines", Path().Key("u0"));
  // A list, the global top 100 (seq_insert / seq_remove, in [word, count] pairs too).
  add("top words", "topwords", "$$top_words", Path().Key("all"));
  for (View& s : subs) {
    ASSERT_CALL_OK(subscribed, subscriber->Subscribe(s.module, s.pstate, s.path, s.watch->Handler(),
                                                     s.options));
    s.watch->Start(subscribed);
  }

  // 10,000 random records in batches of 100, acknowledged once processed.
  const uint64_t seed = strata::testing::TestSeed(2112);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  int64_t appended = 0;
  auto append = [&](const std::string& module, const std::string& depot, int count,
                    const std::function<Value(int)>& record) {
    for (int from = 0; from < count; from += 100) {
      std::vector<Value> batch;
      for (int i = from; i < std::min(count, from + 100); ++i) batch.push_back(record(i));
      ASSERT_CALL_OK(results, writer->AppendBatch(module, depot, std::move(batch)));
      for (const proto::AppendResult& r : results) {
        ASSERT_FALSE(r.failure) << module << " " << depot << ": " << r.failure->message;
      }
      appended += static_cast<int64_t>(results.size());
    }
  };
  auto words = [&](char prefix, int vocabulary) {
    std::string sentence;
    for (int n = 1 + pick(3); n > 0; --n) {
      sentence += prefix;
      sentence += std::to_string(pick(vocabulary));
      sentence += ' ';
    }
    return Value(sentence);
  };
  // u0 follows u1..u5 (their posts reach u0's timeline); u1..u50 follow and unfollow u0.
  ASSERT_NO_FATAL_FAILURE(append("social", "*follows", 1000, [&](int i) {
    if (i < 5) {
      return Value::MapOf({{"from", "u0"}, {"to", Named("u", i + 1)}});
    }
    return Value::MapOf({{"from", Named("u", 1 + pick(50))},
                         {"op", pick(3) == 0 ? "unfollow" : "follow"},
                         {"to", "u0"}});
  }));
  ASSERT_NO_FATAL_FAILURE(
      append("wordcount", "*sentences", 3000, [&](int) { return words('w', 40); }));
  ASSERT_NO_FATAL_FAILURE(
      append("topwords", "*sentences", 1800, [&](int) { return words('t', 300); }));
  ASSERT_NO_FATAL_FAILURE(append("bank", "*deposits", 3000, [&](int) {
    return Value::MapOf({{"account", Named("a", pick(10))}, {"amount", 1 + pick(100)}});
  }));
  // 1,200 posts of u1..u5: more than the 800 a timeline keeps.
  ASSERT_NO_FATAL_FAILURE(append("social", "*posts", 1200, [&](int i) {
    return Value::MapOf({{"author", Named("u", 1 + pick(5))}, {"id", i + 1}, {"text", "post"}});
  }));
  ASSERT_EQ(appended, 10'000);

  std::map<Diff::Op, int64_t> seen;
  for (View& s : subs) {
    ASSERT_CALL_OK(selected,
                   writer->SelectOne(s.module, s.pstate, s.path, s.options.partition_key));
    // Waits until the diffs applied give the selected value (false after kPatience).
    s.watch->WaitFor([&](const Watch& w) {
      return w.value_locked() == selected || w.error_locked() || w.ended_locked();
    });
    EXPECT_EQ(s.watch->apply_error(), "") << s.name;
    EXPECT_FALSE(s.watch->error()) << s.name << ": " << s.watch->error()->ToString();
    EXPECT_FALSE(s.watch->ended()) << s.name << ": " << s.watch->ended()->message;
    EXPECT_EQ(s.watch->value(), selected)
        << s.name << ": the diffs applied give " << s.watch->value().ToString() << ", the select "
        << selected.ToString();
    for (const auto& [op, count] : s.watch->ops()) seen[op] += count;
  }
  for (const auto& [op, count] : seen) std::cout << DiffOpName(op) << ": " << count << "\n";
  for (Diff::Op op :
       {Diff::Op::kReplace, Diff::Op::kKeySet, Diff::Op::kKeyRemoved, Diff::Op::kSetAdded,
        Diff::Op::kSetRemoved, Diff::Op::kSeqInsert, Diff::Op::kSeqRemove}) {
    EXPECT_GT(seen[op], 0) << "no " << DiffOpName(op) << " diff was seen";
  }
  // RESYNC is not expected of a reader that keeps up, but a commit that changes more than
  // the engine's 256 diffs' worth of one value (the top 100 reordered by a large microbatch)
  // is pushed as one: it is applied above like any other diff, and not asserted on.
}

// The updates of one subscription read from a raw connection.
struct RawSubscription {
  std::optional<Value> partition_key;
  uint64_t id = 0;
  Value value;
  Value expected;
};

TEST_F(SubscriptionServerTest, ASlowReaderGetsAResyncAndTheRightFinalValue) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--subscription-buffer", "4KB"}));
  std::unique_ptr<Client> writer = Connect();
  ASSERT_TRUE(writer);
  ASSERT_CALL_OK(info, writer->Deploy(WORDCOUNT_MODULE, 4));

  // A small receive window, so that the server's socket fills after a few updates.
  TestClient reader;
  ASSERT_TRUE(reader.Connect(server_->port(), std::chrono::seconds(60), 4096).ok());
  ASSERT_TRUE(reader.Handshake().ok());
  // 25 subscriptions to whole partitions' maps of words (5 each to the partitions of w0..w4).
  std::vector<RawSubscription> subs;
  for (int i = 0; i < 25; ++i) {
    RawSubscription s;
    s.partition_key = Value(Named("w", i % 5));
    proto::SubscribeRequest request{"wordcount", "$$word_counts", Path().ToValue(), s.partition_key,
                                    true};
    Result<proto::Response> r = reader.Call(request);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_FALSE(r->error) << r->error->message;
    const auto& subscribed = std::get<proto::Subscribed>(r->body);
    s.id = subscribed.subscription;
    s.value = subscribed.value;
    subs.push_back(std::move(s));
  }
  ASSERT_EQ(subs.size(), 25u);
  const int64_t rss_before = server_->RssKib();

  // 40,000 sentences of 5 words while the reader reads nothing.
  std::mt19937_64 rng(strata::testing::TestSeed(2113));
  for (int batch = 0; batch < 400; ++batch) {
    std::vector<Value> records;
    for (int i = 0; i < 100; ++i) {
      std::string sentence;
      for (int n = 0; n < 5; ++n) {
        sentence += Named("w", static_cast<int64_t>(rng() % 1000));
        sentence += ' ';
      }
      records.push_back(Value(sentence));
    }
    ASSERT_CALL_OK(results, writer->AppendBatch("wordcount", "*sentences", std::move(records)));
  }
  const int64_t rss_after = server_->RssKib();
  for (RawSubscription& s : subs) {
    ASSERT_CALL_OK(selected,
                   writer->SelectOne("wordcount", "$$word_counts", Path(), s.partition_key));
    s.expected = std::move(selected);
  }

  // Now read everything: updates until every value is the selected one.
  std::map<uint64_t, RawSubscription*> by_id;
  for (RawSubscription& s : subs) by_id[s.id] = &s;
  int64_t resyncs = 0;
  int64_t updates = 0;
  auto all_equal = [&] {
    for (const RawSubscription& s : subs) {
      if (s.value != s.expected) return false;
    }
    return true;
  };
  while (!all_equal()) {
    Result<proto::Response> r = reader.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString() << " after " << updates << " updates";
    const auto* update = std::get_if<proto::SubscriptionUpdate>(&r->body);
    ASSERT_NE(update, nullptr) << "a response of id " << r->id;
    ASSERT_FALSE(update->ended) << update->ended->message;
    ++updates;
    RawSubscription* s = by_id.at(update->subscription);
    for (const Diff& diff : update->diffs) {
      if (diff.op == Diff::Op::kResync) ++resyncs;
      ASSERT_TRUE(ApplyDiff(&s->value, diff).ok()) << DiffToString(diff);
    }
  }
  std::cout << updates << " updates, " << resyncs << " RESYNC; stratad RSS " << rss_before / 1024
            << " MiB after subscribing, " << rss_after / 1024 << " MiB after the appends\n";
  EXPECT_GT(resyncs, 0);
  // Loose: the updates the reader did not take are bounded by the buffer, not kept whole
  // (a few MiB of frames here; WiredTiger's cache grows with the data as well).
  EXPECT_LT(rss_after - rss_before, 256 * 1024) << rss_before << " KiB -> " << rss_after << " KiB";
}

TEST_F(SubscriptionServerTest, KillNineEndsSubscriptionsAndARestartServesTheCurrentValue) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  std::unique_ptr<Client> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_CALL_OK(info, client->Deploy(WORDCOUNT_MODULE, 4));
  ASSERT_CALL_OK(acked, client->Append("wordcount", "*sentences", Value("w1 w1 w2")));
  auto watch = std::make_shared<Watch>();
  ASSERT_CALL_OK(subscribed,
                 client->Subscribe("wordcount", "$$word_counts", Path().Key("w1"), watch->Handler(),
                                   {.partition_key = std::nullopt, .one = true}));
  watch->Start(subscribed);
  EXPECT_EQ(subscribed.value, Value(2));

  const uint16_t port = server_->port();
  server_->Stop(SIGKILL);
  ASSERT_TRUE(watch->WaitFor(
      [](const Watch& w) { return w.error_locked().has_value() || w.ended_locked().has_value(); }));
  ASSERT_TRUE(watch->error().has_value()) << "an ended update instead of a connection error";
  EXPECT_EQ(watch->error()->kind, ErrorKind::kConnection) << watch->error()->ToString();

  ASSERT_NO_FATAL_FAILURE(StartServer({}, port));
  auto again = std::make_shared<Watch>();
  // The next call reconnects.
  ASSERT_CALL_OK(resubscribed,
                 client->Subscribe("wordcount", "$$word_counts", Path().Key("w1"), again->Handler(),
                                   {.partition_key = std::nullopt, .one = true}));
  ASSERT_CALL_OK(selected, client->SelectOne("wordcount", "$$word_counts", Path().Key("w1")));
  EXPECT_EQ(resubscribed.value, selected);
  EXPECT_GE(selected.as_int(), 2);  // replays after kill -9 may count a sentence again
}

// A first value that no frame could carry is refused, and the subscription is not left
// behind (it does not count against the connection's cap).
TEST_F(SubscriptionServerTest, AFirstValueOverTheMaxFrameSizeIsRefused) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--max-frame-size", "4KB", "--max-subscriptions-per-connection", "1"}));
  std::unique_ptr<Client> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_CALL_OK(info, client->Deploy(WORDCOUNT_MODULE, 1));
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(client->Append("wordcount", "*sentences", Value(Named("longwordpadding", i))).ok());
  }
  auto watch = std::make_shared<Watch>();
  auto whole = client->Subscribe("wordcount", "$$word_counts", Path(), watch->Handler(),
                                 {.partition_key = Value("any"), .one = false});
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.error().code, ErrorCode::kInvalidArgument) << whole.error().ToString();
  EXPECT_NE(whole.error().message.find("max frame size"), std::string::npos)
      << whole.error().ToString();
  ASSERT_CALL_OK(one,
                 client->Subscribe("wordcount", "$$word_counts", Path().Key("w1"), watch->Handler(),
                                   {.partition_key = std::nullopt, .one = true}));
  EXPECT_EQ(one.value, Value());
}

TEST_F(SubscriptionServerTest, DestroyUnknownIdsTheCapAndSigtermAreAnswered) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--max-subscriptions-per-connection", "3"}));
  std::unique_ptr<Client> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_CALL_OK(wordcount, client->Deploy(WORDCOUNT_MODULE, 4));
  ASSERT_CALL_OK(bank, client->Deploy(BANK_MODULE, 4));

  // Destroy ends the module's subscriptions with NOT_FOUND.
  auto destroyed = std::make_shared<Watch>();
  ASSERT_CALL_OK(first,
                 client->Subscribe("bank", "$$balances", Path().Key("a"), destroyed->Handler(),
                                   {.partition_key = std::nullopt, .one = true}));
  destroyed->Start(first);
  ASSERT_CALL_OK(gone, client->Destroy("bank"));
  ASSERT_TRUE(destroyed->WaitFor(
      [](const Watch& w) { return w.ended_locked().has_value() || w.error_locked().has_value(); }));
  ASSERT_TRUE(destroyed->ended().has_value()) << destroyed->error()->ToString();
  EXPECT_EQ(destroyed->ended()->code, ErrorCode::kNotFound) << destroyed->ended()->message;

  // Unsubscribe of an id this connection does not hold (the one that just ended included).
  for (uint64_t id : {first.subscription, uint64_t{987654321}}) {
    auto unsubscribed = client->Unsubscribe(id);
    ASSERT_FALSE(unsubscribed.ok());
    EXPECT_EQ(unsubscribed.error().code, ErrorCode::kNotFound) << unsubscribed.error().ToString();
  }

  // Three subscriptions per connection; the fourth is refused, another connection is not.
  std::vector<std::shared_ptr<Watch>> watches;
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    watches.push_back(std::make_shared<Watch>());
    ASSERT_CALL_OK(s, client->Subscribe("wordcount", "$$word_counts", Path().Key(Named("w", i)),
                                        watches.back()->Handler(),
                                        {.partition_key = std::nullopt, .one = true}));
    watches.back()->Start(s);
    ids.push_back(s.subscription);
  }
  auto refused = std::make_shared<Watch>();
  auto fourth = client->Subscribe("wordcount", "$$word_counts", Path().Key("w3"),
                                  refused->Handler(), {.partition_key = std::nullopt, .one = true});
  ASSERT_FALSE(fourth.ok());
  EXPECT_EQ(fourth.error().code, ErrorCode::kOverloaded) << fourth.error().ToString();
  std::unique_ptr<Client> other = Connect();
  ASSERT_TRUE(other);
  auto elsewhere = std::make_shared<Watch>();
  ASSERT_CALL_OK(
      s, other->Subscribe("wordcount", "$$word_counts", Path().Key("w3"), elsewhere->Handler(),
                          {.partition_key = std::nullopt, .one = true}));
  elsewhere->Start(s);
  // Unsubscribing frees a place.
  ASSERT_CALL_OK(freed, client->Unsubscribe(ids[0]));
  EXPECT_EQ(freed.subscription, ids[0]);
  auto fourth_again = std::make_shared<Watch>();
  ASSERT_CALL_OK(taken, client->Subscribe("wordcount", "$$word_counts", Path().Key("w3"),
                                          fourth_again->Handler(),
                                          {.partition_key = std::nullopt, .one = true}));
  fourth_again->Start(taken);

  // SIGTERM: every subscription gets its ended update (SHUTTING_DOWN) before the close,
  // not a connection error.
  ASSERT_NO_FATAL_FAILURE(StopServer());
  for (const std::shared_ptr<Watch>& w : {watches[1], watches[2], fourth_again, elsewhere}) {
    ASSERT_TRUE(w->WaitFor([](const Watch& x) {
      return x.ended_locked().has_value() || x.error_locked().has_value();
    }));
    ASSERT_TRUE(w->ended().has_value())
        << "ended by a connection error, not by an update: " << w->error()->ToString();
    EXPECT_EQ(w->ended()->code, ErrorCode::kShuttingDown) << w->ended()->message;
  }
}

}  // namespace
}  // namespace strata::server_test
