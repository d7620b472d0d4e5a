// build/bin/strata as a user runs it: scripts through standard input, -f and -c against a
// real stratad (tests/testing) with the four example modules deployed, checking standard
// output, standard error and the exit status.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "strata/diff.h"
#include "strata/json.h"
#include "stratad_process.h"

extern char** environ;

namespace strata::shell {
namespace {

using server_test::ReadFile;
using server_test::StratadProcess;

struct ShellRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class ShellTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/strata-shell-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    std::vector<std::string> args;
    for (const char* module : {BANK_MODULE, PROFILES_MODULE, SOCIAL_MODULE, WORDCOUNT_MODULE}) {
      args.push_back("--deploy");
      args.push_back(module);
    }
    ASSERT_TRUE(server_.Start(dir_ + "/data", dir_ + "/stratad.log", args))
        << ReadFile(dir_ + "/stratad.log");
  }
  void TearDown() override {
    if (server_.running()) server_.Stop(SIGTERM);
    std::string rm = "rm -rf " + dir_;
    ASSERT_EQ(std::system(rm.c_str()), 0);
  }

  // Runs build/bin/strata --port PORT `args` with `input` as standard input.
  ShellRun Run(std::vector<std::string> args, const std::string& input = "") {
    return Finish(Spawn(std::move(args), "", input), "");
  }

  // Starts build/bin/strata --port PORT `args` with `input` as standard input and its output
  // in files of the test directory named after `name`, without waiting: Finish waits.
  // -1 when it cannot start.
  pid_t Spawn(std::vector<std::string> args, const std::string& name,
              const std::string& input = "") {
    const std::string in_path = dir_ + "/stdin" + name, out_path = dir_ + "/stdout" + name,
                      err_path = dir_ + "/stderr" + name;
    std::ofstream(in_path) << input;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    args.insert(args.begin(), {STRATA_SHELL, "--port", std::to_string(server_.port())});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, STRATA_SHELL, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "cannot start " << STRATA_SHELL;
    return rc == 0 ? pid : -1;
  }

  // Waits for the shell `pid` started by Spawn(…, name) to exit; its status and output.
  ShellRun Finish(pid_t pid, const std::string& name) {
    ShellRun run;
    if (pid < 0) return run;
    int status = 0;
    waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.out = ReadFile(dir_ + "/stdout" + name);
    run.err = ReadFile(dir_ + "/stderr" + name);
    return run;
  }

  // Waits up to 30 s until the standard output of Spawn(…, name) so far holds `text`.
  bool WaitForOutput(const std::string& name, const std::string& text) {
    for (int i = 0; i < 3000; ++i) {
      if (ReadFile(dir_ + "/stdout" + name).find(text) != std::string::npos) return true;
      usleep(10'000);
    }
    return false;
  }

  std::string dir_;
  StratadProcess server_;
};

TEST_F(ShellTest, ScriptFromStdinRunsEveryReadCommandAndStopsAtQuit) {
  const std::string script = R"(# the bank and the social graph of examples/README.md
append bank *deposits {"account": "alice",
                       "amount": 100}
append bank *transfers {"id": "t1", "from": "alice", "to": "bob", "amount": 30}
append bank *transfers {"id": "t2", "from": "alice", "to": "bob", "amount": 500} ack=processed
select bank $$balances ["alice"]
select-one bank $$balances key("bob")
select bank $$rejected key("alice")
append social *follows {"from": "alice", "to": "bob"} ack=appended
append social *follows {"from": "carol", "to": "bob"}
append social *posts {"author": "bob", "id": 1, "text": "hello"}
append social *posts {"author": "bob", "id": 2, "text": "a second post"}
select social $$timelines key("alice").range((-inf, +inf), limit 20).map_vals
select-one social $$followers key("bob").size
select social $$followers key("bob").all
select-one profiles $$users_by_name key("nobody")
select bank $$balances partition_key="alice" (root)
scan bank *transfers
scan bank *transfers partition=4 from=1 limit=1
quit
modules
)";
  ShellRun run = Run({}, script);
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, R"(partition 4, offset 0
deposit returned {"balance":100,"status":"ok"}
partition 4, offset 0
transfer returned {"status":"ok"}
partition 4, offset 1
transfer returned {"balance":70,"reason":"insufficient funds","status":"rejected"}
[70]
30
key  value
---  ------------------
t2   insufficient funds
(1 row)
partition 2, offset 0 (durable, not waiting for topologies)
partition 2, offset 1
partition 2, offset 0
partition 2, offset 1
author  id
------  --
bob     2
bob     1
(2 rows)
2
["alice","carol"]
null
key    value
-----  -----
alice  70
(1 row)
partition  offset  record
---------  ------  --------------------------------------------------
4          0       {"amount":30,"from":"alice","id":"t1","to":"bob"}
4          1       {"amount":500,"from":"alice","id":"t2","to":"bob"}
(2 rows)
partition  offset  record
---------  ------  --------------------------------------------------
4          1       {"amount":500,"from":"alice","id":"t2","to":"bob"}
(1 row)
(limit 1 reached: there may be more)
)");
}

