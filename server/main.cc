// stratad: see server.h and docs/protocol.md.
#include <csignal>
#include <cstdio>

#include "log.h"
#include "server.h"
#include "server_options.h"

int main(int argc, char** argv) {
  using namespace strata::server;
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is a write error, not a crash
  std::variant<ServerOptions, int> parsed = ParseCommandLine(argc, argv);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  const ServerOptions& options = std::get<ServerOptions>(parsed);

  LogInfo(std::string("stratad ") + STRATA_VERSION +
          " starting: " + EngineSettingsText(options.engine));
  strata::Result<std::unique_ptr<Server>> server = Server::Create(options);
  if (!server.ok()) {
    LogError(server.status().message());
    return 1;
  }
  // The readiness line on stdout (scripts and tests wait for it); logs go to stderr.
  std::printf("listening on %s\n", (*server)->listen_address().c_str());
  if (const std::string http = (*server)->http_address(); !http.empty()) {
    std::printf("HTTP on http://%s/\n", http.c_str());
  }
  std::fflush(stdout);
  return (*server)->Run();
}
