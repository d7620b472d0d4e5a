// strata-bench: the load generator of docs/performance.md (workloads W1–W5) over the C++
// driver. Runs against a running stratad (--host/--port) or starts its own (--spawn: a
// build/bin/stratad child on a temporary data directory with the example modules,
// stopped and removed at the end). Prints the configuration, throughput and latency
// percentiles, or one JSON document with --json. --subscribers N holds N live
// subscriptions open during the phase; --workload sub-latency measures a subscription's
// delay after an append's ack. See docs/performance.md ("Live subscriptions").
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runner.h"
#include "strata/client.h"
#include "strata/diff.h"
#include "stratad_process.h"
#include "workloads.h"

namespace strata::bench {
namespace {

struct Flags {
  std::string workload;
  int connections = 16;
  int client_threads = 2;  // driver I/O threads shared by the connections (as pgbench -j 2)
  int pipeline = 1;
  double rate = 0;  // open loop: requests/s over all connections; 0: closed loop
  int batch = 1;
  double duration = 10;
  int64_t count = 0;
  int64_t keyspace = 100000;
  std::string module = "wordcount";
  int users = 10000;
  std::string ack = "processed";
  std::string host = "127.0.0.1";
  uint16_t port = 7450;
  bool spawn = false;
  std::vector<std::string> stratad_args;
  double warmup = 2;
  bool json = false;
  uint64_t seed = 42;
  bool print_graph = false;
  int subscribers = 0;  // live subscriptions held open during the measured phase
  int subscriber_connections = 4;
};

// The spawned server: a stratad child on a fresh temporary data directory, with its peak
// resident set sampled every 100 ms. The destructor stops it (SIGTERM, graceful) and
// removes the directory.
class SpawnedServer {
 public:
  ~SpawnedServer() {
    sampling_ = false;
    if (sampler_.joinable()) sampler_.join();
    if (process_.running()) process_.Stop(SIGTERM);
    if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_);
  }

