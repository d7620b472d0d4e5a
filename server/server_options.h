// stratad's configuration: command-line flags, or the same options from a TOML/INI file
// given with --config (CLI11 config files; a flag on the command line wins over the file).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "strata/protocol/frame.h"
#include "strata/status.h"

namespace strata::server {

struct ListenAddress {
  std::string host;  // an address literal ("127.0.0.1", "::1") or a name ("localhost")
  uint16_t port = 0;  // 0: the kernel chooses; the "listening on" line shows the real one
};

struct ServerOptions {
  std::string data_dir = "./strata-data";
  ListenAddress listen{"127.0.0.1", 7450};
  uint64_t cache_size_bytes = 512ull << 20;
  // Checkpoints: every checkpoint_interval_s, and after checkpoint_log_bytes of log (0: by
  // time only). The log since the last checkpoint is what a restart after a crash replays.
  int checkpoint_interval_s = 60;
  uint64_t checkpoint_log_bytes = 16ull << 20;
  uint32_t max_frame_size = protocol::kDefaultMaxFrameSize;
  // Per connection: requests being processed at once, and response bytes queued for the
  // socket. At either cap the server stops reading the connection until it drops below.
  uint32_t max_in_flight = 256;
  uint64_t max_queued_bytes = 8ull << 20;
  int idle_timeout_s = 300;  // a connection with no request and nothing in flight is closed
  int write_timeout_s = 30;  // a response write that makes no progress this long closes
  // A request frame not complete this long after its first byte arrived closes its
  // connection (a client trickling bytes).
  int frame_timeout_s = 30;
  // Server-wide: bytes all connections together may hold in request frames being received
  // beyond their own 64 KiB read buffers; a connection whose frame would go above it is
  // answered OVERLOADED and closed.
  uint64_t max_partial_frame_bytes = 256ull << 20;
  int io_threads = 0;        // one io_context each; 0: one per core
  int task_threads = 0;      // engine task threads; 0: one per core
  int64_t step_timeout_ms = 10'000;  // EngineOptions::step_timeout_ms (0: no limit)
  uint64_t min_free_disk_bytes = 64ull << 20;  // EngineOptions::min_free_disk_bytes
  std::vector<std::string> deploy;  // module files deployed at start unless already deployed
  // Open even when the storage log has a damaged record with valid records after it, losing
  // them (EngineOptions::accept_log_loss; docs/storage.md, "Damaged log").
  bool accept_log_loss = false;
};

// "HOST:PORT" or "[IPV6]:PORT".
Result<ListenAddress> ParseListenAddress(std::string_view text);
// "HOST:PORT", with brackets around an IPv6 host.
std::string FormatListenAddress(const std::string& host, uint16_t port);

// Parses the command line (and the --config file it names). Returns the options, or the
// exit code when the process is done: 0 after --help or --version, non-zero after a usage
// error; in both cases the text for the user has been printed.
std::variant<ServerOptions, int> ParseCommandLine(int argc, char** argv);

}  // namespace strata::server
