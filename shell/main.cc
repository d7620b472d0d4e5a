// strata: the interactive shell for stratad (docs/shell.md).
//
//   strata                         interactive (line editing, history, Tab completion)
//   strata -c 'modules'            one command (or a script in the string), then exit
//   strata -f tour.strata          a script file;  strata < tour.strata  the same
//
// Exit status: 0 every command succeeded; 1 a command failed; 2 bad flags or an unreadable
// script; 3 the server could not be reached. A script stops at its first failing command
// unless --keep-going.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "command.h"
#include "line_editor.h"
#include "session.h"

namespace {

using strata::shell::Session;
using Outcome = Session::Outcome;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

// Runs a script: one command per line; a command continues on the next lines while a
// string, ( [ or { is open (joined with spaces). Returns the exit status.
int RunScript(Session& session, std::istream& in, bool keep_going) {
  int status = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::string text = line;
    while (strata::shell::NeedsMoreInput(text) && std::getline(in, line)) text += " " + line;
    Outcome outcome = session.Run(text);
    if (outcome == Outcome::kQuit) break;
    if (outcome == Outcome::kOk) continue;
    if (status != kExitUnreachable)
      status = outcome == Outcome::kUnreachable ? kExitUnreachable : kExitFailed;
    if (!keep_going) break;
  }
  return status;
}

std::string HistoryFile() {
  const char* home = std::getenv("HOME");
  return home != nullptr && *home != '\0' ? std::string(home) + "/.strata_history" : "";
}

int RunInteractive(Session& session) {
  strata::shell::LineEditor editor(
      "strata", HistoryFile(), [&](std::string_view line) { return session.Completions(line); });
  session.set_confirm_destroy([&](const std::string& module) {
    std::optional<std::string> answer = editor.ReadLine(
        "destroy module " + module + " and ALL its data? type its name to confirm: ");
    return answer && *answer == module;
  });
  if (session.Connect()) {
    std::cout << "Connected to " << session.ServerDescription()
              << ". Type help for the commands, quit to leave.\n";
  } else {
    std::cout << "Commands will try to connect again. Type help for the commands, quit to leave.\n";
  }
  while (true) {
    std::optional<std::string> text = editor.ReadLine("strata> ");
    if (!text) {
      std::cout << "\n";
      break;
    }
    while (strata::shell::NeedsMoreInput(*text)) {
      std::optional<std::string> more = editor.ReadLine("   ...> ");
      if (!more) break;
      *text += " " + *more;
    }
    if (text->find_first_not_of(" \t") != std::string::npos) editor.AddHistory(*text);
    if (session.Run(*text) == Outcome::kQuit) break;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "strata: the Strata shell. Runs commands against stratad interactively, from -c, "
      "from a script file (-f) or from standard input. See docs/shell.md."};
  strata::shell::SessionOptions options;
  std::string command, file;
  bool keep_going = false;
  int port = options.client.port;
  app.add_option("--host", options.client.host, "Server host")->capture_default_str();
  app.add_option("--port", port, "Server port")->check(CLI::Range(1, 65535))->capture_default_str();
  app.add_option("--seed", options.client.seeds,
                 "Another node of the same cluster, HOST:PORT (repeatable): tried after "
                 "--host:--port, and requests about a module go to the node that leads it");
  app.add_option("-c,--command", command, "Run COMMAND (or several, one per line) and exit");
  app.add_option("-f,--file", file, "Run the script FILE and exit");
  app.add_flag("--json", options.json, "Print one JSON document per command result, errors too");
  app.add_flag("--keep-going", keep_going,
               "In scripts, run the commands after a failing one too (the exit status is still 1)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  if (!command.empty() && !file.empty()) {
    std::cerr << "strata: give -c or -f, not both\n";
    return kExitUsage;
  }
  options.client.port = static_cast<uint16_t>(port);
  options.client.client_name = "strata-shell";
  options.terminal = isatty(STDOUT_FILENO) != 0;

  if (!command.empty() || !file.empty() || !isatty(STDIN_FILENO)) {
    Session session(options, std::cout, std::cerr);
    if (!command.empty()) {
      std::istringstream in(command);
      return RunScript(session, in, keep_going);
    }
    if (!file.empty()) {
      std::error_code ec;
      std::ifstream in(file);
      if (!in || std::filesystem::is_directory(file, ec)) {
        std::cerr << "strata: cannot read script " << file
                  << (std::filesystem::is_directory(file, ec) ? ": it is a directory" : "") << "\n";
        return kExitUsage;
      }
      return RunScript(session, in, keep_going);
    }
    return RunScript(session, std::cin, keep_going);
  }
  Session session(options, std::cout, std::cerr);
  return RunInteractive(session);
}
