#include "workloads.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <iostream>
#include <mutex>

namespace strata::bench {
namespace {

using protocol::Appended;
using protocol::AppendRequest;
using protocol::Selected;
using protocol::SelectRequest;

constexpr int kLoadBatch = 1000;  // records per append request in load phases
constexpr int kLoadPipeline = 8;
constexpr int64_t kCelebrityFollowers = 1000;
constexpr int64_t kInitialDeposit = 1000;

std::string Numbered(char prefix, int64_t i) { return prefix + std::to_string(i); }

// "" when `body` is an Appended with `expected` results and no failure.
std::string CheckAppended(const Client::Body& body, size_t expected) {
  const auto* appended = std::get_if<Appended>(&body);
  if (appended == nullptr) return "append answered with an unexpected response type";
  if (appended->results.size() != expected) {
    return "append of " + std::to_string(expected) + " records answered with " +
           std::to_string(appended->results.size()) + " results";
  }
  for (const protocol::AppendResult& r : appended->results) {
    if (r.failure) return "record failed: " + r.failure->message;
  }
  return "";
}

// Appends records 0..total-1 (made by `record`) in batches over every connection with ack
// processed; not measured.
Status Load(const std::vector<Client*>& clients, const std::string& label,
            const std::string& module, const std::string& depot, int64_t total,
            std::function<Value(int64_t)> record) {
  auto cursor = std::make_shared<std::atomic<int64_t>>(0);
  OpSource source;
  source.next = [=](std::mt19937_64&) -> std::optional<Op> {
    const int64_t from = cursor->fetch_add(kLoadBatch);
    if (from >= total) return std::nullopt;
    AppendRequest request{module, depot, {}, protocol::AckLevel::kProcessed};
    for (int64_t i = from; i < std::min(total, from + kLoadBatch); ++i) {
      request.records.push_back(record(i));
    }
    Op op;
    op.units = static_cast<int64_t>(request.records.size());
    op.body = std::move(request);
    return op;
  };
  source.check = [](const Op& op, const Client::Body& body) {
    return CheckAppended(body, static_cast<size_t>(op.units));
  };
  PhaseOptions options;
  options.pipeline = kLoadPipeline;
  options.progress = true;
  options.label = label;
  const auto start = std::chrono::steady_clock::now();
  const PhaseResult result = RunPhase(clients, source, options, 1);
  if (result.errors > 0) {
    return Status::Aborted(label + ": " + std::to_string(result.errors) +
                           " append requests failed, the first: " + result.first_error);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "  " << label << ": " << result.units << " records in " << seconds << " s\n";
  return Status::Ok();
}

// Reads `key(key_of(i))` of `pstate` for i in 0..total-1 into (*out)[i] (an int; a missing
// key reads as 0); not measured.
Status ReadInts(const std::vector<Client*>& clients, const std::string& label,
                const std::string& module, const std::string& pstate, int64_t total,
                std::function<Value(int64_t)> key_of, std::vector<int64_t>* out) {
  out->assign(static_cast<size_t>(total), 0);
  auto cursor = std::make_shared<std::atomic<int64_t>>(0);
  OpSource source;
  source.next = [=](std::mt19937_64&) -> std::optional<Op> {
    const int64_t i = cursor->fetch_add(1);
    if (i >= total) return std::nullopt;
    Op op;
    op.tag = i;
    op.body = SelectRequest{module, pstate, Path().Key(key_of(i)).ToValue(), std::nullopt, true};
    return op;
  };
  source.check = [out](const Op& op, const Client::Body& body) -> std::string {
    const auto* selected = std::get_if<Selected>(&body);
    if (selected == nullptr || selected->values.size() > 1) return "select: unexpected response";
    if (selected->values.empty() || selected->values[0].is_nil()) return "";
    if (!selected->values[0].is_int()) return "select: not an int";
    (*out)[static_cast<size_t>(op.tag)] = selected->values[0].as_int();
    return "";
  };
  PhaseOptions options;
  options.pipeline = 32;
  options.label = label;
  const PhaseResult result = RunPhase(clients, source, options, 2);
  if (result.errors > 0) {
    return Status::Aborted(label + ": " + std::to_string(result.errors) +
                           " reads failed, the first: " + result.first_error);
  }
  return Status::Ok();
}

// Appends W3's follow graph (FollowerCounts: user r has followers[r - 1] followers) to
// social's *follows; not measured.
Status LoadFollows(const std::vector<Client*>& clients, const std::vector<int64_t>& followers) {
  // Edge e of user r's followers: prefix sums map the flat index to (r, j).
  std::vector<int64_t> starts;
  int64_t total = 0;
  for (int64_t n : followers) starts.push_back(total), total += n;
  const int64_t users = static_cast<int64_t>(followers.size());
  return Load(clients, "load follows", "social", "*follows", total, [starts, users](int64_t e) {
    const size_t r0 =
        static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), e) - starts.begin() - 1);
    const int64_t j = e - starts[r0] + 1;
    const int64_t follower = (static_cast<int64_t>(r0) + j) % users + 1;
    return Value::MapOf(
        {{"from", Numbered('u', follower)}, {"to", Numbered('u', static_cast<int64_t>(r0) + 1)}});
  });
}

