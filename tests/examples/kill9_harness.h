// The kill -9 rounds of the example crash tests (kill9_test.cc, microbatch_kill9_test.cc):
// a forked child runs a workload against an engine on a shared data directory and reports
// every acknowledged record through a pipe, one JSON line each; the parent SIGKILLs it at
// a random moment and collects the complete lines.
//
// The parent's part runs on the test's thread; the child's (Reporter, from any thread of
// the child, OpenAndDeploy, AppendAndReport) in the forked child.
#pragma once

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "strata/json.h"

namespace strata::examples_test {

// ---- The child -------------------------------------------------------------------------

// Writes one report line to the pipe. Lines are shorter than PIPE_BUF, so each write is
// atomic: a kill leaves whole lines only.
class Reporter {
 public:
  explicit Reporter(int fd) : fd_(fd) {}
  void Line(const Value& v) {
    std::string line = ToJson(v) + "\n";
    std::lock_guard<std::mutex> lock(mu_);
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = write(fd_, line.data() + done, line.size() - done);
      if (n <= 0) _exit(3);  // the parent is gone
      done += static_cast<size_t>(n);
    }
  }
  // Reports every record of a processed batch.
  void Acks(const std::string& module, const std::string& depot, const std::vector<Value>& records,
            const std::vector<AppendResult>& results) {
    for (size_t i = 0; i < results.size(); ++i) {
      Value acks = Value::EmptyMap();
      for (const auto& [topology, value] : results[i].ack_returns) acks.Insert(topology, value);
      Line(Value::MapOf({{"m", module},
                         {"d", depot},
                         {"p", results[i].partition},
                         {"o", results[i].offset},
                         {"r", records[i]},
                         {"a", acks}}));
    }
  }
  void Fatal(const std::string& what) {
    Line(Value::MapOf({{"error", what}}));
    _exit(2);
  }

 private:
  const int fd_;
  std::mutex mu_;
};

// The child's start: opens the engine on `dir`, deploys those of the example `modules`
// not deployed yet, and reports that it is ready; any error ends the child (Fatal).
inline std::unique_ptr<Engine> OpenAndDeploy(const std::string& dir,
                                             const std::vector<std::string>& modules,
                                             Reporter& out) {
  auto engine = OpenEngine(dir);
  if (!engine.ok()) out.Fatal("open: " + engine.status().ToString());
  auto deployed_modules = (*engine)->Modules();
  if (!deployed_modules.ok()) out.Fatal("modules: " + deployed_modules.status().ToString());
  for (const std::string& name : modules) {
    bool deployed = false;
    for (const ModuleInfo& m : *deployed_modules) deployed = deployed || m.name == name;
    if (deployed) continue;
    Status st = DeployExample(**engine, name);
    if (!st.ok()) out.Fatal("deploy " + name + ": " + st.ToString());
  }
  out.Line(Value::MapOf({{"ready", true}}));
  return std::move(engine).value();
}

// Appends a batch with `level` acks (appended and processed are both durable) and reports
// it; any error ends the child.
inline void AppendAndReport(Engine& engine, Reporter& out, const std::string& module,
                            const std::string& depot, std::vector<Value> records,
                            AckLevel level = AckLevel::kProcessed) {
  std::vector<Value> copy = records;
  auto r = engine.AppendBatch(module, depot, std::move(copy), level);
  if (!r.ok()) out.Fatal(module + " " + depot + ": " + r.status().ToString());
  out.Acks(module, depot, records, *r);
}

// ---- The parent ------------------------------------------------------------------------

struct RoundOutcome {
  std::vector<Value> acks;  // the complete report lines of acknowledged records
  std::string error;        // the child's fatal error, if it reported one
  bool killed = false;
};

// Reads whole lines from `fd` until `deadline` (or EOF), appending them to *lines.
// Returns false at EOF.
inline bool ReadLines(int fd, std::string* partial, std::vector<Value>* lines,
                      std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) continue;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    partial->append(buf, static_cast<size_t>(n));
    size_t newline;
    while ((newline = partial->find('\n')) != std::string::npos) {
      auto v = ParseJson(std::string_view(*partial).substr(0, newline));
      if (v.ok()) lines->push_back(std::move(v).value());
      partial->erase(0, newline + 1);
    }
  }
}