  Status Start(const std::vector<std::string>& extra_args) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "strata-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return Status::IOError("mkdtemp " + tmpl + " failed");
    data_dir_ = tmpl;
    log_path_ = data_dir_ + ".log";
    std::vector<std::string> args = extra_args;
    for (const char* module : {WORDCOUNT_MODULE, SOCIAL_MODULE, MBBANK_MODULE, BANK_MODULE}) {
      args.push_back("--deploy");
      args.push_back(module);
    }
    if (!process_.Start(data_dir_ + "/data", log_path_, args)) {
      return Status::IOError("stratad did not start (" + std::string(STRATAD_PATH) +
                             "); its log:\n" + server_test::ReadFile(log_path_));
    }
    sampler_ = std::thread([this] {
      while (sampling_) {
        peak_rss_kib_ = std::max<int64_t>(peak_rss_kib_, process_.RssKib());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    return Status::Ok();
  }
  // Stops the server gracefully; the log is removed unless the exit was not clean.
  Status Stop() {
    sampling_ = false;
    if (sampler_.joinable()) sampler_.join();
    const int status = process_.Stop(SIGTERM);
    if (status != 0) {
      return Status::Internal("stratad exited with status " + std::to_string(status) +
                              "; its log is " + log_path_);
    }
    std::filesystem::remove(log_path_);
    return Status::Ok();
  }
  uint16_t port() const { return process_.port(); }
  int64_t peak_rss_kib() const { return peak_rss_kib_; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  server_test::StratadProcess process_;
  std::string data_dir_;
  std::string log_path_;
  std::atomic<bool> sampling_{true};
  std::atomic<int64_t> peak_rss_kib_{0};
  std::thread sampler_;
};

std::optional<protocol::AckLevel> ParseAck(const std::string& s) {
  if (s == "none") return protocol::AckLevel::kNone;
  if (s == "appended") return protocol::AckLevel::kAppended;
  if (s == "processed") return protocol::AckLevel::kProcessed;
  return std::nullopt;
}

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

nlohmann::json LatencyJson(const Histogram& h) {
  return {{"count", h.count()},
          {"mean", Ms(static_cast<uint64_t>(h.mean()))},
          {"p50", Ms(h.Percentile(0.5))},
          {"p99", Ms(h.Percentile(0.99))},
          {"p999", Ms(h.Percentile(0.999))},
          {"max", Ms(h.max())}};
}

std::string LatencyLine(const Histogram& h) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(3) << "p50 " << Ms(h.Percentile(0.5)) << " ms, p99 "
      << Ms(h.Percentile(0.99)) << " ms, p99.9 " << Ms(h.Percentile(0.999)) << " ms, max "
      << Ms(h.max()) << " ms (" << h.count() << " requests)";
  return out.str();
}

// --subscribers: `count` subscriptions to $$word_counts key("w<k>") (one value), k = 1..count
// (distinct keys of W1's keyspace), spread over `connections` connections of their own on
// one I/O thread of their own. Each handler only counts its updates. The subscriptions end
// when the clients are destroyed.
class Subscribers {
 public:
  Status Open(const std::string& host, uint16_t port, int count, int connections) {
    io_thread_ = ClientIoThread::Start();
    for (int c = 0; c < connections; ++c) {
      ClientOptions options;
      options.host = host;
      options.port = port;
      options.client_name = "strata-bench-subscriber";
      options.io_thread = io_thread_;
      auto client = Client::Connect(options);
      if (!client.ok()) return Status::IOError("connect: " + client.error().ToString());
      clients_.push_back(std::move(client).value());
    }
    // One thread per connection subscribes its share (a blocking round trip each).
    std::vector<std::thread> threads;
    std::mutex mu;
    Status failed = Status::Ok();
    for (int c = 0; c < connections; ++c) {
      threads.emplace_back([&, c] {
        for (int k = 1 + c; k <= count; k += connections) {
          auto subscribed = clients_[static_cast<size_t>(c)]->Subscribe(
              "wordcount", "$$word_counts", Path().Key(std::string("w") + std::to_string(k)),
              [this](ClientResult<protocol::SubscriptionUpdate> update) {
                if (update.ok() && !update->ended) {
                  updates_.fetch_add(1, std::memory_order_relaxed);
                } else {
                  ended_.fetch_add(1, std::memory_order_relaxed);
                }
              },
              {.partition_key = std::nullopt, .one = true});
          if (!subscribed.ok()) {
            std::lock_guard lock(mu);
            if (failed.ok())
              failed = Status::IOError("subscribe: " + subscribed.error().ToString());
            return;
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    return failed;
  }
  int64_t updates() const { return updates_.load(); }
  int64_t ended() const { return ended_.load(); }
  void Close() { clients_.clear(); }

 private:
  std::shared_ptr<ClientIoThread> io_thread_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<int64_t> updates_{0};
  std::atomic<int64_t> ended_{0};
};

// Percentiles (ms) of signed nanosecond samples.
nlohmann::json SignedMs(std::vector<int64_t> ns) {
  if (ns.empty()) return {{"count", 0}};
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    const size_t i =
        std::min(ns.size() - 1, static_cast<size_t>(q * static_cast<double>(ns.size())));
    return static_cast<double>(ns[i]) / 1e6;
  };
  return {{"count", ns.size()}, {"min", at(0)},      {"p50", at(0.5)},
          {"p99", at(0.99)},    {"p999", at(0.999)}, {"max", static_cast<double>(ns.back()) / 1e6}};
}

// --workload sub-latency: one subscriber connection holds a subscription to
// $$word_counts key("sublat") of wordcount; one appender connection (its own I/O thread)
// appends the sentence "sublat" with ack processed, closed loop, --count times (after
// --warmup appends). For append i (whose count is c0 + i) the times of its send, its ack
// and the arrival of the update carrying count c0 + i are kept; prints the percentiles of
// diff - ack (raw: negative when the update came first), max(0, diff - ack) and
// diff - send.
int RunSubscriptionLatency(const Flags& flags, uint16_t port) {
  using Clock = std::chrono::steady_clock;
  auto connect = [&]() -> std::unique_ptr<Client> {
    ClientOptions options;
    options.host = flags.host;
    options.port = port;
    options.client_name = "strata-bench";
    options.io_thread = ClientIoThread::Start();
    auto client = Client::Connect(options);
    if (!client.ok()) {
      std::cerr << "strata-bench: connect: " << client.error().ToString() << "\n";
      return nullptr;
    }
    return std::move(client).value();
  };
  std::unique_ptr<Client> subscriber = connect();
  std::unique_ptr<Client> appender = connect();
  if (!subscriber || !appender) return 1;
  const std::string word = "sublat";
  const int64_t warmup = static_cast<int64_t>(flags.warmup * 500);  // ~1 s at 2 ms a round
  const int64_t total = warmup + std::max<int64_t>(flags.count, 1);
  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, Clock::time_point> arrived;  // count -> arrival of the update carrying it
  int64_t latest = -1;
  auto subscribed = subscriber->Subscribe(
      "wordcount", "$$word_counts", Path().Key(word),
      [&](ClientResult<protocol::SubscriptionUpdate> update) {
        const auto now = Clock::now();
        if (!update.ok()) return;
        std::lock_guard lock(mu);
        for (const Diff& diff : update->diffs) {
          if ((diff.op == Diff::Op::kReplace || diff.op == Diff::Op::kResync) && diff.at.empty() &&
              diff.value.is_int()) {
            // Every count up to this one is visible from now on.
            for (int64_t c = latest + 1; c <= diff.value.as_int(); ++c) arrived[c] = now;
            latest = std::max(latest, diff.value.as_int());
          }
        }
        cv.notify_all();
      },
      {.partition_key = std::nullopt, .one = true});
  if (!subscribed.ok()) {
    std::cerr << "strata-bench: subscribe: " << subscribed.error().ToString() << "\n";
    return 1;
  }
  const int64_t c0 = subscribed->value.is_int() ? subscribed->value.as_int() : 0;
  {
    std::lock_guard lock(mu);
    latest = std::max(latest, c0);
  }
  std::vector<Clock::time_point> sent(static_cast<size_t>(total)),
      acked(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) {
    sent[static_cast<size_t>(i)] = Clock::now();
    auto r = appender->Append("wordcount", "*sentences", Value(word));
    acked[static_cast<size_t>(i)] = Clock::now();
    if (!r.ok()) {
      std::cerr << "strata-bench: append: " << r.error().ToString() << "\n";
      return 1;
    }
  }
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return latest >= c0 + total; })) {
    std::cerr << "strata-bench: the update of count " << c0 + total << " never arrived (latest "
              << latest << ")\n";
    return 1;
  }
  std::vector<int64_t> raw, clamped, from_send;
  for (int64_t i = warmup; i < total; ++i) {
    const auto t_diff = arrived.at(c0 + i + 1);
    const int64_t d =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t_diff - acked[static_cast<size_t>(i)])
            .count();
    raw.push_back(d);
    clamped.push_back(std::max<int64_t>(0, d));
    from_send.push_back(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t_diff - sent[static_cast<size_t>(i)])
            .count());
  }
  const int64_t before_ack = std::count_if(raw.begin(), raw.end(), [](int64_t d) { return d < 0; });
  nlohmann::json doc = {
      {"workload", "sub-latency"},
      {"description", "wordcount: closed-loop processed appends of \"" + word +
                          "\", one subscriber to key(\"" + word + "\") on another connection"},
      {"appends", raw.size()},
      {"updates_before_ack", before_ack},
      {"diff_minus_ack_ms", SignedMs(raw)},
      {"diff_minus_ack_clamped_ms", SignedMs(clamped)},
      {"diff_minus_send_ms", SignedMs(from_send)},
      {"ok", true}};
  if (flags.json) {
    std::cout << doc.dump() << "\n";
  } else {
    std::cout << doc.dump(2) << "\n";
  }
  return 0;
}

int Run(const Flags& flags) {
  if (flags.print_graph) {
    double c = 0;
    const std::vector<int64_t> counts = FollowerCounts(flags.users, 50, &c);
    for (size_t r = 0; r < counts.size(); ++r)
      std::printf("%zu\t%lld\n", r + 1, static_cast<long long>(counts[r]));
    return 0;
  }
  if (flags.workload == "sub-latency") {
    if (flags.spawn) {
      std::cerr << "strata-bench: sub-latency runs against a server (--port), not --spawn\n";
      return 2;
    }
    return RunSubscriptionLatency(flags, flags.port);
  }
  const std::optional<protocol::AckLevel> ack = ParseAck(flags.ack);
  if (!ack) {
    std::cerr << "strata-bench: --ack '" << flags.ack << "' is not none, appended or processed\n";
    return 2;
  }
  if (flags.rate > 0 && flags.pipeline != 1) {
    std::cerr << "strata-bench: --pipeline " << flags.pipeline
              << " is for the closed loop; --rate sends on schedule whatever is in flight\n";
    return 2;
  }
  if (flags.duration <= 0 && flags.count <= 0) {
    std::cerr << "strata-bench: give a --duration > 0 or a --count > 0\n";
    return 2;
  }
  WorkloadConfig config;
  config.name = flags.workload;
  config.keyspace = flags.keyspace;
  config.w1_module = flags.module;
  config.batch = flags.batch;
  config.ack = *ack;
  config.users = flags.users;
  Result<std::unique_ptr<Workload>> workload = MakeWorkload(config);
  if (!workload.ok()) {
    std::cerr << "strata-bench: " << workload.status().message() << "\n";
    return 2;
  }

  SpawnedServer spawned;
  uint16_t port = flags.port;
  if (flags.spawn) {
    if (Status s = spawned.Start(flags.stratad_args); !s.ok()) {
      std::cerr << "strata-bench: " << s.message() << "\n";
      return 1;
    }
    port = spawned.port();
  }
  // Connection i runs on I/O thread i mod --client-threads, as pgbench -j spreads its
  // connections over threads (a thread per connection would cost the server, which shares
  // the cores, far more in wake-ups than the peers' clients do).
  std::vector<std::shared_ptr<ClientIoThread>> io_threads;
  for (int i = 0; i < flags.client_threads; ++i) io_threads.push_back(ClientIoThread::Start());
  std::vector<std::unique_ptr<Client>> owned;
  std::vector<Client*> clients;
  for (int i = 0; i < flags.connections; ++i) {
    ClientOptions options;
    options.host = flags.host;
    options.port = port;
    options.client_name = "strata-bench";
    options.io_thread = io_threads[static_cast<size_t>(i % flags.client_threads)];
    auto client = Client::Connect(options);
    if (!client.ok()) {
      std::cerr << "strata-bench: connect to " << flags.host << ":" << port << ": "
                << client.error().ToString() << "\n";
      return 1;
    }
    clients.push_back(client->get());
    owned.push_back(std::move(*client));
  }

  std::cerr << "strata-bench " << flags.workload << ": " << (*workload)->Description() << "\n";
  if (Status s = (*workload)->Prepare(clients); !s.ok()) {
    std::cerr << "strata-bench: preparing " << flags.workload << ": " << s.message() << "\n";
    return 1;
  }
  Subscribers subscribers;
  if (flags.subscribers > 0) {
    const auto start = std::chrono::steady_clock::now();
    if (Status s =
            subscribers.Open(flags.host, port, flags.subscribers, flags.subscriber_connections);
        !s.ok()) {
      std::cerr << "strata-bench: opening " << flags.subscribers
                << " subscriptions: " << s.message() << "\n";
      return 1;
    }
    std::cerr << "  " << flags.subscribers << " subscriptions open in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
              << " s\n";
  }
  PhaseOptions phase;
  phase.warmup = std::chrono::duration<double>(flags.warmup);
  phase.duration = std::chrono::duration<double>(flags.count > 0 ? 0 : flags.duration);
  phase.count = flags.count;
  phase.pipeline = flags.pipeline;
  phase.rate = flags.rate;
  phase.progress = !flags.json;
  phase.label = flags.workload;
  const PhaseResult result = RunPhase(clients, (*workload)->Source(), phase, flags.seed);

  nlohmann::json check = nlohmann::json::object();
  const Status verified = (*workload)->Verify(clients, &check);
  const int64_t subscription_updates = subscribers.updates();
  const int64_t subscriptions_ended = subscribers.ended();
  subscribers.Close();
  owned.clear();
  int64_t peak_rss_kib = -1;
  Status stopped;
  if (flags.spawn) {
    peak_rss_kib = spawned.peak_rss_kib();
    stopped = spawned.Stop();
  }

  const Histogram all = result.AllLatencies();
  const double seconds = result.seconds > 0 ? result.seconds : 1e-9;
  const double rate = static_cast<double>(result.units) / seconds;
  const double request_rate = static_cast<double>(result.ops) / seconds;
  const std::string unit = (*workload)->UnitName();
  const std::string extra_unit = (*workload)->ExtraUnitName();
  const std::string second_class = (*workload)->SecondLatencyClass();
  const bool ok = result.errors == 0 && verified.ok() && stopped.ok() && result.ops > 0 &&
                  subscriptions_ended == 0;

  if (flags.json) {
    nlohmann::json doc = {
        {"workload", flags.workload},
        {"description", (*workload)->Description()},
        {"config",
         {{"connections", flags.connections},
          {"client_threads", flags.client_threads},
          {"pipeline", flags.pipeline},
          {"rate", flags.rate},
          {"batch", flags.batch},
          {"ack", flags.ack},
          {"warmup_s", flags.warmup},
          {"duration_s", phase.duration.count()},
          {"count", flags.count},
          {"keyspace", flags.keyspace},
          {"users", flags.users},
          {"subscribers", flags.subscribers},
          {"server", flags.spawn ? "spawned" : flags.host + ":" + std::to_string(port)}}},
        {"seconds", result.seconds},
        {"unit", unit},
        {"units", result.units},
        {"units_per_s", rate},
        {"requests", result.ops},
        {"requests_per_s", request_rate},
        {"latency_ms", LatencyJson(all)},
        {"errors", result.errors},
        {"check", check},
        {"ok", ok}};
    if (!extra_unit.empty()) {
      doc["extra_unit"] = extra_unit;
      doc["extra_units_per_s"] = static_cast<double>(result.extra_units) / seconds;
    }
    if (!second_class.empty()) {
      doc["latency_ms_class0"] = LatencyJson(result.latency[0]);
      doc["latency_ms_class1"] = LatencyJson(result.latency[1]);
      doc["class1"] = second_class;
    }
    if (flags.subscribers > 0) {
      // Updates over the whole phase, warmup included.
      doc["subscription_updates"] = subscription_updates;
      doc["subscriptions_ended"] = subscriptions_ended;
    }
    if (result.errors > 0) doc["first_error"] = result.first_error;
    if (!verified.ok()) doc["check_error"] = verified.message();
    if (peak_rss_kib >= 0) doc["server_peak_rss_mib"] = peak_rss_kib / 1024;
    std::cout << doc.dump() << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(1);
    std::cout << "workload     " << flags.workload << ": " << (*workload)->Description() << "\n"
              << "server       "
              << (flags.spawn ? "spawned stratad " + std::string(STRATAD_PATH)
                              : flags.host + ":" + std::to_string(port))
              << "\n"
              << "config       " << flags.connections << " connections on " << flags.client_threads
              << " client thread(s), "
              << (flags.rate > 0
                      ? "open loop at " + std::to_string(static_cast<int64_t>(flags.rate)) +
                            " requests/s (latency from the scheduled send)"
                      : "pipeline " + std::to_string(flags.pipeline))
              << ", batch " << flags.batch << ", ack " << flags.ack << ", warmup " << flags.warmup
              << " s, ";
    if (flags.count > 0) {
      std::cout << "count " << flags.count << "\n";
    } else {
      std::cout << "duration " << flags.duration << " s\n";
    }
    std::cout << "throughput   " << rate << " " << unit << "/s (" << request_rate << " requests/s; "
              << result.units << " " << unit << " in " << result.seconds << " s)\n";
    if (!extra_unit.empty()) {
      std::cout << "             " << static_cast<double>(result.extra_units) / seconds << " "
                << extra_unit << "/s\n";
    }
    std::cout << "latency      " << LatencyLine(all) << "\n";
    if (!second_class.empty()) {
      std::cout << "  others     " << LatencyLine(result.latency[0]) << "\n"
                << "  " << second_class << ": " << LatencyLine(result.latency[1]) << "\n";
    }
    if (flags.subscribers > 0) {
      std::cout << "subscribed   " << flags.subscribers << " subscriptions, "
                << subscription_updates << " updates (warmup included), " << subscriptions_ended
                << " ended early\n";
    }
    if (peak_rss_kib >= 0) std::cout << "server RSS   peak " << peak_rss_kib / 1024 << " MiB\n";
    if (!check.empty()) std::cout << "check        " << check.dump() << "\n";
    std::cout << "errors       " << result.errors
              << (result.errors > 0 ? " (first: " + result.first_error + ")" : "") << "\n";
  }
  if (!verified.ok()) std::cerr << "strata-bench: check failed: " << verified.message() << "\n";
  if (!stopped.ok()) std::cerr << "strata-bench: " << stopped.message() << "\n";
  if (subscriptions_ended > 0) std::cerr << "strata-bench: subscriptions ended during the run\n";
  if (result.ops == 0) std::cerr << "strata-bench: no request completed in the measured interval\n";
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  strata::bench::Flags flags;
  CLI::App app{"strata-bench: the workloads W1-W5 of docs/performance.md against stratad"};
  app.add_option("--workload", flags.workload,
                 "W1 (word count appends), W2 (point reads), "
                 "W3 (timeline fan-out), W4 (microbatch bank transfers), W5-top / W5-total / "
                 "W5-timeline (queries: wordcount top-words(10), bank total-money(), social "
                 "timeline(user, 10)), sub-latency (a live subscription's delay after a processed "
                 "append's ack; --count appends)")
      ->check(CLI::IsMember(
          {"W1", "W2", "W3", "W4", "W5-top", "W5-total", "W5-timeline", "sub-latency"}));
  app.add_option("--subscribers", flags.subscribers,
                 "Hold this many live subscriptions open during the phase: $$word_counts "
                 "key(\"w<k>\"), k = 1..N, of wordcount (W1's keys)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--subscriber-connections", flags.subscriber_connections,
                 "Connections the --subscribers are spread over (on one I/O thread of their own)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--connections", flags.connections, "Connections (one client each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--client-threads", flags.client_threads,
                 "Driver I/O threads the connections share (connection i on thread i mod N)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--pipeline", flags.pipeline, "Requests in flight per connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app.add_option("--rate", flags.rate,
                 "Open loop: send this many requests/s in total over the connections on a "
                 "fixed schedule (latency measured from the scheduled send time); 0: closed loop")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", flags.batch, "Records per append request (W1, W3, W4)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--duration", flags.duration, "Measured seconds (after the warmup)")
      ->capture_default_str();
  app.add_option("--count", flags.count,
                 "Measure this many records/reads/posts/transfers "
                 "instead of a duration")
      ->check(CLI::PositiveNumber);
  app.add_option(
      "--module", flags.module,
      "W1: the module appended to, a build of wordcount under any name (bench/cluster-bench.py "
      "deploys several in one cluster)");
  app.add_option("--keyspace", flags.keyspace, "Words (W1, W2, W5-top) or accounts (W4, W5-total)")
      ->capture_default_str();
  app.add_option("--users", flags.users, "Users (W3, W5-timeline)")->capture_default_str();
  app.add_option("--ack", flags.ack, "Ack level: none, appended or processed")
      ->capture_default_str();
  app.add_option("--host", flags.host, "Server host")->capture_default_str();
  app.add_option("--port", flags.port, "Server port")->capture_default_str();
  app.add_flag("--spawn", flags.spawn,
               "Start a stratad on a temporary data directory with the example modules "
               "(port 0) and stop it at the end");
  app.add_option(
      "--stratad-arg", flags.stratad_args,
      "An argument for the spawned stratad (repeat), e.g. --stratad-arg=--task-threads=2");
  app.add_option("--warmup", flags.warmup, "Seconds of load before measuring")
      ->capture_default_str();
  app.add_flag("--json", flags.json, "Print one JSON document");
  app.add_option("--seed", flags.seed, "Random seed")->capture_default_str();
  app.add_flag("--print-graph", flags.print_graph,
               "Print W3's follower count per user (\"user<TAB>count\", user 1..--users) and exit");
  CLI11_PARSE(app, argc, argv);
  if (flags.workload.empty() && !flags.print_graph) {
    std::cerr << "strata-bench: --workload is required (W1, W2, W3 or W4)\n" << app.help();
    return 2;
  }
  return strata::bench::Run(flags);
}
