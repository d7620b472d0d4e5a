// Group commit: every waiter is completed, by a flush that began after it registered.
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/storage.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"

namespace strata {
namespace {

using testing::TempDir;

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage_ = testing::OpenSmallStorage(dir_.path());
    ASSERT_NE(storage_, nullptr);
    auto table = storage_->OpenTable("t", TableKind::kBytes);
    ASSERT_TRUE(table.ok());
    table_ = *table;
  }

  TempDir dir_;
  std::unique_ptr<Storage> storage_;
  TableId table_ = 0;
};

// Each thread commits, reads the flush count, then registers. A flush numbered at or below
// that reading began before the registration and must not complete it; inside the
// callback FlushCount() is the number of the completing flush.
TEST_F(GroupCommitTest, ManyCommittersAreAllAcknowledgedByLaterFlushes) {
  constexpr int kThreads = 8;
  constexpr int kCommitsPerThread = 150;
  std::atomic<int> completed{0};
  std::atomic<int> early{0};
  std::atomic<int> failed{0};
  std::atomic<int> callback_on_caller{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto session = storage_->OpenSession();
      ASSERT_TRUE(session.ok());
      const auto caller = std::this_thread::get_id();
      for (int i = 0; i < kCommitsPerThread; ++i) {
        std::string key = std::to_string(t) + "/" + std::to_string(i);
        ASSERT_TRUE((*session)->Put(table_, key, "v").ok());
        const uint64_t seen = storage_->FlushCount();
        if (i % 2 == 0) {
          storage_->WhenDurable([&, seen, caller](Status status) {
            if (!status.ok()) ++failed;
            if (storage_->FlushCount() <= seen) ++early;
            if (std::this_thread::get_id() == caller) ++callback_on_caller;
            ++completed;
          });
        } else {
          ASSERT_TRUE(storage_->WaitDurable().ok());
          // WaitDurable returned, so its flush (numbered > seen) has at least begun.
          if (storage_->FlushCount() <= seen) ++early;
          ++completed;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // WhenDurable waiters of the last commits may still be pending; one more wait covers
  // them, since the flusher completes flushes in order.
  ASSERT_TRUE(storage_->WaitDurable().ok());
  EXPECT_EQ(completed.load(), kThreads * kCommitsPerThread);
  EXPECT_EQ(early.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(callback_on_caller.load(), 0);
  EXPECT_GE(storage_->FlushCount(), 1u);
}

TEST_F(GroupCommitTest, WaiterRegisteredDuringAFlushWaitsForTheNextOne) {
  // The first callback runs while flush n completes; a waiter it registers must be
  // completed by a later flush (n+1 or after), never by flush n itself.
  std::mutex mu;
  std::vector<uint64_t> flush_of;
  auto second = [&](Status status) {
    ASSERT_TRUE(status.ok());
    std::lock_guard<std::mutex> lock(mu);
    flush_of.push_back(storage_->FlushCount());
  };
  storage_->WhenDurable([&](Status status) {
    ASSERT_TRUE(status.ok());
    {
      std::lock_guard<std::mutex> lock(mu);
      flush_of.push_back(storage_->FlushCount());
    }
    storage_->WhenDurable(second);
  });
  for (;;) {
    ASSERT_TRUE(storage_->WaitDurable().ok());
    std::lock_guard<std::mutex> lock(mu);
    if (flush_of.size() == 2) break;
  }
  EXPECT_GT(flush_of[1], flush_of[0]);
}

// A FlushObserver hears Starting(n), then Done(n), for each flush in turn, before the flush's
// callbacks run (inside which FlushCount() is n).
TEST_F(GroupCommitTest, AnObserverHearsEachFlushBeforeItsCallbacks) {
  struct Observer : FlushObserver {
    std::mutex mu;
    std::vector<std::pair<char, uint64_t>> heard;
    void FlushStarting(uint64_t flush) override {
      std::lock_guard<std::mutex> lock(mu);
      heard.emplace_back('s', flush);
    }
    void FlushDone(uint64_t flush, const Status& status) override {
      std::lock_guard<std::mutex> lock(mu);
      heard.emplace_back(status.ok() ? 'd' : 'f', flush);
    }
  } observer;
  storage_->SetFlushObserver(&observer);
  auto session = storage_->OpenSession();
  ASSERT_TRUE(session.ok());
  std::vector<std::pair<uint64_t, std::vector<std::pair<char, uint64_t>>>> seen;  // per callback
  std::mutex mu;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*session)->Put(table_, std::to_string(i) + "k", "v").ok());
    storage_->WhenDurable([&](Status status) {
      ASSERT_TRUE(status.ok());
      std::lock_guard<std::mutex> lock(observer.mu);
      std::lock_guard<std::mutex> seen_lock(mu);
      seen.emplace_back(storage_->FlushCount(), observer.heard);
    });
    if (i % 4 == 0) {
      ASSERT_TRUE(storage_->WaitDurable().ok());
    }
  }
  ASSERT_TRUE(storage_->WaitDurable().ok());
  storage_->SetFlushObserver(nullptr);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 20u);
  for (const auto& [flush, heard] : seen) {
    ASSERT_GE(flush, 1u);
    // The observer heard this flush start and end last.
    ASSERT_GE(heard.size(), 2u);
    EXPECT_EQ(heard[heard.size() - 2], std::make_pair('s', flush));
    EXPECT_EQ(heard.back(), std::make_pair('d', flush));
    // And every flush before it in order, since the observer was installed: s n, d n,
    // s n+1, d n+1, ...
    for (size_t j = 0; j < heard.size(); ++j) {
      EXPECT_EQ(heard[j], std::make_pair(j % 2 == 0 ? 's' : 'd', heard[0].second + j / 2)) << j;
    }
  }
}

TEST_F(GroupCommitTest, ShutdownCompletesEveryWaiter) {
  auto session = storage_->OpenSession();
  ASSERT_TRUE(session.ok());
  std::atomic<int> ok{0};
  constexpr int kWaiters = 1000;
  for (int i = 0; i < kWaiters; ++i) {
    ASSERT_TRUE((*session)->Put(table_, std::to_string(i) + "k", "v").ok());
    storage_->WhenDurable([&](Status status) {
      if (status.ok()) ++ok;
    });
  }
  session->reset();
  storage_.reset();  // Returns only after the final flush completed every waiter.
  EXPECT_EQ(ok.load(), kWaiters);
}

}  // namespace
}  // namespace strata