// ---- W1 ----------------------------------------------------------------------------------
class WordCountAppends : public Workload {
 public:
  explicit WordCountAppends(const WorkloadConfig& config) : config_(config) {
    source_.next = [this](std::mt19937_64& rng) -> std::optional<Op> {
      std::uniform_int_distribution<int64_t> key(1, config_.keyspace);
      AppendRequest request{config_.w1_module, "*sentences", {}, config_.ack};
      request.records.reserve(static_cast<size_t>(config_.batch));
      for (int i = 0; i < config_.batch; ++i) request.records.emplace_back(Numbered('w', key(rng)));
      Op op;
      op.units = config_.batch;
      op.body = std::move(request);
      return op;
    };
    source_.check = [this](const Op&, const Client::Body& body) {
      return CheckAppended(body, static_cast<size_t>(config_.batch));
    };
  }
  std::string Description() const override {
    return config_.w1_module + ": append one-word sentences \"w<k>\", k uniform in 1.." +
           std::to_string(config_.keyspace);
  }
  std::string UnitName() const override { return "records"; }
  Status Prepare(const std::vector<Client*>&) override { return Status::Ok(); }
  const OpSource& Source() const override { return source_; }
  Status Verify(const std::vector<Client*>&, nlohmann::json*) override { return Status::Ok(); }

 private:
  WorkloadConfig config_;
  OpSource source_;
};

// ---- W2 ----------------------------------------------------------------------------------
class WordCountReads : public Workload {
 public:
  explicit WordCountReads(const WorkloadConfig& config) : config_(config) {
    source_.next = [this](std::mt19937_64& rng) -> std::optional<Op> {
      std::uniform_int_distribution<int64_t> key(1, config_.keyspace);
      Op op;
      op.body = SelectRequest{"wordcount", "$$word_counts",
                              Path().Key(Numbered('w', key(rng))).ToValue(), std::nullopt, true};
      return op;
    };
    source_.check = [](const Op&, const Client::Body& body) -> std::string {
      const auto* selected = std::get_if<Selected>(&body);
      if (selected == nullptr) return "select answered with an unexpected response type";
      // Every key was loaded by Prepare, so a read must find a count >= 1.
      if (selected->values.size() != 1 || !selected->values[0].is_int() ||
          selected->values[0].as_int() < 1) {
        return "select of a loaded word did not return a count >= 1";
      }
      return "";
    };
  }
  std::string Description() const override {
    return "wordcount: select $$word_counts key \"w<k>\", k uniform in 1.." +
           std::to_string(config_.keyspace) + " (all keys loaded first)";
  }
  std::string UnitName() const override { return "reads"; }
  Status Prepare(const std::vector<Client*>& clients) override {
    return Load(clients, "load words", "wordcount", "*sentences", config_.keyspace,
                [](int64_t i) { return Value(Numbered('w', i + 1)); });
  }
  const OpSource& Source() const override { return source_; }
  Status Verify(const std::vector<Client*>&, nlohmann::json*) override { return Status::Ok(); }