TEST_F(ShellTest, CommandFlagAndScriptFileRunCommands) {
  ShellRun run = Run({"-c", "help scan"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out,
            "usage: scan MODULE DEPOT [partition=P] [from=OFFSET] [limit=N]\n"
            "Reads a depot's records in offset order: of partition P, or of every partition in "
            "turn when partition= is absent, starting at OFFSET (default 0) in each, at most N "
            "records in all (default 100).\n");

  run = Run({"-c", "describe wordcount"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, R"(module wordcount: 8 partitions, 1 depot, 2 PStates, 1 topology
version 1

depot       partitioning  record schema
----------  ------------  -------------
*sentences  random        string
(1 row)

pstate         schema
-------------  -------------------------
$$word_counts  map<string, int64>
$$ranking      subindexed set<list<any>>
(2 rows)

topology  kind    sources
--------  ------  ----------
count     stream  *sentences
(1 row)

query      parameters
---------  ----------
top-words  n: int64
(1 row)
)");

  std::ofstream(dir_ + "/script.strata") << "append wordcount *sentences \"The cat, the hat.\"\n"
                                            "select-one wordcount $$word_counts key(\"the\")\n"
                                            "scan wordcount *sentences\n";
  run = Run({"-f", dir_ + "/script.strata"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  // A random depot: the partition is not known in advance.
  EXPECT_TRUE(std::regex_search(run.out, std::regex(R"(^partition \d, offset 0\n2\n)"))) << run.out;
  EXPECT_TRUE(std::regex_search(
      run.out, std::regex(R"(\n\d          0       "The cat, the hat."\n\(1 row\)\n$)")))
      << run.out;

  run = Run({"-c", "modules"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_NE(run.out.find("\nwordcount  8           *sentences"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("(4 rows)\n"), std::string::npos) << run.out;
}

TEST_F(ShellTest, JsonModePrintsOneDocumentPerResult) {
  const std::string script = R"(modules
describe bank
append bank *deposits {"account": "alice", "amount": 100}
select bank $$balances key("alice")
select-one bank $$balances key("alice")
describe nope
select bank $$balances key("alice").kye
scan bank *deposits
stats bank
)";
  ShellRun run = Run({"--json", "--keep-going"}, script);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "");
  std::vector<Value> docs;
  size_t start = 0;
  for (size_t nl; (nl = run.out.find('\n', start)) != std::string::npos; start = nl + 1) {
    Result<Value> doc = ParseJson(run.out.substr(start, nl - start));
    ASSERT_TRUE(doc.ok()) << doc.status().ToString() << " in " << run.out;
    docs.push_back(*doc);
  }
  ASSERT_EQ(docs.size(), 9u) << run.out;
  EXPECT_EQ(docs[0].as_list().size(), 4u);
  EXPECT_EQ(*docs[1].Find("name"), Value("bank"));
  EXPECT_EQ(*docs[1].Find("partitions"), Value(8));
  EXPECT_EQ(docs[2], *ParseJson(R"({"ack_returns": {"deposit": {"balance": 100, "status": "ok"}},
                                    "offset": 0, "partition": 4})"));
  EXPECT_EQ(docs[3], *ParseJson("[100]"));
  EXPECT_EQ(docs[4], Value(100));
  EXPECT_EQ(docs[5], *ParseJson(R"({"error": {"code": "NOT_FOUND", "kind": "server",
                                    "message": "no module nope is deployed"}})"));
  EXPECT_EQ(docs[6], *ParseJson(R"({"error": {"kind": "syntax", "position": 36,
                                    "message": "unknown path step \"kye\""}})"));
  EXPECT_EQ(docs[7], *ParseJson(R"([{"offset": 0, "partition": 4,
                                    "record": {"account": "alice", "amount": 100}}])"));
  const Value& stats = *docs[8].Find("modules");
  ASSERT_EQ(stats.as_list().size(), 1u);
  EXPECT_EQ(*stats.as_list()[0].Find("module"), Value("bank"));
  EXPECT_EQ(*stats.as_list()[0].Find("failures"), Value(0));
}

TEST_F(ShellTest, ErrorsPointAtTheColumnAndStopTheScript) {
  const std::string script = R"(append bank *deposits {"account": "alice", amount: 100}
select bank $$balances ["alice"]
)";
  ShellRun run = Run({}, script);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");  // the select after the failure did not run
  EXPECT_EQ(run.err,
            "error: invalid JSON: syntax error while parsing object key - invalid literal; last "
            "read: '\"alice\", a'; expected string literal\n"
            "  append bank *deposits {\"account\": \"alice\", amount: 100}\n"
            "                                             ^\n");

  run = Run({"--keep-going"},
            "select social $$posts key(\"bob\").rnage(1)\nselect bank $$balances [\"zed\"]\n");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "[null]\n");
  EXPECT_EQ(run.err,
            "error: unknown path step \"rnage\"\n"
            "  select social $$posts key(\"bob\").rnage(1)\n"
            "                                   ^\n");

  run = Run({"-c", "select bank $$balances key(\"a\").inc"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("select paths are for reading"), std::string::npos) << run.err;

  run = Run({"-c", "frobnicate"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err,
            "error: unknown command 'frobnicate' (type help for the list)\n  frobnicate\n  ^\n");

  run = Run({"-c", "append bank *deposits {\"account\": 5, \"amount\": 1}"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("error: SCHEMA_VIOLATION: record 0 of the batch of 1"), std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("*deposits.account: expected string, got int 5"), std::string::npos)
      << run.err;

  run = Run({"-c", "append bank *deposits {\"account\": \"a\", \"amount\": 0}"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("error: TOPOLOGY_FAILED: topology deposit"), std::string::npos) << run.err;

  run = Run({"-c", "select-one nope $$x key(1)"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "error: NOT_FOUND: no module nope is deployed\n");
}

TEST_F(ShellTest, DestroyNeedsYesInScriptsAndDeployBringsAModuleBack) {
  ShellRun run = Run({"-c", "destroy wordcount"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err,
            "error: destroy deletes module wordcount and all its data: confirm with "
            "'destroy wordcount --yes'\n");
  run = Run({}, "destroy wordcount --yes\nmodules\n");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.starts_with("destroyed wordcount\n")) << run.out;
  EXPECT_EQ(run.out.find("wordcount", 20), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("(3 rows)"), std::string::npos) << run.out;

  run = Run({"-c", std::string("deploy ") + WORDCOUNT_MODULE + " partitions=4"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "deployed wordcount: 4 partitions, 1 depot, 2 PStates, 1 topology\n");
  run = Run({"-c", std::string("deploy ") + WORDCOUNT_MODULE});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("error: ALREADY_EXISTS"), std::string::npos) << run.err;
  run = Run({"-c", "deploy /nonexistent/x.so"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err,
            "error: cannot read module file /nonexistent/x.so: No such file or directory\n");
}

TEST_F(ShellTest, StatsAndTiming) {
  ShellRun run = Run({},
                     "append bank *deposits {\"account\": \"alice\", \"amount\": 5}\ntiming "
                     "on\nstats bank\ntiming off\nhelp quit\n");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(std::regex_search(
      run.out,
      std::regex(
          R"(\ntiming on\nserver: up \d+\.\d s, 1 connection \(\d+ since start\), \d+ requests\n)")))
      << run.out;
  EXPECT_NE(
      run.out.find(
          "module bank\ndepot       records\n----------  -------\n*deposits   1\n*transfers  0\n"),
      std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("deposit   *deposits   0\n"), std::string::npos) << run.out;
  EXPECT_TRUE(
      std::regex_search(run.out, std::regex(R"(\nfailures: 0\n\(\d+\.\d{3} ms\)\ntiming off\n)")))
      << run.out;
  EXPECT_TRUE(
      run.out.ends_with("timing off\nusage: quit\nLeaves the shell (so do exit and Ctrl-D).\n"))
      << run.out;
}

TEST_F(ShellTest, StatsPagesFailures) {
  std::string script;
  for (const char* account : {"a", "b", "c"}) {
    script +=
        "append bank *deposits {\"account\": \"" + std::string(account) + "\", \"amount\": 0}\n";
  }
  script += "stats bank from=1 limit=1\nstats bank limit=0\nstats bank from=5\nstats from=2 bank\n";
  ShellRun run = Run({"--keep-going"}, script);
  EXPECT_EQ(run.exit_code, 1) << run.err;  // the failed appends
  EXPECT_NE(run.out.find("failures: 3 (listed: 1 to 1; next: from=2)\n"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("failures: 3\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("failures: 3 (none listed from 5)\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("failures: 3 (listed: 2 to 2)\n"), std::string::npos) << run.out;
  EXPECT_NE(
      run.out.find("\ndeposit   *deposits  0          1       on partition 0 after 3 attempts"),
      std::string::npos)
      << run.out;

  run = Run({"--json", "-c", "stats bank from=1 limit=1"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  Result<Value> doc = ParseJson(run.out);
  ASSERT_TRUE(doc.ok()) << run.out;
  const Value& bank = doc->Find("modules")->as_list()[0];
  EXPECT_EQ(*bank.Find("failures"), Value(3));
  EXPECT_EQ(*bank.Find("failures_from"), Value(1));
  EXPECT_EQ(bank.Find("failure_page")->as_list().size(), 1u);

  run = Run({"-c", "stats bank limit=1001"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("expected an integer <= 1000"), std::string::npos) << run.err;
}

TEST_F(ShellTest, UnreachableServerAndBadFlagsHaveTheirOwnExitStatus) {
  const uint16_t port = server_.port();
  ASSERT_EQ(server_.Stop(SIGTERM), 0);
  ShellRun run = Run({"-c", "modules"});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.err.find("error: cannot reach stratad at 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << run.err;
  run = Run({"-c", "help"});  // needs no server
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_NE(run.out.find("  select MODULE PSTATE [partition_key=JSON] PATH | select MODULE "
                         "PSTATE all-partitions [PATH] [limit=N]\n"),
            std::string::npos)
      << run.out;
  run = Run({"--bogus"});
  EXPECT_EQ(run.exit_code, 2);
  run = Run({"-f", dir_ + "/missing.strata"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(run.err, "strata: cannot read script " + dir_ + "/missing.strata\n");
}

// The lifecycle commands with the test module evolve (engine/runtime/testdata/evolve_module.cc):
// v1 *events -> $$totals (+n) and *extra -> $$extra_seen; v2 adds 2n and a new view $$counts;
// v3 no longer declares *extra, $$extra_seen and extra.
TEST_F(ShellTest, UpdateAndRecomputeAModule) {
  ShellRun run = Run({"-c", std::string("deploy ") + EVOLVE_V1 + " partitions=2"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "deployed evolve: 2 partitions, 2 depots, 2 PStates, 2 topologies\n");
  run = Run({}, R"(append evolve *events {"k": "a", "n": 1}
append evolve *events {"k": "a", "n": 2}
append evolve *events {"k": "b", "n": 5}
select-one evolve $$totals key("a")
)");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.ends_with("\n3\n")) << run.out;

  run = Run({"-c", std::string("update ") + EVOLVE_V3});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(run.err.starts_with("error: INVALID_ARGUMENT: ")) << run.err;
  for (const char* name : {"*extra", "$$extra_seen"})
    EXPECT_NE(run.err.find(name), std::string::npos) << run.err;

  run = Run({"-c", std::string("update ") + EVOLVE_V2});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(std::regex_match(
      run.out, std::regex(R"(updated evolve to version 2 \(appends paused \d+\.\d ms\)
  created: (\*notes, \$\$counts|\$\$counts, \*notes)
  backfilling: counts
)"))) << run.out;

  run = Run({"-c", std::string("update ") + EVOLVE_V3 + " drop=*extra,$$extra_seen,extra"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.starts_with("updated evolve to version 3 (appends paused ")) << run.out;
  EXPECT_TRUE(std::regex_search(
      run.out,
      std::regex(
          R"(\n  dropped: (\*extra|\$\$extra_seen|extra)(, (\*extra|\$\$extra_seen|extra)){2}\n$)")))
      << run.out;
  run = Run({"-c", "describe evolve"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(
      run.out.starts_with("module evolve: 2 partitions, 2 depots, 2 PStates, 2 topologies\n"
                          "version 3\n\n"))
      << run.out;

  // The records were processed by v1 (+n); recomputed by v3's code (+2n) the totals double.
  run = Run({"-c", "recompute evolve $$totals"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines;
  std::istringstream out(run.out);
  for (std::string line; std::getline(out, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 2u) << run.out;
  EXPECT_EQ(lines.front(),
            "recompute of $$totals of evolve started (Ctrl-C stops watching, not the recompute)");
  EXPECT_EQ(lines.back(), "recompute of $$totals of evolve finished: the rebuilt PStates serve");
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    EXPECT_TRUE(std::regex_match(lines[i], std::regex(R"(\[[#.]{30}\] +\d+%  \d+ / \d+ records)")))
        << lines[i];
  }
  run = Run({}, "select-one evolve $$totals key(\"a\")\nselect-one evolve $$totals key(\"b\")\n");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "6\n10\n");

  run = Run({"-c", std::string("update ") + EVOLVE_V3 + " partitions=3"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(std::regex_match(
      run.out, std::regex(R"(updated evolve to version 4 \(appends paused \d+\.\d ms\)
  partitions: 3
)"))) << run.out;
  run = Run({"-c", "select-one evolve $$totals key(\"b\")"});
  EXPECT_EQ(run.out, "10\n") << run.err;

  run = Run({"--json", "-c", "recompute evolve totals"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(*ParseJson(run.out), *ParseJson(R"({"recompute": {"module": "evolve",
                                                 "pstates": ["$$totals"], "finished": true}})"))
      << run.out;

  run = Run({"-c", "recompute evolve $$nope"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(run.err.starts_with("error: NOT_FOUND: ")) << run.err;
  EXPECT_NE(run.err.find("$$nope"), std::string::npos) << run.err;
  run = Run({"-c", "recompute nomodule $$x"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(run.err.starts_with("error: NOT_FOUND: ")) << run.err;
}

TEST_F(ShellTest, UpdateAndRecomputeArgumentsAreChecked) {
  ShellRun run = Run({"-c", "help update"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(
      run.out.starts_with("usage: update FILE [drop=NAME,NAME…] [partitions=N] [from=end]\n"))
      << run.out;
  run = Run({"-c", "help recompute"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(run.out.starts_with("usage: recompute MODULE PSTATE…\n")) << run.out;
  EXPECT_NE(run.out.find("Ctrl-C stops watching, not the recompute"), std::string::npos) << run.out;

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"update", "error: missing FILE: usage: update FILE"},
      {"update m.so drop=", "error: expected a name (drop=NAME,NAME…), found ''"},
      {"update m.so drop=*a,,b", "error: expected a name (drop=NAME,NAME…), found '*a,,b'"},
      {"update m.so from=start", "error: from takes end"},
      {"update m.so partitions=0", "error: expected an integer >= 1, found '0'"},
      {"update m.so partitions=1025", "error: expected an integer <= 1024"},
      {"update m.so colour=red", "error: unexpected 'colour=red'"},
      {"recompute", "error: missing MODULE: usage: recompute MODULE PSTATE…"},
      {"recompute evolve", "error: missing PSTATE: usage: recompute MODULE PSTATE…"},
      {"update /nonexistent/x.so",
       "error: cannot read module file /nonexistent/x.so: No such file or directory"},
      // A directory used to abort the shell (an exception from the stream buffer).
      {"update /tmp", "error: cannot read module file /tmp: it is a directory"},
      {"deploy /tmp", "error: cannot read module file /tmp: it is a directory"},
      {"deploy m.so replication=0", "error: expected an integer >= 1, found '0'"},
      {"deploy m.so replication=17", "error: expected an integer <= 16"},
      {"deploy m.so min_isr=x", "error: expected an integer"},
  };
  for (const auto& [command, message] : refused) {
    run = Run({"-c", command});
    EXPECT_EQ(run.exit_code, 1) << command;
    EXPECT_TRUE(run.err.starts_with(message)) << command << "\n" << run.err;
  }
}

// invoke and select … all-partitions with the test module driver_queries
// (tests/driver/testdata/query_module.cc), deployed through the shell.
// A line of `watch --json` that holds a diff, back as the Diff it shows.
Diff DiffFromDocument(const Value& doc) {
  Diff diff;
  std::optional<Diff::Op> op = DiffOpFromName(doc.Find(Value("op"))->as_string());
  EXPECT_TRUE(op.has_value()) << ToJson(doc);
  diff.op = op.value_or(Diff::Op::kResync);
  if (const Value* at = doc.Find(Value("at"))) diff.at = at->as_list();
  if (const Value* key = doc.Find(Value("key"))) diff.key = *key;
  if (const Value* value = doc.Find(Value("value"))) diff.value = *value;
  if (const Value* index = doc.Find(Value("index"))) diff.index = index->as_int();
  return diff;
}

TEST_F(ShellTest, WatchShowsTheValueThenEachChangeUntilItsCount) {
  ShellRun run = Run({"-c", "append wordcount *sentences \"The cat, the hat.\""});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  // watch-one shows the one value, watch (here with --json) the list of values selected.
  const pid_t text = Spawn({"-c", "watch-one wordcount $$word_counts key(\"the\") count=2"}, "1");
  const pid_t json =
      Spawn({"--json", "-c", "watch wordcount $$word_counts key(\"the\") count=2"}, "2");
  // Subscribed once the current value is shown: each append below is a change they see.
  ASSERT_TRUE(WaitForOutput("1", "2\n")) << ReadFile(dir_ + "/stderr1");
  ASSERT_TRUE(WaitForOutput("2", "\n")) << ReadFile(dir_ + "/stderr2");
  // Commits close together may arrive as one change: the second append waits until both
  // watches have shown the first.
  run = Run({"-c", "append wordcount *sentences \"the dog\""});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(WaitForOutput("1", "replace [] 3\n")) << ReadFile(dir_ + "/stderr1");
  ASSERT_TRUE(WaitForOutput("2", "\"update\":1")) << ReadFile(dir_ + "/stderr2");
  run = Run({"-c", "append wordcount *sentences \"The end\""});
  ASSERT_EQ(run.exit_code, 0) << run.err;

  run = Finish(text, "1");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.out, "2\nreplace [] 3\nreplace [] 4\n");

  run = Finish(json, "2");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.err, "");
  std::istringstream lines(run.out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  Result<Value> first = ParseJson(line);
  ASSERT_TRUE(first.ok()) << line;
  ASSERT_NE(first->Find(Value("partition")), nullptr) << line;
  ASSERT_NE(first->Find(Value("value")), nullptr) << line;
  // The diffs of updates 1 and 2, applied in order, turn the first value into the last.
  Value watched = *first->Find(Value("value"));
  EXPECT_EQ(ToJson(watched), "[2]");
  int64_t last_update = 0;
  while (std::getline(lines, line)) {
    Result<Value> doc = ParseJson(line);
    ASSERT_TRUE(doc.ok()) << line;
    const int64_t update = doc->Find(Value("update"))->as_int();
    EXPECT_TRUE(update == last_update || update == last_update + 1) << line;
    last_update = update;
    Status applied = ApplyDiff(&watched, DiffFromDocument(*doc));
    EXPECT_TRUE(applied.ok()) << applied.message();
  }
  EXPECT_EQ(last_update, 2) << run.out;
  EXPECT_EQ(ToJson(watched), "[4]");
}

TEST_F(ShellTest, CtrlCEndsAWatchAndTheScriptGoesOn) {
  const std::string script =
      "watch-one wordcount $$word_counts key(\"cat\")\n"
      "select-one wordcount $$word_counts key(\"cat\")\n";
  const pid_t watch = Spawn({"-c", script}, "1");
  ASSERT_TRUE(WaitForOutput("1", "null\n")) << ReadFile(dir_ + "/stderr1");
  ShellRun run = Run({"-c", "append wordcount *sentences \"a cat\""});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(WaitForOutput("1", "replace [] 1\n")) << ReadFile(dir_ + "/stderr1");
  ASSERT_EQ(kill(watch, SIGINT), 0);
  run = Finish(watch, "1");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.out, "null\nreplace [] 1\nstopped watching after 1 change\n1\n");
}

TEST_F(ShellTest, WatchErrorsAndEnds) {
  ShellRun run = Run({"-c", "watch wordcount $$nope key(\"the\")"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, "error: NOT_FOUND: module wordcount has no PState $$nope\n");
  run = Run({"-c", "watch wordcount $$word_counts key(\"the\") count=0"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find("expected an integer >= 1, found '0'"), std::string::npos) << run.err;
  run = Run({"-c", "help watch"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(run.out.starts_with(
      "usage: watch MODULE PSTATE [partition_key=JSON] PATH [count=N]\nSubscribes to"))
      << run.out;

  // The server ends a watch of a destroyed module: the reason, and the script goes on.
  pid_t watch = Spawn({"-c", "watch-one bank $$balances key(\"alice\")\nmodules"}, "1");
  ASSERT_TRUE(WaitForOutput("1", "null\n")) << ReadFile(dir_ + "/stderr1");
  run = Run({"-c", "destroy bank --yes"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = Finish(watch, "1");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.starts_with(
      "null\nwatch ended by the server: NOT_FOUND: module bank was destroyed\nmodule "))
      << run.out;

  // A lost connection is an error, with the exit status of an unreachable server.
  watch = Spawn({"--json", "-c", "watch-one wordcount $$word_counts key(\"the\")"}, "2");
  ASSERT_TRUE(WaitForOutput("2", "{\"partition\":")) << ReadFile(dir_ + "/stderr2");
  server_.Stop(SIGKILL);
  run = Finish(watch, "2");
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_NE(run.out.find("\n{\"error\":{\"kind\":\"connection\""), std::string::npos) << run.out;
}

class ShellQueryTest : public ShellTest {
 protected:
  void SetUp() override {
    ShellTest::SetUp();
    std::string script = "deploy " + std::string(QUERY_MODULE) + " partitions=8\n";
    for (int i = 0; i < 12; ++i) {
      const std::string n = std::to_string(i);
      script.append("append driver_queries *items {\"key\": \"k").append(n);
      script.append("\", \"value\": ").append(n).append("}\n");
    }
    ShellRun run = Run({}, script);
    ASSERT_EQ(run.exit_code, 0) << run.err;
  }
};

TEST_F(ShellQueryTest, InvokeShowsResultsAndErrorsWithTheirCodes) {
  ShellRun run = Run({}, R"(invoke driver_queries total
invoke driver_queries get "k3"
invoke driver_queries echo {"a": 1} [2, "x"] timeout=500
invoke driver_queries count timeout=3600000
)");
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "66\n[3]\n[[{\"a\":1},[2,\"x\"]]]\n12\n");

  run = Run({"--json", "-c", "invoke driver_queries get \"k11\""});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "[11]\n");

  const std::vector<std::pair<std::string, std::string>> failing = {
      {"invoke driver_queries fail \"out of cheese\"",
       "error: QUERY_FAILED: query driver_queries/fail, op 0: out of cheese"},
      {"invoke driver_queries write", "error: QUERY_FAILED: query driver_queries/write"},
      {"invoke driver_queries slow 2000 timeout=30",
       "error: TIMEOUT: query driver_queries/slow did not finish within its timeout"},
      {"invoke driver_queries get 5", "error: SCHEMA_VIOLATION: query driver_queries/get"},
      {"invoke driver_queries get", "error: INVALID_ARGUMENT: query driver_queries/get takes 1"},
      {"invoke driver_queries nope", "error: NOT_FOUND: module driver_queries has no query nope"},
      {"invoke driver_queries", "error: missing QUERY: usage: invoke MODULE QUERY"},
      {"invoke driver_queries get \"k1\" timeout=0", "error: expected an integer >= 1, found '0'"},
      {"invoke driver_queries get \"k1\" timeout=3600001", "error: expected an integer <= 3600000"},
      {"invoke driver_queries get k1", "error: "},
  };
  for (const auto& [command, message] : failing) {
    run = Run({"-c", command});
    EXPECT_EQ(run.exit_code, 1) << command;
    EXPECT_TRUE(run.err.starts_with(message)) << command << "\n" << run.err;
  }
  run = Run({"--json", "-c", "invoke driver_queries fail \"boom\""});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.out.find(R"("code":"QUERY_FAILED")"), std::string::npos) << run.out;

  run = Run({"-c", "describe driver_queries"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("query          parameters\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("get            key: string\n"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("echo           a: any, b: any\n"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("depends on"), std::string::npos) << run.out;
  run = Run({"--json", "-c", "describe driver_queries"});
  EXPECT_NE(
      run.out.find(
          R"({"name":"slow","params":[{"name":"n","schema":"int64","schema_text":"int64"}]})"),
      std::string::npos)
      << run.out;

  run = Run({"-c", "help invoke"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(run.out.starts_with("usage: invoke MODULE QUERY [ARG…] [timeout=MS]\n")) << run.out;
}

// The rows of the key/value tables in `out`: "KEY VALUE" per row.
std::vector<std::string> PageRows(const std::string& out) {
  std::vector<std::string> rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > 1 && line[0] == 'k' && std::isdigit(static_cast<unsigned char>(line[1]))) {
      rows.push_back(line);
    }
  }
  return rows;
}

TEST_F(ShellQueryTest, SelectAllPartitionsPagesThroughThePStateWithNext) {
  ShellRun run = Run({}, R"(select driver_queries $$items all-partitions limit=5
next
next
)");
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(run.exit_code, 0);
  std::vector<std::string> rows = PageRows(run.out);
  std::set<std::string> seen(rows.begin(), rows.end());
  std::set<std::string> expected;
  for (int i = 0; i < 12; ++i) {
    const std::string key = std::string("k").append(std::to_string(i));
    expected.insert(key + std::string(4 - key.size() + 1, ' ') + std::to_string(i));
  }
  EXPECT_EQ(rows.size(), 12u) << run.out;
  EXPECT_EQ(seen, expected) << run.out;
  EXPECT_NE(run.out.find("(5 entries shown so far; type next for more)\n"), std::string::npos)
      << run.out;
  EXPECT_NE(run.out.find("(10 entries shown so far; type next for more)\n"), std::string::npos)
      << run.out;
  EXPECT_EQ(run.out.find("(12 entries"), std::string::npos) << run.out;

  // One more next has nothing to show; a next without a paged select neither.
  run = Run({}, "select driver_queries items all-partitions map_keys limit=20\nnext\n");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(run.out.starts_with("[\"k")) << run.out;
  EXPECT_EQ(run.err, "error: the last select of items all-partitions showed its last page\n");
  run = Run({"-c", "next"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.err, "error: no select … all-partitions to continue: run one first\n");

  run = Run({"--json", "-c", "select driver_queries $$items all-partitions map_keys limit=3"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  Result<Value> doc = ParseJson(run.out);
  ASSERT_TRUE(doc.ok()) << run.out;
  EXPECT_EQ(*doc->Find(Value("more")), Value(true)) << run.out;
  EXPECT_EQ(doc->Find(Value("values"))->as_list().size(), 3u) << run.out;

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"select driver_queries $$items all-partitions limit=0",
       "error: expected an integer >= 1, found '0'"},
      {"select driver_queries $$items all-partitions limit=10001",
       "error: expected an integer <= 10000"},
      {"select-one driver_queries $$items all-partitions",
       "error: select-one reads one partition: use select driver_queries $$items all-partitions"},
      {"select driver_queries $$items all-partitions key(\"k1\").set(3)",
       "error: select paths are for reading"},
      {"select driver_queries $$nope all-partitions", "error: NOT_FOUND: "},
  };
  for (const auto& [command, message] : refused) {
    run = Run({"-c", command});
    EXPECT_EQ(run.exit_code, 1) << command;
    EXPECT_TRUE(run.err.starts_with(message)) << command << "\n" << run.err;
  }
}

TEST_F(ShellQueryTest, DescribeNamesTheModulesADependentUses) {
  ShellRun run = Run({"-c", "deploy " + std::string(MIRROR_MODULE)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  run = Run({"-c", "describe driver_mirror"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("item            key: string\n"), std::string::npos) << run.out;
  EXPECT_TRUE(run.out.ends_with("(2 rows)\ndepends on: driver_queries\n")) << run.out;
  run = Run({"--json", "-c", "describe driver_mirror"});
  EXPECT_NE(run.out.find(R"("depends_on":["driver_queries"])"), std::string::npos) << run.out;
  run = Run({"-c", "invoke driver_mirror total-of-items"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "[66]\n");
}

}  // namespace
}  // namespace strata::shell
