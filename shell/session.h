// A shell session: runs commands (shell/command.h) against one stratad through the C++
// driver and writes their results for people (tables, JSON) or for programs (--json: one
// JSON document per command). docs/shell.md describes the commands and the output.
//
// Single-threaded: Run and Completions are called from one thread (the shell's main
// thread, also inside libedit's completion callback). The connection is opened by the
// first command that needs the server, and re-opened by the driver after it breaks.
#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "command.h"
#include "strata/client.h"

namespace strata::shell {

struct SessionOptions {
  ClientOptions client;
  bool json = false;  // one JSON document per command result (errors too) on `out`
  // `out` is a terminal: progress (recompute) redraws one line instead of printing a line
  // per step.
  bool terminal = false;
  // Asks a person to confirm `destroy MODULE` without --yes; true goes ahead. Unset in
  // scripts, where such a destroy fails and asks for --yes.
  std::function<bool(const std::string& module)> confirm_destroy;
};

class Session {
 public:
  enum class Outcome {
    kOk,
    kFailed,       // the command was wrong, or the server refused it
    kUnreachable,  // the server could not be reached (connect failed or connection lost)
    kQuit,
  };

  // Results go to `out`; errors go to `err` (in JSON mode to `out`, as {"error": …}).
  // Both must outlive the session.
  Session(SessionOptions options, std::ostream& out, std::ostream& err);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs one command (continuation lines already joined). Blank text and text starting
  // with '#' (a comment) do nothing.
  Outcome Run(std::string_view text);

  void set_confirm_destroy(std::function<bool(const std::string& module)> confirm) {
    options_.confirm_destroy = std::move(confirm);
  }

  // Connects now; false (after printing why to `err`) when the server cannot be reached.
  bool Connect();
  std::string ServerDescription() const;  // "stratad 0.1.0 at 127.0.0.1:7450"

  // Completions of the last word of `line` (the text before the cursor): command names
  // first, then module names, then depot or PState names of the module named before, as
  // the command's arguments ask. Names come from the server (cached until a deploy or
  // destroy); an unreachable server completes no names.
  std::vector<std::string> Completions(std::string_view line);

 private:
  Outcome Execute(const Command& c, std::string_view text);
  Outcome Help(const Command& c);
  Outcome Modules();
  Outcome Placement();
  Outcome Rebalance();
  // Shows a placement (of placement or rebalance).
  Outcome ShowPlacement(const protocol::Placement& placement);
  Outcome Describe(const Command& c);
  Outcome Deploy(const Command& c);
  Outcome Update(const Command& c);
  Outcome Recompute(const Command& c);
  // Shows the progress of the module's running recompute (from Stats, ~5 times a second)
  // until it no longer runs, or until Ctrl-C (SIGINT), which stops the watching only.
  Outcome WatchRecompute(Client& client, const std::string& module,
                         const std::vector<std::string>& pstates);
  Outcome Destroy(const Command& c);
  Outcome Append(const Command& c);
  Outcome Select(const Command& c);
  // select … all-partitions: the first page, and the cursor that `next` continues.
  Outcome SelectPage(const Command& c);
  Outcome Next();
  // Fetches and shows the page of page_ at its token, then moves page_ to the next one.
  Outcome ShowPage(Client& client);
  // watch, watch-one: subscribes, shows the value, then its changes until Ctrl-C (SIGINT),
  // count=N changes or the server's end of the subscription; unsubscribes unless the server
  // ended it or the connection broke.
  Outcome Watch(const Command& c);
  Outcome Invoke(const Command& c);
  Outcome Scan(const Command& c);
  Outcome Stats(const Command& c);

  // The client, connecting first if needed; nullptr after reporting the error.
  Client* EnsureClient();
  Outcome ReportParseError(std::string_view text, const TextError& error);
  Outcome ReportClientError(const ClientError& error);
  Outcome ReportError(const std::string& message);
  void Emit(const Value& json_document, const std::string& text);
  const std::vector<protocol::ModuleInfo>& CachedModules();

  SessionOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<Client> client_;
  bool timing_ = false;
  std::optional<std::vector<protocol::ModuleInfo>> modules_cache_;
  // Where the last select … all-partitions stands: what `next` fetches.
  struct PageCursor {
    std::string module;
    std::string pstate;
    Path path;
    int64_t limit = 100;
    std::string token;  // the next page's; empty once the last page was shown
    int64_t shown = 0;  // entries shown by the pages so far
  };
  std::optional<PageCursor> page_;
};

}  // namespace strata::shell
