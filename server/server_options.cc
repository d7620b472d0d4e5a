#include "server_options.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <map>
#include <thread>
#include <utility>

#include <CLI/CLI.hpp>

#include "cluster_url.h"
#include "membership.h"

namespace strata::server {

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument("listen address '" + std::string(text) +
                                     "' must look like [IPV6]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) {
      return Status::InvalidArgument("listen address '" + std::string(text) +
                                     "' must look like HOST:PORT (or [IPV6]:PORT)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) {
    return Status::InvalidArgument("listen address '" + std::string(text) + "' has no host");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return Status::InvalidArgument("listen address '" + std::string(text) + "' has port '" +
                                   std::string(port) + "', not a number from 0 to 65535");
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(value)};
}

std::string FormatListenAddress(const std::string& host, uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

// A size as the size flags read it back (CLI::AsSizeValue(false): 1 KB = 1024 bytes),
// for the defaults --help shows: "512MB", "1GB", "100KB", or bytes.
std::string SizeText(uint64_t bytes) {
  constexpr std::pair<const char*, int> kUnits[] = {{"GB", 30}, {"MB", 20}, {"KB", 10}};
  for (const auto& [unit, shift] : kUnits) {
    if (bytes != 0 && bytes % (uint64_t{1} << shift) == 0) {
      return std::to_string(bytes >> shift) + unit;
    }
  }
  return std::to_string(bytes);
}

std::string SecondsText(int seconds) { return std::to_string(seconds) + "s"; }

// The engine's settings (EngineOptions, whose defaults they show): each a flag and a
// config file key.
void AddEngineOptions(CLI::App& app, EngineOptions& engine,
                      const std::map<std::string, int>& seconds_units) {
  const EngineOptions defaults;
  app.add_option("--data-dir", engine.data_dir, "Data directory (created when missing)")
      ->capture_default_str();
  app.add_option("--cache-size", engine.cache_size_bytes,
                 "Storage cache size (bounds the memory used), e.g. 512MB, 2GB")
      ->transform(CLI::AsSizeValue(false))
      ->default_str(SizeText(defaults.cache_size_bytes));
  app.add_option("--checkpoint-interval", engine.checkpoint_interval_s,
                 "Take a storage checkpoint this often, e.g. 60s, 5min")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::Range(1, 86400))
      ->default_str(SecondsText(defaults.checkpoint_interval_s));
  app.add_option("--checkpoint-log-size", engine.checkpoint_log_bytes,
                 "Also take a checkpoint after this much log, e.g. 64MB (0: by time only; "
                 "raised to at least --log-file-size); bounds the log a restart after a crash "
                 "replays")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{0}, uint64_t{2} << 30))
      ->default_str(SizeText(defaults.checkpoint_log_bytes));
  app.add_option("--log-file-size", engine.log_file_max_bytes,
                 "Size of each storage log file (preallocated at full size), 100KB to 2GB")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{100} << 10, uint64_t{2} << 30))
      ->default_str(SizeText(defaults.log_file_max_bytes));
  app.add_option("--task-threads", engine.task_threads, "Engine task threads (0: one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  app.add_option("--max-step-attempts", engine.max_step_attempts,
                 "A failing topology step is tried this often, then recorded as a failure")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--max-in-flight-records", engine.max_in_flight_records,
                 "Appended records not yet fully processed, over all modules; a batch that "
                 "does not fit waits until records complete")
      ->check(CLI::Range(1, 1 << 30))
      ->capture_default_str();
  app.add_option("--max-subscriptions", engine.max_subscriptions,
                 "Live subscriptions open at once over the whole server (more are refused "
                 "with OVERLOADED)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30))
      ->capture_default_str();
  app.add_option("--min-free-disk", engine.min_free_disk_bytes,
                 "Refuse client appends (IO_ERROR) while the data directory's disk has less "
                 "available than this, e.g. 64MB (0: no check); reads go on")
      ->transform(CLI::AsSizeValue(false))
      ->default_str(SizeText(defaults.min_free_disk_bytes));
  app.add_option("--step-timeout-ms", engine.step_timeout_ms,
                 "A topology step running longer is rolled back and recorded as a failure, "
                 "without a retry (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--microbatch-max-records", engine.microbatch_max_records,
                 "A microbatch batch reads at most this many records of its source depots, "
                 "shared by their partitions (a batch commits in one transaction, which must "
                 "fit the cache)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->capture_default_str();
  app.add_option("--microbatch-max-bytes", engine.microbatch_max_bytes,
                 "A microbatch batch reads at most this many bytes of its source depots, "
                 "shared by their partitions (each gives at least one record), e.g. 16MB")
      ->transform(CLI::AsSizeValue(false))
      ->default_str(SizeText(defaults.microbatch_max_bytes));
  app.add_flag("--accept-log-loss", engine.accept_log_loss,
               "Start even though the storage log has a damaged record with valid records "
               "after it: recovery stops at the damaged record and those transactions are "
               "lost (see docs/storage.md, \"Damaged log\", first)");
}

}  // namespace

