// stratad's options: every engine setting (EngineOptions) is a flag and a config file key,
// the defaults are EngineOptions', and docs/operations.md lists every flag.
#include "server_options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace strata::server {
namespace {

// The number of fields of an aggregate: the most initializers T{...} accepts.
struct AnyField {
  template <typename T>
  operator T() const;  // only named in unevaluated contexts
};
template <typename T, typename... Fields>
constexpr size_t FieldCount() {
  if constexpr (requires { T{Fields{}..., AnyField{}}; }) {
    return FieldCount<T, Fields..., AnyField>();
  } else {
    return sizeof...(Fields);
  }
}

// EngineOptions' fields that are not settings: the callbacks and the logger stratad sets
// itself (on_fatal_storage_error, on_storage_warning, logger).
// ... and the two cluster settings stratad derives from --cluster (replicated, ack_gate).
constexpr size_t kEngineCallbacks = 5;

struct EngineSetting {
  std::vector<std::string> args;                     // on the command line
  std::string config_line;                           // the same in a config file
  std::function<bool(const EngineOptions&)> is_set;  // the field holds that value
};

// One row per EngineOptions setting, with a value other than its default.
const std::vector<EngineSetting>& EngineSettings() {
  static const std::vector<EngineSetting> settings = {
      {{"--data-dir", "/elsewhere"},
       "data-dir = \"/elsewhere\"",
       [](const EngineOptions& e) { return e.data_dir == "/elsewhere"; }},
      {{"--cache-size", "64MB"},
       "cache-size = \"64MB\"",
       [](const EngineOptions& e) { return e.cache_size_bytes == 64ull << 20; }},
      {{"--checkpoint-interval", "5min"},
       "checkpoint-interval = \"5min\"",
       [](const EngineOptions& e) { return e.checkpoint_interval_s == 300; }},
      {{"--checkpoint-log-size", "64MB"},
       "checkpoint-log-size = \"64MB\"",
       [](const EngineOptions& e) { return e.checkpoint_log_bytes == 64ull << 20; }},
      {{"--log-file-size", "1MB"},
       "log-file-size = \"1MB\"",
       [](const EngineOptions& e) { return e.log_file_max_bytes == 1ull << 20; }},
      {{"--task-threads", "3"},
       "task-threads = 3",
       [](const EngineOptions& e) { return e.task_threads == 3; }},
      {{"--max-step-attempts", "5"},
       "max-step-attempts = 5",
       [](const EngineOptions& e) { return e.max_step_attempts == 5; }},
      {{"--max-in-flight-records", "1000"},
       "max-in-flight-records = 1000",
       [](const EngineOptions& e) { return e.max_in_flight_records == 1000; }},
      {{"--max-subscriptions", "7"},
       "max-subscriptions = 7",
       [](const EngineOptions& e) { return e.max_subscriptions == 7; }},
      {{"--step-timeout-ms", "250"},
       "step-timeout-ms = 250",
       [](const EngineOptions& e) { return e.step_timeout_ms == 250; }},
      {{"--min-free-disk", "1GB"},
       "min-free-disk = \"1GB\"",
       [](const EngineOptions& e) { return e.min_free_disk_bytes == 1ull << 30; }},
      {{"--microbatch-max-records", "100"},
       "microbatch-max-records = 100",
       [](const EngineOptions& e) { return e.microbatch_max_records == 100; }},
      {{"--microbatch-max-bytes", "1MB"},
       "microbatch-max-bytes = \"1MB\"",
       [](const EngineOptions& e) { return e.microbatch_max_bytes == 1ull << 20; }},
      {{"--accept-log-loss"},
       "accept-log-loss = true",
       [](const EngineOptions& e) { return e.accept_log_loss; }},
  };
  return settings;
}

std::variant<ServerOptions, int> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "stratad");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ServerOptionsTest, EveryEngineSettingHasAFlag) {
  EXPECT_EQ(FieldCount<EngineOptions>(), EngineSettings().size() + kEngineCallbacks)
      << "EngineOptions has a setting stratad cannot set: add its flag (server_options.cc), "
         "its row in docs/operations.md's options table, and its row in EngineSettings()";
  for (const EngineSetting& setting : EngineSettings()) {
    EXPECT_FALSE(setting.is_set(EngineOptions{}))
        << setting.args[0] << ": pick a value other than the default";
    std::variant<ServerOptions, int> parsed = Parse(setting.args);
    ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed)) << setting.args[0];
    EXPECT_TRUE(setting.is_set(std::get<ServerOptions>(parsed).engine)) << setting.args[0];
  }
}

