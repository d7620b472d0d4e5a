// A child process for kill -9 tests: the child runs a body that reports on a pipe and works
// until it is killed; the parent reads the pipe, kills the child with SIGKILL at a moment
// of its choosing, and checks what survived on disk.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

namespace strata::testing {

class Kill9Child {
 public:
  // Forks; the child runs body(write end of the pipe), which must not return (if it does,
  // the child exits with 99, which Kill reports). A failed pipe or fork is a test failure
  // (pid() is then -1).
  explicit Kill9Child(const std::function<void(int write_fd)>& body) {
    int fds[2];
    if (pipe(fds) != 0) {
      ADD_FAILURE() << "pipe failed";
      return;
    }
    pid_ = fork();
    if (pid_ < 0) {
      ADD_FAILURE() << "fork failed";
      close(fds[0]);
      close(fds[1]);
      return;
    }
    if (pid_ == 0) {
      close(fds[0]);
      body(fds[1]);
      _exit(99);
    }
    close(fds[1]);
    read_fd_ = fds[0];
  }
  ~Kill9Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (read_fd_ >= 0) close(read_fd_);
  }
  Kill9Child(const Kill9Child&) = delete;
  Kill9Child& operator=(const Kill9Child&) = delete;

  pid_t pid() const { return pid_; }
  // The read end of the child's pipe (owned: closed by the destructor).
  int read_fd() const { return read_fd_; }
  // Reads the one byte the child writes once it is under way.
  ::testing::AssertionResult WaitReady() {
    char ready = 0;
    if (read(read_fd_, &ready, 1) == 1) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the child did not get under way";
  }
  // SIGKILL, then reaps the child: success only when SIGKILL is what ended it (not an exit
  // of its own before, which would mean the body failed).
  ::testing::AssertionResult Kill() {
    if (pid_ <= 0) return ::testing::AssertionFailure() << "no child";
    if (kill(pid_, SIGKILL) != 0) return ::testing::AssertionFailure() << "kill failed";
    int wstatus = 0;
    const pid_t reaped = waitpid(pid_, &wstatus, 0);
    reaped_ = true;
    if (reaped != pid_) return ::testing::AssertionFailure() << "waitpid failed";
    if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "the child ended with status " << wstatus << " before it was killed";
  }

 private:
  pid_t pid_ = -1;
  int read_fd_ = -1;
  bool reaped_ = false;
};

}  // namespace strata::testing
