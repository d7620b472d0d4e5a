// A GoogleTest fixture for tests against one real stratad (tests/server, tests/driver):
// a fresh temporary directory per test (removed afterwards) holding the data directory
// and the server's log, and the server process itself. Library strata_testing_stratad_test
// (tests/testing/CMakeLists.txt), which also defines WORDCOUNT_MODULE, PROFILES_MODULE and
// BANK_MODULE, the paths of the example modules wordcount, profiles and bank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stratad_process.h"

namespace strata::server_test {

class StratadTest : public ::testing::Test {
 protected:
  // Creates /tmp/<dir_prefix>XXXXXX. `base_args` go before the arguments of every
  // StartServer().
  explicit StratadTest(const std::string& dir_prefix, std::vector<std::string> base_args = {});
  // Kills a server still running (SIGKILL), then removes the directory.
  ~StratadTest() override;

  // Starts stratad on `port` (0: any) with the base arguments and `extra`, keeping the data
  // directory of earlier runs; fails the test (with the log) when it does not start.
  void StartServer(const std::vector<std::string>& extra = {}, uint16_t port = 0);
  // SIGTERM; fails the test (with the log) unless the server exits with status 0.
  void StopServer();

  std::string dir_;
  std::string data_dir_;  // dir_/data
  std::string log_;       // dir_/stratad.log, stderr of every run
  std::unique_ptr<StratadProcess> server_;

 private:
  std::vector<std::string> base_args_;
};

}  // namespace strata::server_test