TEST(ServerOptionsTest, EveryEngineSettingIsAConfigFileKey) {
  const std::string config = (std::filesystem::temp_directory_path() /
                              ("stratad_options_" + std::to_string(getpid()) + ".toml"))
                                 .string();
  {
    std::ofstream out(config);
    for (const EngineSetting& setting : EngineSettings()) out << setting.config_line << "\n";
  }
  std::variant<ServerOptions, int> parsed = Parse({"--config", config});
  std::filesystem::remove(config);
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  for (const EngineSetting& setting : EngineSettings()) {
    EXPECT_TRUE(setting.is_set(std::get<ServerOptions>(parsed).engine)) << setting.config_line;
  }
}

TEST(ServerOptionsTest, WithoutFlagsTheEngineDefaultsApply) {
  std::variant<ServerOptions, int> parsed = Parse({});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  const EngineOptions& engine = std::get<ServerOptions>(parsed).engine;
  const EngineOptions defaults;
  EXPECT_EQ(engine.data_dir, defaults.data_dir);
  EXPECT_EQ(engine.cache_size_bytes, defaults.cache_size_bytes);
  EXPECT_EQ(engine.checkpoint_interval_s, defaults.checkpoint_interval_s);
  EXPECT_EQ(engine.checkpoint_log_bytes, defaults.checkpoint_log_bytes);
  EXPECT_EQ(engine.log_file_max_bytes, defaults.log_file_max_bytes);
  EXPECT_EQ(engine.task_threads, defaults.task_threads);
  EXPECT_EQ(engine.max_step_attempts, defaults.max_step_attempts);
  EXPECT_EQ(engine.max_in_flight_records, defaults.max_in_flight_records);
  EXPECT_EQ(engine.step_timeout_ms, defaults.step_timeout_ms);
  EXPECT_EQ(engine.min_free_disk_bytes, defaults.min_free_disk_bytes);
  EXPECT_EQ(engine.accept_log_loss, defaults.accept_log_loss);
}

TEST(ServerOptionsTest, OutOfRangeEngineSettingsAreUsageErrors) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--max-step-attempts", "0"},
                                             {"--max-in-flight-records", "0"},
                                             {"--log-file-size", "10KB"},
                                             {"--checkpoint-log-size", "3GB"}}) {
    std::variant<ServerOptions, int> parsed = Parse(args);
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << args[0] << " " << args[1];
    EXPECT_NE(std::get<int>(parsed), 0) << args[0] << " " << args[1];
  }
}

// Every flag --help lists has its row in docs/operations.md's options table.
TEST(ServerOptionsTest, OperationsDocListsEveryFlag) {
  testing::internal::CaptureStdout();
  std::variant<ServerOptions, int> parsed = Parse({"--help"});
  const std::string help = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(std::holds_alternative<int>(parsed));
  EXPECT_EQ(std::get<int>(parsed), 0);
  const std::string doc = ReadFile(STRATA_OPERATIONS_DOC);
  ASSERT_FALSE(doc.empty()) << "cannot read " << STRATA_OPERATIONS_DOC;
  const std::set<std::string> described_in_prose = {"--help", "--version", "--config"};
  const std::regex flag(R"(^\s+(?:-h,)?(--[a-z-]+))");
  int flags = 0;
  std::istringstream lines(help);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (!std::regex_search(line, match, flag) || described_in_prose.count(match[1]) != 0) continue;
    ++flags;
    EXPECT_TRUE(doc.find("\n| `" + match[1].str()) != std::string::npos)
        << match[1] << " has no row in docs/operations.md's options table";
  }
  EXPECT_GE(flags, static_cast<int>(EngineSettings().size())) << help;
}

