// The events of a subscription stream (docs/http.md, "Subscribe"): the SSE text of each
// event kind, their order, and the bound on waiting updates (they collapse into one resync
// of the latest value). The stream itself is tested against a real stratad in
// tests/http/subscribe_test.py.
#include "event_streams.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/json.h"

namespace strata::server::http {
namespace {

namespace proto = strata::protocol;
using Kind = SubscriptionEvent::Kind;

SubscriptionEvent Started(Value value) {
  SubscriptionEvent e;
  e.kind = Kind::kStarted;
  e.subscription = 7;
  e.partition = 3;
  e.value = std::make_shared<const Value>(std::move(value));
  return e;
}

SubscriptionEvent Changed(int64_t count) {
  SubscriptionEvent e;
  e.kind = Kind::kChanged;
  e.subscription = 7;
  e.partition = 3;
  e.diffs = {Diff{Diff::Op::kKeySet, {}, Value("fox"), Value(count), 0}};
  e.value = std::make_shared<const Value>(Value::MapOf({{"fox", count}}));
  return e;
}

// The events of SSE `text` as (name, data) pairs, the data parsed.
std::vector<std::pair<std::string, Value>> Events(std::string_view text) {
  std::vector<std::pair<std::string, Value>> events;
  while (!text.empty()) {
    const size_t end = text.find("\n\n");
    EXPECT_NE(end, std::string_view::npos) << "an event without its blank line: " << text;
    if (end == std::string_view::npos) break;
    const std::string_view event = text.substr(0, end);
    text.remove_prefix(end + 2);
    const size_t newline = event.find('\n');
    EXPECT_EQ(event.substr(0, 7), "event: ") << event;
    EXPECT_EQ(event.substr(newline + 1, 6), "data: ") << event;
    EXPECT_EQ(event.find('\n', newline + 1), std::string_view::npos) << "one data line";
    Result<Value> data = ParseJson(event.substr(newline + 7));
    EXPECT_TRUE(data.ok()) << event;
    events.emplace_back(std::string(event.substr(7, newline - 7)), data.ok() ? *data : Value());
  }
  return events;
}

Value Json(std::string_view text) {
  Result<Value> parsed = ParseJson(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message() << " in " << text;
  return parsed.ok() ? *parsed : Value();
}

TEST(EventQueueTest, SubscribedThenUpdatesThenEndedInOrder) {
  EventQueue queue(16);
  bool ended = true;
  EXPECT_EQ(queue.Take(&ended), "");
  EXPECT_FALSE(ended);
  queue.Push(Started(Value::MapOf({{"fox", 1}})));
  queue.Push(Changed(2));
  auto events = Events(queue.Take(&ended));
  EXPECT_FALSE(ended);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, "subscribed");
  EXPECT_EQ(ToJson(events[0].second),
            ToJson(Json(R"({"subscription": 7, "partition": 3, "value": {"fox": 1}})")));
  EXPECT_EQ(events[1].first, "update");
  EXPECT_EQ(ToJson(events[1].second),
            ToJson(Json(R"({"diffs": [{"op": "key_set", "at": [], "key": "fox", "value": 2}]})")));

  queue.Push(Changed(3));
  SubscriptionEvent end;
  end.kind = Kind::kEnded;
  end.subscription = 7;
  end.ended = Status::NotFound("module wordcount was destroyed");
  queue.Push(end);
  queue.Push(Changed(4));  // after the end: never sent
  events = Events(queue.Take(&ended));
  EXPECT_TRUE(ended);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, "update");
  EXPECT_EQ(events[1].first, "ended");
  EXPECT_EQ(ToJson(events[1].second), ToJson(Json(R"({"error": {"code": "NOT_FOUND",
                                      "message": "module wordcount was destroyed"}})")));
}

TEST(EventQueueTest, UpdatesPastTheBoundCollapseIntoOneResyncOfTheLatestValue) {
  EventQueue queue(4);
  queue.Push(Started(Value::MapOf({{"fox", 0}})));
  for (int64_t i = 1; i <= 10; ++i) queue.Push(Changed(i));
  bool ended = true;
  auto events = Events(queue.Take(&ended));
  EXPECT_FALSE(ended);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, "subscribed");  // kept: the resync needs the first value's place
  EXPECT_EQ(events[1].first, "update");
  EXPECT_EQ(ToJson(events[1].second),
            ToJson(Json(R"({"diffs": [{"op": "resync", "at": [], "value": {"fox": 10}}]})")));

  // After a Take the bound starts over: updates come one by one again.
  queue.Push(Changed(11));
  events = Events(queue.Take(&ended));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].second.Find(Value("diffs"))->as_list()[0].Find(Value("op"))->as_string(),
            "key_set");
}

TEST(EventQueueTest, ShutdownEndsTheStreamOnce) {
  EventQueue queue(4);
  queue.Push(Started(Value()));
  queue.End(proto::ErrorCode::kShuttingDown, "the server is shutting down");
  queue.End(proto::ErrorCode::kInternal, "a second end is ignored");
  bool ended = false;
  auto events = Events(queue.Take(&ended));
  EXPECT_TRUE(ended);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, "subscribed");
  EXPECT_EQ(ToJson(events[0].second),
            ToJson(Json(R"({"subscription": 7, "partition": 3, "value": null})")));
  EXPECT_EQ(events[1].first, "ended");
  EXPECT_EQ(ToJson(events[1].second), ToJson(Json(R"({"error": {"code": "SHUTTING_DOWN",
                                      "message": "the server is shutting down"}})")));
}

}  // namespace
}  // namespace strata::server::http
