// stratad's configuration: command-line flags, or the same options from a TOML/INI file
// given with --config (CLI11 config files; a flag on the command line wins over the file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "strata/engine.h"
#include "strata/protocol/frame.h"
#include "strata/status.h"

namespace strata::server {

struct ListenAddress {
  std::string host;   // an address literal ("127.0.0.1", "::1") or a name ("localhost")
  uint16_t port = 0;  // 0: the kernel chooses; the "listening on" line shows the real one
};

// The HTTP listener (REST, /metrics, the console; docs/http.md).
struct HttpSettings {
  bool enabled = true;  // --http off: false
  ListenAddress listen{"127.0.0.1", 7451};
  bool admin = false;               // deploy, update, recompute and destroy over HTTP
  int threads = 16;                 // connections served at once (as many more queue)
  int max_streams = 4;              // subscription event streams open at once (< threads)
  uint64_t max_body = 16ull << 20;  // larger request bodies get 413
  int timeout_s = 30;               // socket stall, and the wait for a request's answer
  std::string console_dir;          // empty: share/strata/console next to bin/stratad
};

// Cluster mode (docs/cluster.md): off unless --cluster is given.
struct ClusterSettings {
  bool enabled = false;
  std::string url;        // --cluster zk://HOST:PORT[,HOST:PORT...]/PATH (checked by the parser)
  std::string node_id;    // --node-id, [A-Za-z0-9_-]{1,64}; required with --cluster
  std::string advertise;  // --advertise HOST:PORT; empty: the address --listen bound
  int session_timeout_s = 6;
  // --replica-lag: a follower that has not had its leader's whole log for this long leaves
  // the in-sync replicas (the leader asks the controller), so that acknowledgements stop
  // waiting for it.
  int replica_lag_s = 10;
  // --replica-log-retention: each replica group's log keeps at least this many entries
  // behind its end; older ones are compacted away (0: never). A replica further behind
  // loads a snapshot of the leader's rows.
  int64_t log_retention = 1'000'000;
  // --auto-rebalance: the controller asks for a rebalance itself once the placement has
  // stayed unbalanced this long (docs/cluster.md, "Automatic rebalance"); 0: never.
  int auto_rebalance_s = 60;
};

// stratad's options: the engine's (their defaults are EngineOptions') and the server's own.
// Every setting is a flag and a config file key (ParseCommandLine, docs/operations.md);
// the engine's callbacks are set by the server, not by flags.
struct ServerOptions {
  EngineOptions engine;
  ListenAddress listen{"127.0.0.1", 7450};
  uint32_t max_frame_size = protocol::kDefaultMaxFrameSize;
  // Per connection: requests being processed at once, and response bytes queued for the
  // socket. At either cap the server stops reading the connection until it drops below.
  uint32_t max_in_flight = 256;
  uint64_t max_queued_bytes = 8ull << 20;
  // Live subscriptions (docs/subscriptions.md): per connection at most this many, and this
  // many bytes of updates waiting for a slow reader before they collapse into a RESYNC.
  // The server-wide cap is engine.max_subscriptions (--max-subscriptions).
  size_t max_subscriptions_per_connection = 10'000;
  uint64_t subscription_buffer_bytes = 1ull << 20;
  int idle_timeout_s = 300;  // a connection with no request and nothing in flight is closed
  int write_timeout_s = 30;  // a response write that makes no progress this long closes
  // A request frame not complete this long after its first byte arrived closes its
  // connection (a client trickling bytes).
  int frame_timeout_s = 30;
  // Server-wide: bytes all connections together may hold in request frames being received
  // beyond their own 64 KiB read buffers; a connection whose frame would go above it is
  // answered OVERLOADED and closed.
  uint64_t max_partial_frame_bytes = 256ull << 20;
  int io_threads = 0;               // one io_context each; 0: one per core
  std::vector<std::string> deploy;  // module files deployed at start unless already deployed
  HttpSettings http;
  ClusterSettings cluster;
};

// "HOST:PORT" or "[IPV6]:PORT".
Result<ListenAddress> ParseListenAddress(std::string_view text);
// "HOST:PORT", with brackets around an IPv6 host.
std::string FormatListenAddress(const std::string& host, uint16_t port);

// The engine settings for the log's start line: "data dir DIR, cache-size 512MB, ...",
// each named by its flag.
std::string EngineSettingsText(const EngineOptions& engine);

// Parses the command line (and the --config file it names). Returns the options, or the
// exit code when the process is done: 0 after --help or --version, non-zero after a usage
// error; in both cases the text for the user has been printed.
std::variant<ServerOptions, int> ParseCommandLine(int argc, char** argv);

}  // namespace strata::server