// HTTP is on by default on 127.0.0.1:7451; --http moves it or turns it off, and its limits
// are flags.
TEST(ServerOptionsTest, HttpListenerFlags) {
  std::variant<ServerOptions, int> parsed = Parse({});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  const HttpSettings& defaults = std::get<ServerOptions>(parsed).http;
  EXPECT_TRUE(defaults.enabled);
  EXPECT_EQ(defaults.listen.host, "127.0.0.1");
  EXPECT_EQ(defaults.listen.port, 7451);
  EXPECT_FALSE(defaults.admin);
  EXPECT_EQ(defaults.max_streams, 4);

  parsed = Parse({"--http", "off"});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  EXPECT_FALSE(std::get<ServerOptions>(parsed).http.enabled);

  parsed = Parse({"--http", "[::1]:8080", "--http-admin", "--http-threads", "4", "--http-max-body",
                  "1MB", "--http-timeout", "2min", "--console-dir", "/c"});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  const HttpSettings& http = std::get<ServerOptions>(parsed).http;
  EXPECT_TRUE(http.enabled);
  EXPECT_EQ(http.listen.host, "::1");
  EXPECT_EQ(http.listen.port, 8080);
  EXPECT_TRUE(http.admin);
  EXPECT_EQ(http.threads, 4);
  EXPECT_EQ(http.max_body, 1u << 20);
  EXPECT_EQ(http.timeout_s, 120);
  EXPECT_EQ(http.console_dir, "/c");
  EXPECT_EQ(http.max_streams, 3);  // the default 4, kept below --http-threads

  parsed = Parse({"--http-threads", "8", "--http-max-streams", "7"});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  EXPECT_EQ(std::get<ServerOptions>(parsed).http.max_streams, 7);

  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--http", "nowhere"},
                                             {"--http", "127.0.0.1:99999"},
                                             {"--http-threads", "0"},
                                             {"--http-max-streams", "16"}}) {
    parsed = Parse(args);
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << args[0] << " " << args[1];
    EXPECT_NE(std::get<int>(parsed), 0) << args[0] << " " << args[1];
  }
}

// Cluster mode is off without --cluster; --cluster needs a valid URL and --node-id.
TEST(ServerOptionsTest, ClusterFlags) {
  std::variant<ServerOptions, int> parsed = Parse({});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  EXPECT_FALSE(std::get<ServerOptions>(parsed).cluster.enabled);
  EXPECT_EQ(std::get<ServerOptions>(parsed).cluster.session_timeout_s, 6);

  parsed = Parse({"--cluster", "zk://zk1:2181,zk2:2181/strata", "--node-id", "n-1", "--advertise",
                  "10.0.0.1:7450", "--cluster-session-timeout", "2s"});
  ASSERT_TRUE(std::holds_alternative<ServerOptions>(parsed));
  const ClusterSettings& cluster = std::get<ServerOptions>(parsed).cluster;
  EXPECT_TRUE(cluster.enabled);
  EXPECT_EQ(cluster.url, "zk://zk1:2181,zk2:2181/strata");
  EXPECT_EQ(cluster.node_id, "n-1");
  EXPECT_EQ(cluster.advertise, "10.0.0.1:7450");
  EXPECT_EQ(cluster.session_timeout_s, 2);

  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--cluster", "zk://zk1:2181/strata"},                  // no --node-id
           {"--cluster", "zk://zk1:2181", "--node-id", "n1"},      // no root path
           {"--cluster", "http://zk1:2181/s", "--node-id", "n1"},  // not zk://
           {"--cluster", "zk://zk1:2181/s", "--node-id", "n/1"},   // bad node id
           {"--cluster", "zk://zk1:2181/s", "--node-id", std::string(65, 'n')},
           {"--cluster", "zk://zk1:2181/s", "--node-id", "n1", "--advertise", "nowhere"},
           {"--cluster", "zk://zk1:2181/s", "--node-id", "n1", "--advertise", "h:0"},
           {"--node-id", "n1"},  // no --cluster
           {"--cluster-session-timeout", "0s"}}) {
    testing::internal::CaptureStderr();
    parsed = Parse(args);
    const std::string error = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(std::holds_alternative<int>(parsed)) << args[0] << " " << args[1];
    EXPECT_NE(std::get<int>(parsed), 0) << args[0] << " " << args[1];
    EXPECT_FALSE(error.empty());
  }
}

}  // namespace
}  // namespace strata::server