 private:
  WorkloadConfig config_;
  OpSource source_;
};

// ---- W3 ----------------------------------------------------------------------------------
class TimelineFanout : public Workload {
 public:
  explicit TimelineFanout(const WorkloadConfig& config)
      : config_(config), followers_(FollowerCounts(config.users, config.avg_followers)) {
    // Post ids increase per author across runs against one server: microseconds since
    // the epoch at start, then a counter.
    next_post_id_ = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    source_.next = [this](std::mt19937_64& rng) -> std::optional<Op> {
      std::uniform_int_distribution<int64_t> author(1, config_.users);
      AppendRequest request{"social", "*posts", {}, config_.ack};
      Op op;
      op.units = config_.batch;
      for (int i = 0; i < config_.batch; ++i) {
        const int64_t a = author(rng);
        const int64_t n = followers_[static_cast<size_t>(a - 1)];
        op.extra_units += n;
        if (n >= kCelebrityFollowers) op.latency_class = 1;
        request.records.push_back(Value::MapOf(
            {{"author", Numbered('u', a)}, {"id", next_post_id_.fetch_add(1)}, {"text", "hello"}}));
      }
      op.body = std::move(request);
      return op;
    };
    source_.check = [this](const Op&, const Client::Body& body) {
      return CheckAppended(body, static_cast<size_t>(config_.batch));
    };
  }
  std::string Description() const override {
    int64_t total = 0, max = 0;
    for (int64_t n : followers_) total += n, max = std::max(max, n);
    return "social: posts by uniform authors among " + std::to_string(config_.users) + " users, " +
           std::to_string(total) + " follows (power law, mean " +
           std::to_string(total / config_.users) + ", max " + std::to_string(max) +
           "); ack processed = delivered to every follower's timeline";
  }
  std::string UnitName() const override { return "posts"; }
  std::string ExtraUnitName() const override { return "deliveries"; }
  std::string SecondLatencyClass() const override {
    return "posts by authors with >= " + std::to_string(kCelebrityFollowers) + " followers";
  }
  Status Prepare(const std::vector<Client*>& clients) override {
    return LoadFollows(clients, followers_);
  }
  const OpSource& Source() const override { return source_; }
  Status Verify(const std::vector<Client*>& clients, nlohmann::json* check) override {
    // The most followed user's follower set has exactly the planned size (size is O(1)).
    auto size = clients[0]->SelectOne("social", "$$followers", Path().Key("u1").Size());
    if (!size.ok())
      return Status::Aborted("select $$followers u1 size: " + size.error().ToString());
    (*check)["followers_of_u1"] = size->is_int() ? size->as_int() : -1;
    (*check)["planned_followers_of_u1"] = followers_[0];
    if (!size->is_int() || size->as_int() != followers_[0]) {
      return Status::Corruption("$$followers of u1 holds " + ToString(*size) + " users, expected " +
                                std::to_string(followers_[0]));
    }
    return Status::Ok();
  }

 private:
  static std::string ToString(const Value& v) {
    return v.is_int() ? std::to_string(v.as_int()) : "a non-int";
  }
  WorkloadConfig config_;
  std::vector<int64_t> followers_;
  std::atomic<int64_t> next_post_id_{0};
  OpSource source_;
};

