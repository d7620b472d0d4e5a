#include "stratad_test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace strata::server_test {

StratadTest::StratadTest(const std::string& dir_prefix, std::vector<std::string> base_args)
    : base_args_(std::move(base_args)) {
  std::string pattern = "/tmp/" + dir_prefix + "XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << pattern << ") failed: " << std::strerror(errno);
  }
  dir_ = pattern;
  data_dir_ = dir_ + "/data";
  log_ = dir_ + "/stratad.log";
}

StratadTest::~StratadTest() {
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void StratadTest::StartServer(const std::vector<std::string>& extra, uint16_t port) {
  std::vector<std::string> args = base_args_;
  args.insert(args.end(), extra.begin(), extra.end());
  server_ = std::make_unique<StratadProcess>();
  ASSERT_TRUE(server_->Start(data_dir_, log_, args, port)) << "stratad did not start:\n"
                                                           << ReadFile(log_);
}

void StratadTest::StopServer() {
  const int status = server_->Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status << "\n" << ReadFile(log_);
  ASSERT_EQ(WEXITSTATUS(status), 0) << ReadFile(log_);
}

}  // namespace strata::server_test