inline RoundOutcome RunRound(const std::function<void(int fd)>& child, std::mt19937_64& rng) {
  RoundOutcome outcome;
  int fds[2];
  if (pipe(fds) != 0) {
    outcome.error = "pipe failed";
    return outcome;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    child(fds[1]);
    _exit(4);  // `child` must not return
  }
  close(fds[1]);
  std::string partial;
  std::vector<Value> lines;
  auto now = std::chrono::steady_clock::now;
  bool open = true;
  bool ready = false;
  // Wait for the child to be ready (open and recovery included), then let it run for a
  // random while before the kill.
  auto ready_deadline = now() + std::chrono::seconds(60);
  while (open && !ready && now() < ready_deadline) {
    open = ReadLines(fds[0], &partial, &lines, now() + std::chrono::milliseconds(20));
    for (const Value& l : lines) ready = ready || Field(l, "ready") == Value(true);
  }
  const auto run_for = std::chrono::milliseconds(80 + rng() % 700);
  if (open && ready) open = ReadLines(fds[0], &partial, &lines, now() + run_for);
  outcome.killed = open;  // still running: kill it
  kill(pid, SIGKILL);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  // The child is dead: the rest of the pipe, then EOF.
  for (int i = 0; i < 20 && ReadLines(fds[0], &partial, &lines, now() + std::chrono::seconds(1));
       ++i) {
  }
  close(fds[0]);
  for (Value& l : lines) {
    if (Field(l, "error").is_string()) outcome.error = Field(l, "error").as_string();
    if (Field(l, "m").is_string()) outcome.acks.push_back(std::move(l));
  }
  if (!ready && outcome.error.empty()) outcome.error = "the child never became ready";
  return outcome;
}

// Runs `rounds` rounds of RunRound on the data directory `dir`: round r's child runs
// child(dir, r, seed + 1000 * r, fd), and the kill moments come from std::mt19937_64(seed).
// Appends the acknowledged records of every round to *acks (printing their number). A
// child that reports an error fails the test fatally; one that ends by itself fails it.
// When given, after_round(dir, round) runs in the parent after each round, the child
// dead (e.g. to recover the directory and check it); it must close what it opens. Call
// under ASSERT_NO_FATAL_FAILURE.
inline void RunRounds(
    int rounds, uint64_t seed, const std::string& dir,
    const std::function<void(const std::string& dir, int round, uint64_t seed, int fd)>& child,
    std::vector<Value>* acks,
    const std::function<void(const std::string& dir, int round)>& after_round = {}) {
  std::mt19937_64 rng(seed);
  for (int round = 0; round < rounds; ++round) {
    RoundOutcome outcome = RunRound(
        [&](int fd) { child(dir, round, seed + 1000 * static_cast<uint64_t>(round), fd); }, rng);
    ASSERT_TRUE(outcome.error.empty()) << "round " << round << ": " << outcome.error;
    EXPECT_TRUE(outcome.killed) << "round " << round << ": the child ended by itself";
    std::cout << "[ round " << round << " ] " << outcome.acks.size() << " acknowledged records"
              << std::endl;
    acks->insert(acks->end(), outcome.acks.begin(), outcome.acks.end());
    if (after_round) {
      ASSERT_NO_FATAL_FAILURE(after_round(dir, round));
    }
  }
}

// Checks that every acknowledged record of `acks` (RoundOutcome::acks lines) is in its
// depot of `engine` at the offset it was acknowledged with (a lost one fails the test
// fatally), and that each of `modules` had a record acknowledged. Call under
// ASSERT_NO_FATAL_FAILURE.
inline void CheckAcksInDepots(Engine& engine, const std::vector<Value>& acks,
                              const std::vector<std::string>& modules) {
  std::map<std::pair<std::string, std::string>, std::vector<std::vector<DepotEntry>>> depots;
  std::map<std::string, int> acked_per_module;
  for (const Value& ack : acks) {
    const std::string module = Field(ack, "m").as_string();
    const std::string depot = Field(ack, "d").as_string();
    auto key = std::make_pair(module, depot);
    if (!depots.contains(key)) {
      EX_ASSIGN_OR_FAIL(depots[key], ReadWholeDepot(engine, module, depot));
    }
    const auto& partitions = depots[key];
    int64_t p = Field(ack, "p").as_int();
    int64_t o = Field(ack, "o").as_int();
    ASSERT_TRUE(p >= 0 && p < static_cast<int64_t>(partitions.size()) && o >= 0 &&
                o < static_cast<int64_t>(partitions[p].size()))
        << "acknowledged record lost: " << ack.ToString();
    EXPECT_EQ(partitions[p][o].record, Field(ack, "r")) << ack.ToString();
    ++acked_per_module[module];
  }
  for (const std::string& m : modules) {
    EXPECT_GT(acked_per_module[m], 0) << m << ": no record was acknowledged in any round";
  }
}

// After the rounds: opens the engine on `dir` into *engine, waits until each of `modules`
// has processed its depots, and checks `acks` (CheckAcksInDepots). Call under
// ASSERT_NO_FATAL_FAILURE.
inline void ReopenAndCheckAcks(const std::string& dir, const std::vector<Value>& acks,
                               const std::vector<std::string>& modules,
                               std::unique_ptr<Engine>* engine) {
  EX_ASSIGN_OR_FAIL(*engine, OpenEngine(dir));
  for (const std::string& m : modules) EX_ASSERT_OK((*engine)->WaitProcessed(m));
  CheckAcksInDepots(**engine, acks, modules);
}

}  // namespace strata::examples_test