// ---- W4 ----------------------------------------------------------------------------------
// The microbatch bank (examples/mbbank): a transfer's outcome is not in its ack (microbatch
// topologies set no ack return), so the check reads, for every acknowledged transfer, whether
// it is in $$applied, else whether it is in $$rejected (it must be in one), and compares each
// balance with its value before plus the applied credits minus the applied debits.
class BankTransfers : public Workload {
 public:
  explicit BankTransfers(const WorkloadConfig& config) : config_(config) {
    run_id_ = std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
    source_.next = [this](std::mt19937_64& rng) -> std::optional<Op> {
      std::uniform_int_distribution<int64_t> account(1, config_.keyspace);
      std::uniform_int_distribution<int64_t> amount(1, 100);
      AppendRequest request{kModule, "*transfers", {}, config_.ack};
      for (int i = 0; i < config_.batch; ++i) {
        const int64_t from = account(rng);
        int64_t to = account(rng);
        while (to == from) to = account(rng);
        request.records.push_back(
            Value::MapOf({{"id", "t" + run_id_ + "-" + std::to_string(next_transfer_.fetch_add(1))},
                          {"from", Numbered('a', from)},
                          {"to", Numbered('a', to)},
                          {"amount", amount(rng)}}));
      }
      Op op;
      op.units = config_.batch;
      op.body = std::move(request);
      return op;
    };
    source_.check = [this](const Op& op, const Client::Body& body) -> std::string {
      std::string error = CheckAppended(body, static_cast<size_t>(config_.batch));
      if (!error.empty() || config_.ack != protocol::AckLevel::kProcessed) return error;
      std::lock_guard lock(acked_mu_);
      for (const Value& record : std::get<AppendRequest>(op.body).records) {
        acked_.push_back(
            {AccountIndex(*record.Find(Value("from"))), AccountIndex(*record.Find(Value("to"))),
             record.Find(Value("amount"))->as_int(), record.Find(Value("id"))->as_string()});
      }
      return "";
    };
  }
  std::string Description() const override {
    return "mbbank (microbatch): transfers of 1..100 between uniform distinct accounts among " +
           std::to_string(config_.keyspace) + " (each deposited " +
           std::to_string(kInitialDeposit) + " first)";
  }
  std::string UnitName() const override { return "transfers"; }
  Status Prepare(const std::vector<Client*>& clients) override {
    Status s =
        Load(clients, "load deposits", kModule, "*deposits", config_.keyspace, [](int64_t i) {
          return Value::MapOf({{"account", Numbered('a', i + 1)}, {"amount", kInitialDeposit}});
        });
    if (!s.ok()) return s;
    return ReadInts(
        clients, "read balances before", kModule, "$$balances", config_.keyspace,
        [](int64_t i) { return Value(Numbered('a', i + 1)); }, &before_);
  }
  const OpSource& Source() const override { return source_; }
  Status Verify(const std::vector<Client*>& clients, nlohmann::json* check) override {
    std::vector<int64_t> after;
    Status s = ReadInts(
        clients, "read balances after", kModule, "$$balances", config_.keyspace,
        [](int64_t i) { return Value(Numbered('a', i + 1)); }, &after);
    if (!s.ok()) return s;
    int64_t sum_before = 0, sum_after = 0;
    for (size_t i = 0; i < after.size(); ++i) {
      sum_before += before_[i];
      sum_after += after[i];
    }
    (*check)["sum_before"] = sum_before;
    (*check)["sum_after"] = sum_after;
    if (sum_before != sum_after) {
      return Status::Corruption("the sum of balances changed from " + std::to_string(sum_before) +
                                " to " + std::to_string(sum_after));
    }
    if (config_.ack != protocol::AckLevel::kProcessed) {
      (*check)["per_account"] = "skipped: ack is not processed";
      return Status::Ok();
    }
    // Each acknowledged transfer's outcome: applied (1), rejected (2), in neither (0).
    std::vector<int> outcome(acked_.size(), 0);
    s = Outcomes(clients, "read applied transfers", "$$applied", 1, &outcome);
    if (s.ok()) s = Outcomes(clients, "read rejected transfers", "$$rejected", 2, &outcome);
    if (!s.ok()) return s;
    std::vector<int64_t> delta(before_.size(), 0);
    int64_t applied = 0, rejected = 0, undecided = 0;
    for (size_t i = 0; i < acked_.size(); ++i) {
      if (outcome[i] == 1) {
        ++applied;
        delta[acked_[i].from] -= acked_[i].amount;
        delta[acked_[i].to] += acked_[i].amount;
      } else if (outcome[i] == 2) {
        ++rejected;
      } else {
        ++undecided;
      }
    }
    int64_t mismatched = 0, first_mismatch = -1;
    for (size_t i = 0; i < after.size(); ++i) {
      if (after[i] != before_[i] + delta[i] && mismatched++ == 0) {
        first_mismatch = static_cast<int64_t>(i) + 1;
      }
    }
    (*check)["acknowledged"] = static_cast<int64_t>(acked_.size());
    (*check)["applied"] = applied;
    (*check)["rejected"] = rejected;
    (*check)["accounts_differing_from_acks"] = mismatched;
    if (undecided > 0) {
      return Status::Corruption(std::to_string(undecided) +
                                " acknowledged transfers are in neither $$applied nor $$rejected");
    }
    // Every acknowledged transfer applied exactly once: each balance is its value before
    // plus the applied credits minus the applied debits. Only valid when every transfer
    // sent was answered (an unanswered one may still have been applied).
    if (mismatched > 0) {
      return Status::Corruption(std::to_string(mismatched) +
                                " balances differ from the acknowledged transfers, the first: a" +
                                std::to_string(first_mismatch));
    }
    return Status::Ok();
  }

