// A real build/bin/stratad child process for the server, driver and shell tests: started
// on 127.0.0.1 (port 0 unless told) with a data directory, ready once it printed
// "listening on HOST:PORT". Library strata_testing_stratad (tests/testing/CMakeLists.txt).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strata::server_test {

class StratadProcess {
 public:
  StratadProcess() = default;
  // Kills (SIGKILL) a process still running.
  ~StratadProcess();
  StratadProcess(const StratadProcess&) = delete;
  StratadProcess& operator=(const StratadProcess&) = delete;

  // Starts stratad --data-dir data_dir --listen 127.0.0.1:PORT plus `extra_args` (and
  // --http off unless `extra_args` has an --http… flag); stderr
  // goes to `log_path`. `port` 0 lets the system pick one; a restart passes the port of the
  // previous run so that clients find it again. Returns true once the "listening on" line
  // arrived (port() is then set); false when the process exited or printed nothing within
  // 30 s (Wait() then tells).
  bool Start(const std::string& data_dir, const std::string& log_path,
             const std::vector<std::string>& extra_args = {}, uint16_t port = 0);
  // Runs stratad through `command` (a program by absolute path and its arguments, before
  // stratad's path), e.g. setpriv to start it as another user. Set before Start().
  void set_wrapper(std::vector<std::string> command) { wrapper_ = std::move(command); }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `signal` and waits up to 60 s for the exit; returns the exit status as
  // waitpid(2) reports it (-1 on timeout, after which the process is killed).
  int Stop(int signal);
  // Waits for an exit without signalling (e.g. a refused start).
  int Wait();

  // Resident set size of the process in KiB (/proc/PID/status VmRSS), -1 if unknown.
  int64_t RssKib() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<std::string> wrapper_;
};

// The whole text of a file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace strata::server_test