std::string EngineSettingsText(const EngineOptions& engine) {
  std::string text =
      "data dir " + engine.data_dir + ", cache-size " + SizeText(engine.cache_size_bytes) +
      ", checkpoint-interval " + SecondsText(engine.checkpoint_interval_s) +
      ", checkpoint-log-size " + SizeText(engine.checkpoint_log_bytes) + ", log-file-size " +
      SizeText(engine.log_file_max_bytes) + ", task-threads " +
      (engine.task_threads > 0 ? std::to_string(engine.task_threads) : "one per core") +
      ", max-step-attempts " + std::to_string(engine.max_step_attempts) +
      ", max-in-flight-records " + std::to_string(engine.max_in_flight_records) +
      ", step-timeout-ms " + std::to_string(engine.step_timeout_ms) + ", min-free-disk " +
      SizeText(engine.min_free_disk_bytes) + ", microbatch-max-records " +
      std::to_string(engine.microbatch_max_records) + ", microbatch-max-bytes " +
      SizeText(engine.microbatch_max_bytes) + ", max-subscriptions " +
      std::to_string(engine.max_subscriptions);
  if (engine.accept_log_loss) text += ", accept-log-loss";
  return text;
}

std::variant<ServerOptions, int> ParseCommandLine(int argc, char** argv) {
  ServerOptions options;
  const ServerOptions defaults;
  CLI::App app{"stratad: the Strata server. Serves the binary protocol (docs/protocol.md)."};
  app.set_version_flag("--version", std::string("stratad ") + STRATA_VERSION);
  app.set_config("--config", "", "Read these options from a TOML/INI file (key = value)");

  const std::map<std::string, int> seconds_units = {{"s", 1}, {"min", 60}, {"h", 3600}};
  AddEngineOptions(app, options.engine, seconds_units);
  std::string listen = FormatListenAddress(options.listen.host, options.listen.port);
  app.add_option("--listen", listen, "Address of the protocol port: HOST:PORT or [IPV6]:PORT")
      ->capture_default_str();
  app.add_option("--max-frame-size", options.max_frame_size,
                 "Largest frame payload accepted or sent, e.g. 16MB")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint32_t{1024}, uint32_t{1u << 30}))
      ->default_str(SizeText(defaults.max_frame_size));
  app.add_option("--max-in-flight", options.max_in_flight,
                 "Requests processed at once per connection (reading pauses at the cap)")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--max-queued-bytes", options.max_queued_bytes,
                 "Response bytes queued per connection before reading pauses, e.g. 8MB")
      ->transform(CLI::AsSizeValue(false))
      ->default_str(SizeText(defaults.max_queued_bytes));
  app.add_option("--max-subscriptions-per-connection", options.max_subscriptions_per_connection,
                 "Live subscriptions one connection may hold")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--subscription-buffer", options.subscription_buffer_bytes,
                 "Subscription updates a connection may have waiting for a slow reader, e.g. "
                 "1MB; past it a subscription's waiting updates collapse into one RESYNC")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 34))
      ->default_str(SizeText(defaults.subscription_buffer_bytes));
  app.add_option("--idle-timeout", options.idle_timeout_s,
                 "Close a connection idle this long, e.g. 300s, 5min")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::PositiveNumber)
      ->default_str(SecondsText(defaults.idle_timeout_s));
  app.add_option("--write-timeout", options.write_timeout_s,
                 "Close a connection whose response write makes no progress this long")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::PositiveNumber)
      ->default_str(SecondsText(defaults.write_timeout_s));
  app.add_option("--frame-timeout", options.frame_timeout_s,
                 "Close a connection whose request frame is not complete this long after its "
                 "first byte arrived, e.g. 30s")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::PositiveNumber)
      ->default_str(SecondsText(defaults.frame_timeout_s));
  app.add_option("--max-partial-frame-bytes", options.max_partial_frame_bytes,
                 "Memory all connections together may hold in request frames being received, "
                 "e.g. 256MB; a frame that would go above it gets OVERLOADED and its "
                 "connection is closed")
      ->transform(CLI::AsSizeValue(false))
      ->default_str(SizeText(defaults.max_partial_frame_bytes));
  app.add_option("--threads", options.io_threads, "Network threads (0: one per core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  std::string http = FormatListenAddress(options.http.listen.host, options.http.listen.port);
  app.add_option("--http", http,
                 "Address of the HTTP port (REST API, /metrics, web console): HOST:PORT, "
                 "[IPV6]:PORT, or off")
      ->capture_default_str();
  app.add_flag("--http-admin", options.http.admin,
               "Also serve deploy, update, recompute and destroy over HTTP (they run module "
               "code: only behind an authenticating proxy)");
  app.add_option("--http-threads", options.http.threads,
                 "HTTP connections served at once (as many more wait in a queue)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  CLI::Option* max_streams =
      app.add_option("--http-max-streams", options.http.max_streams,
                     "Live subscription streams (Server-Sent Events) open at once over HTTP; "
                     "each holds one of the --http-threads, so it must be below them (more "
                     "get 503; default 4, at most --http-threads minus one)")
          ->check(CLI::Range(0, 1023))
          ->capture_default_str();
  app.add_option("--http-max-body", options.http.max_body,
                 "Largest HTTP request body, e.g. 16MB (larger ones get 413)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 30))
      ->default_str(SizeText(defaults.http.max_body));
  app.add_option("--http-timeout", options.http.timeout_s,
                 "Close an HTTP connection stalled this long mid-request or mid-response, and "
                 "answer 504 to a request not answered within it, e.g. 30s")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::PositiveNumber)
      ->default_str(SecondsText(defaults.http.timeout_s));
  app.add_option("--console-dir", options.http.console_dir,
                 "Directory of the web console's files (default: share/strata/console next "
                 "to the bin/ directory of stratad)");
  app.add_option("--cluster", options.cluster.url,
                 "Join the cluster whose coordination is in ZooKeeper at this URL: "
                 "zk://HOST:PORT[,HOST:PORT...]/PATH (PATH: the cluster's root znode, created "
                 "when missing); without it, ZooKeeper is not used");
  app.add_option("--node-id", options.cluster.node_id,
                 "This node's id in the cluster (1 to 64 of A-Z a-z 0-9 _ -; required with "
                 "--cluster)");
  app.add_option("--advertise", options.cluster.advertise,
                 "The protocol address other nodes and clients reach this node at, HOST:PORT "
                 "(default: the address --listen bound)");
  app.add_option("--cluster-session-timeout", options.cluster.session_timeout_s,
                 "The ZooKeeper session timeout: a node cut off this long leaves the cluster, "
                 "e.g. 6s (ZooKeeper bounds it to 2 to 20 of its ticks)")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::Range(1, 600))
      ->default_str(SecondsText(defaults.cluster.session_timeout_s));
  app.add_option("--replica-lag", options.cluster.replica_lag_s,
                 "A follower that has not had its leader's whole log for this long leaves the "
                 "in-sync replicas, so that acknowledgements stop waiting for it, e.g. 10s")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      ->check(CLI::Range(1, 3600))
      ->default_str(SecondsText(defaults.cluster.replica_lag_s));
  app.add_option("--replica-log-retention", options.cluster.log_retention,
                 "Entries each replica group's log keeps behind its end; older ones are "
                 "deleted, and a replica further behind loads a snapshot of the leader's rows "
                 "instead (0: keep the whole log)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--auto-rebalance", options.cluster.auto_rebalance_s,
                 "When the placement has stayed unbalanced this long (a node joined, "
                 "leaderships piled up after failovers), the controller rebalances it, e.g. "
                 "60s; 0 or off: only when asked (rebalance)")
      ->transform(CLI::AsNumberWithUnit(seconds_units))
      // (CLI11 applies an option's transforms last added first: "off" becomes 0 first.)
      ->transform(CLI::Validator(
          [](std::string& value) {
            if (value == "off") value = "0";
            return std::string();
          },
          ""))
      ->check(CLI::Range(0, 86400))
      ->default_str(SecondsText(defaults.cluster.auto_rebalance_s));
  app.add_option("--deploy", options.deploy,
                 "Module files (.so) to deploy at start unless a module of that name is "
                 "deployed");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  Result<ListenAddress> address = ParseListenAddress(listen);
  if (!address.ok()) {
    std::fprintf(stderr, "--listen: %s\n", address.status().message().c_str());
    return 2;
  }
  options.listen = *address;
  if (http == "off") {
    options.http.enabled = false;
  } else {
    Result<ListenAddress> http_address = ParseListenAddress(http);
    if (!http_address.ok()) {
      std::fprintf(stderr, "--http: %s (or off)\n", http_address.status().message().c_str());
      return 2;
    }
    options.http.listen = *http_address;
  }
  if (max_streams->count() == 0) {
    options.http.max_streams = std::min(options.http.max_streams, options.http.threads - 1);
  } else if (options.http.enabled && options.http.max_streams >= options.http.threads) {
    std::fprintf(stderr,
                 "--http-max-streams (%d) must be below --http-threads (%d): each stream holds "
                 "a thread, and the REST API needs at least one left\n",
                 options.http.max_streams, options.http.threads);
    return 2;
  }
  if (options.max_partial_frame_bytes < options.max_frame_size) {
    std::fprintf(stderr,
                 "--max-partial-frame-bytes (%llu) must be at least --max-frame-size (%u): "
                 "else a frame of the largest size could never be received\n",
                 static_cast<unsigned long long>(options.max_partial_frame_bytes),
                 options.max_frame_size);
    return 2;
  }
  if (!options.cluster.url.empty()) {
    Result<cluster::ClusterUrl> url = cluster::ParseClusterUrl(options.cluster.url);
    if (!url.ok()) {
      std::fprintf(stderr, "--cluster: %s\n", url.status().message().c_str());
      return 2;
    }
    if (options.cluster.node_id.empty()) {
      std::fprintf(stderr, "--cluster needs --node-id: this node's id in the cluster\n");
      return 2;
    }
    if (!cluster::ValidNodeId(options.cluster.node_id)) {
      std::fprintf(stderr, "--node-id '%s' must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -\n",
                   options.cluster.node_id.c_str());
      return 2;
    }
    if (!options.cluster.advertise.empty()) {
      Result<ListenAddress> advertise = ParseListenAddress(options.cluster.advertise);
      if (!advertise.ok() || advertise->port == 0) {
        std::fprintf(stderr,
                     "--advertise '%s' must look like HOST:PORT with a port from 1 to 65535\n",
                     options.cluster.advertise.c_str());
        return 2;
      }
    }
    options.cluster.enabled = true;
  } else if (!options.cluster.node_id.empty() || !options.cluster.advertise.empty()) {
    std::fprintf(stderr, "--node-id and --advertise need --cluster\n");
    return 2;
  }
  if (options.max_queued_bytes == 0) {
    std::fprintf(stderr, "--max-queued-bytes must be above 0\n");
    return 2;
  }
  return options;
}

}  // namespace strata::server