 private:
  static constexpr char kModule[] = "mbbank";
  struct Transfer {
    size_t from;
    size_t to;
    int64_t amount;
    std::string id;
  };
  size_t AccountIndex(const Value& name) const {
    return static_cast<size_t>(std::stoll(name.as_string().substr(1)) - 1);
  }
  // Sets (*outcome)[i] = `mark` for each acknowledged transfer still 0 whose key(from, id)
  // is in `pstate`.
  Status Outcomes(const std::vector<Client*>& clients, const std::string& label,
                  const std::string& pstate, int mark, std::vector<int>* outcome) {
    auto cursor = std::make_shared<std::atomic<int64_t>>(0);
    const int64_t total = static_cast<int64_t>(acked_.size());
    OpSource source;
    source.next = [=, this](std::mt19937_64&) -> std::optional<Op> {
      int64_t i = cursor->fetch_add(1);
      while (i < total && (*outcome)[static_cast<size_t>(i)] != 0) i = cursor->fetch_add(1);
      if (i >= total) return std::nullopt;
      const Transfer& t = acked_[static_cast<size_t>(i)];
      Op op;
      op.tag = i;
      op.body = SelectRequest{kModule, pstate,
                              Path()
                                  .Key(Value(Numbered('a', static_cast<int64_t>(t.from) + 1)))
                                  .Key(Value(t.id))
                                  .ToValue(),
                              std::nullopt, true};
      return op;
    };
    source.check = [outcome, mark](const Op& op, const Client::Body& body) -> std::string {
      const auto* selected = std::get_if<Selected>(&body);
      if (selected == nullptr || selected->values.size() > 1) return "select: unexpected response";
      if (!selected->values.empty() && !selected->values[0].is_nil()) {
        (*outcome)[static_cast<size_t>(op.tag)] = mark;
      }
      return "";
    };
    PhaseOptions options;
    options.pipeline = 32;
    options.label = label;
    const PhaseResult result = RunPhase(clients, source, options, 3);
    if (result.errors > 0) {
      return Status::Aborted(label + ": " + std::to_string(result.errors) +
                             " reads failed, the first: " + result.first_error);
    }
    return Status::Ok();
  }
  WorkloadConfig config_;
  std::string run_id_;
  std::atomic<int64_t> next_transfer_{0};
  std::mutex acked_mu_;
  std::vector<Transfer> acked_;  // GUARDED_BY(acked_mu_)
  std::vector<int64_t> before_;
  OpSource source_;
};

// ---- W5 ----------------------------------------------------------------------------------
// Queries (docs/modules.md, "Queries"), one per variant, each answer checked against what
// Prepare loaded: W5-top invokes wordcount's top-words(10) over `keyspace` words, W5-total
// bank's total-money() over `keyspace` accounts, W5-timeline social's timeline(user, 10)
// (a single-partition query joined with the posts' partitions).
class QueryWorkload : public Workload {
 public:
  explicit QueryWorkload(const WorkloadConfig& config) : config_(config) {
    source_.next = [this](std::mt19937_64& rng) -> std::optional<Op> {
      Op op;
      op.body = Request(rng);
      return op;
    };
    source_.check = [this](const Op&, const Client::Body& body) -> std::string {
      const auto* invoked = std::get_if<protocol::Invoked>(&body);
      if (invoked == nullptr) return "invoke answered with an unexpected response type";
      return CheckAnswer(invoked->result);
    };
  }
  std::string UnitName() const override { return "queries"; }
  const OpSource& Source() const override { return source_; }
  Status Verify(const std::vector<Client*>& clients, nlohmann::json* check) override {
    std::mt19937_64 rng(1);
    protocol::InvokeRequest request = Request(rng);
    auto answer = clients[0]->Invoke(request.module, request.query, request.args);
    if (!answer.ok())
      return Status::Aborted("invoke " + request.query + ": " + answer.error().ToString());
    (*check)["answer"] = answer->ToString().substr(0, 200);
    const std::string error = CheckAnswer(*answer);
    if (!error.empty()) return Status::Corruption(error);
    return Status::Ok();
  }

