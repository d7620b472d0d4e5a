// Reads on callers' threads with a session borrowed from the engine's pool (reads.cc,
// query_executor.cc). Sessions are single-threaded: one borrower at a time.
#pragma once

#include <functional>
#include <memory>
#include <utility>

#include "storage/storage.h"

namespace strata::runtime {

// RAII for a session of the pool: `back` returns it when this goes out of scope.
class PooledSession {
 public:
  PooledSession(std::unique_ptr<Session> session,
                std::function<void(std::unique_ptr<Session>)> back)
      : session_(std::move(session)), back_(std::move(back)) {}
  ~PooledSession() {
    if (session_) back_(std::move(session_));
  }
  PooledSession(const PooledSession&) = delete;
  PooledSession& operator=(const PooledSession&) = delete;
  Session* get() { return session_.get(); }

 private:
  std::unique_ptr<Session> session_;
  std::function<void(std::unique_ptr<Session>)> back_;
};

// Runs fn() (a Status or Result) inside a snapshot transaction of `session`, rolled back
// afterwards (nothing is written): every record it reads is of one snapshot.
template <typename F>
auto InSnapshot(Session& session, F fn) -> decltype(fn()) {
  STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
  auto result = fn();
  session.Rollback();
  return result;
}

}  // namespace strata::runtime