 protected:
  virtual protocol::InvokeRequest Request(std::mt19937_64& rng) const = 0;
  // "" when `answer` is right.
  virtual std::string CheckAnswer(const Value& answer) const = 0;
  WorkloadConfig config_;
  OpSource source_;
};

// Word i (0-based) of W5-top occurs 1 + (i * 7919) % 13 times: counts 1..13, so the top 10
// are ties at 13 broken by word.
int64_t TopWordsCount(int64_t i) { return 1 + (i * 7919) % 13; }

class TopWordsQuery : public QueryWorkload {
 public:
  explicit TopWordsQuery(const WorkloadConfig& config) : QueryWorkload(config) {
    std::vector<std::pair<int64_t, std::string>> ranked;
    for (int64_t i = 0; i < config.keyspace; ++i) {
      ranked.emplace_back(-TopWordsCount(i), Numbered('w', i + 1));
    }
    const size_t n = std::min<size_t>(10, ranked.size());
    std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n),
                      ranked.end());
    Value::List top;
    for (size_t i = 0; i < n; ++i)
      top.push_back(Value::ListOf({ranked[i].second, -ranked[i].first}));
    expected_ = Value(std::move(top));
  }
  std::string Description() const override {
    return "wordcount: invoke top-words(10) over " + std::to_string(config_.keyspace) +
           " words (word i counted 1 + (i * 7919) % 13 times)";
  }
  Status Prepare(const std::vector<Client*>& clients) override {
    // One sentence per word: the word repeated its count times.
    return Load(clients, "load words", "wordcount", "*sentences", config_.keyspace, [](int64_t i) {
      const std::string word = Numbered('w', i + 1);
      std::string sentence;
      for (int64_t k = 0; k < TopWordsCount(i); ++k) sentence += (k ? " " : "") + word;
      return Value(sentence);
    });
  }

 private:
  protocol::InvokeRequest Request(std::mt19937_64&) const override {
    return {"wordcount", "top-words", {Value(10)}, 10'000};
  }
  std::string CheckAnswer(const Value& answer) const override {
    if (answer == expected_) return "";
    return "top-words(10) answered " + answer.ToString().substr(0, 200) + ", expected " +
           expected_.ToString();
  }
  Value expected_;
};

class TotalMoneyQuery : public QueryWorkload {
 public:
  using QueryWorkload::QueryWorkload;
  std::string Description() const override {
    return "bank: invoke total-money() over " + std::to_string(config_.keyspace) +
           " accounts (each deposited " + std::to_string(kInitialDeposit) + ")";
  }
  Status Prepare(const std::vector<Client*>& clients) override {
    return Load(clients, "load deposits", "bank", "*deposits", config_.keyspace, [](int64_t i) {
      return Value::MapOf({{"account", Numbered('a', i + 1)}, {"amount", kInitialDeposit}});
    });
  }

 private:
  protocol::InvokeRequest Request(std::mt19937_64&) const override {
    return {"bank", "total-money", {}, 10'000};
  }
  std::string CheckAnswer(const Value& answer) const override {
    // Against a server used before, the total is at least what Prepare deposited.
    if (answer.is_int() && answer.as_int() >= config_.keyspace * kInitialDeposit) return "";
    return "total-money() answered " + answer.ToString() + ", less than the " +
           std::to_string(config_.keyspace * kInitialDeposit) + " deposited";
  }
};

class TimelineQuery : public QueryWorkload {
 public:
  explicit TimelineQuery(const WorkloadConfig& config)
      : QueryWorkload(config), followers_(FollowerCounts(config.users, config.avg_followers)) {}
  std::string Description() const override {
    return "social: invoke timeline(user, 10) for uniform users among " +
           std::to_string(config_.users) + " (each followed per W3's graph; " +
           std::to_string(kPostsPerUser) + " posts per user loaded)";
  }
  Status Prepare(const std::vector<Client*>& clients) override {
    const int users = config_.users;
    Status s = LoadFollows(clients, followers_);
    if (!s.ok()) return s;
    const int64_t base = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    return Load(clients, "load posts", "social", "*posts", users * kPostsPerUser,
                [base, users](int64_t i) {
                  return Value::MapOf({{"author", Numbered('u', i % users + 1)},
                                       {"id", base + i},
                                       {"text", "post " + std::to_string(i)}});
                });
  }

 private:
  static constexpr int64_t kPostsPerUser = 5;
  protocol::InvokeRequest Request(std::mt19937_64& rng) const override {
    std::uniform_int_distribution<int64_t> user(1, config_.users);
    return {"social", "timeline", {Value(Numbered('u', user(rng))), Value(10)}, 10'000};
  }
  std::string CheckAnswer(const Value& answer) const override {
    // Every user follows someone (W3's graph), who posted kPostsPerUser times.
    if (answer.is_list() && answer.as_list().size() >= 5 && answer.as_list().size() <= 10)
      return "";
    return "timeline(user, 10) answered " + answer.ToString().substr(0, 200) +
           ", not a list of 5 to 10 posts";
  }
  std::vector<int64_t> followers_;
};

}  // namespace

std::vector<int64_t> FollowerCounts(int users, double avg_followers, double* c_out) {
  const auto counts_for = [users](double c) {
    std::vector<int64_t> counts;
    for (int r = 1; r <= users; ++r) {
      const double n = std::floor(c / std::pow(static_cast<double>(r), 0.9));
      counts.push_back(std::clamp<int64_t>(static_cast<int64_t>(n), 1, users - 1));
    }
    return counts;
  };
  const double target = avg_followers * users;
  double lo = 0, hi = target;  // the total is monotonic in c
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    int64_t total = 0;
    for (int64_t n : counts_for(mid)) total += n;
    (static_cast<double>(total) < target ? lo : hi) = mid;
  }
  if (c_out != nullptr) *c_out = hi;
  return counts_for(hi);
}

Result<std::unique_ptr<Workload>> MakeWorkload(const WorkloadConfig& config) {
  if (config.batch < 1) return Status::InvalidArgument("--batch must be >= 1");
  if (config.keyspace < 1) return Status::InvalidArgument("--keyspace must be >= 1");
  if (config.name == "W1") return std::unique_ptr<Workload>(new WordCountAppends(config));
  if (config.name == "W2") {
    if (config.batch != 1) return Status::InvalidArgument("--batch does not apply to W2 (reads)");
    return std::unique_ptr<Workload>(new WordCountReads(config));
  }
  if (config.name == "W3") {
    if (config.users < 2) return Status::InvalidArgument("--users must be >= 2");
    return std::unique_ptr<Workload>(new TimelineFanout(config));
  }
  if (config.name == "W4") {
    if (config.keyspace < 2) return Status::InvalidArgument("W4 needs --keyspace >= 2 accounts");
    return std::unique_ptr<Workload>(new BankTransfers(config));
  }
  if (config.name == "W5-top") return std::unique_ptr<Workload>(new TopWordsQuery(config));
  if (config.name == "W5-total") return std::unique_ptr<Workload>(new TotalMoneyQuery(config));
  if (config.name == "W5-timeline") {
    if (config.users < 2) return Status::InvalidArgument("--users must be >= 2");
    return std::unique_ptr<Workload>(new TimelineQuery(config));
  }
  return Status::InvalidArgument("unknown workload '" + config.name +
                                 "' (W1, W2, W3, W4, W5-top, W5-total or W5-timeline)");
}

}  // namespace strata::bench
