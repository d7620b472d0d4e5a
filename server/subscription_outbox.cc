#include "subscription_outbox.h"

#include "strata/protocol/frame.h"

namespace strata::server {

namespace proto = strata::protocol;

std::string SubscriptionOutbox::Frame(const proto::SubscriptionUpdate& update) {
  proto::Response response;
  response.id = 0;  // a push, not an answer
  response.body = update;
  const std::string payload = proto::EncodeResponse(response);
  std::string frame;
  frame.reserve(proto::kLengthPrefixSize + payload.size());
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
  return frame;
}

bool SubscriptionOutbox::Reserve() {
  MutexLock lock(&mu_);
  if (closed_ || entries_.size() + reserved_ >= limits_.max_per_connection) return false;
  ++reserved_;
  return true;
}

void SubscriptionOutbox::Unreserve() {
  MutexLock lock(&mu_);
  --reserved_;
}

void SubscriptionOutbox::OnEvent(const SubscriptionEvent& event) {
  using Kind = SubscriptionEvent::Kind;
  // Encoded before the lock: engine threads do the work, not the connection's.
  std::string frame;
  if (event.kind != Kind::kStarted) {
    proto::SubscriptionUpdate update;
    update.subscription = event.subscription;
    if (event.kind == Kind::kChanged) {
      update.diffs = event.diffs;
    } else {
      update.ended = proto::Error{proto::ErrorCodeFor(event.ended), event.ended.message()};
    }
    frame = Frame(update);
  }
  bool wake = false;
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    if (event.kind == Kind::kStarted) {
      Entry& entry = entries_[event.subscription];
      entry.partition = event.partition;
      entry.first = event.value;
      --reserved_;
      return;
    }
    auto it = entries_.find(event.subscription);
    if (it == entries_.end()) return;  // removed: unsubscribed
    Entry& entry = it->second;
    if (entry.ended) return;
    if (event.kind == Kind::kEnded) {
      entry.ended = true;
    } else if (entry.collapsed) {
      entry.latest = event.value;  // the RESYNC to come carries the newest value
      return;
    } else if (pending_ + frame.size() > limits_.max_pending_bytes ||
               frame.size() > limits_.max_frame_size) {
      Drop(entry);
      entry.collapsed = true;
      entry.latest = event.value;
      wake = MarkReady(it->first, entry);
      frame.clear();
    }
    if (!frame.empty()) wake = Queue(it->first, entry, std::move(frame));
  }
  if (wake) wake_();
}

bool SubscriptionOutbox::Queue(uint64_t id, Entry& entry, std::string frame) {
  pending_ += frame.size();
  entry.bytes += frame.size();
  entry.frames.push_back(std::move(frame));
  return MarkReady(id, entry);
}

void SubscriptionOutbox::Drop(Entry& entry) {
  pending_ -= entry.bytes;
  entry.bytes = 0;
  entry.frames.clear();
}

bool SubscriptionOutbox::MarkReady(uint64_t id, Entry& entry) {
  if (!entry.announced || entry.ready) return false;
  if (entry.frames.empty() && !entry.collapsed) return false;
  entry.ready = true;
  ready_.push_back(id);
  return ready_.size() == 1;
}

std::optional<std::pair<int, std::shared_ptr<const Value>>> SubscriptionOutbox::Started(
    uint64_t id) {
  MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (closed_ || it == entries_.end()) return std::nullopt;
  return std::make_pair(it->second.partition, std::move(it->second.first));
}

void SubscriptionOutbox::Announce(uint64_t id) {
  bool wake = false;
  {
    MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    it->second.announced = true;
    wake = MarkReady(id, it->second);
  }
  if (wake) wake_();
}

std::vector<std::string> SubscriptionOutbox::Take(uint64_t max_bytes) {
  std::vector<std::string> out;
  std::vector<std::pair<uint64_t, std::shared_ptr<const Value>>> resyncs;
  uint64_t taken = 0;
  {
    MutexLock lock(&mu_);
    while (!ready_.empty() && (out.empty() || taken < max_bytes)) {
      const uint64_t id = ready_.front();
      auto it = entries_.find(id);
      if (it == entries_.end()) {
        ready_.pop_front();
        continue;
      }
      Entry& entry = it->second;
      if (entry.collapsed) {
        // Encoded below, outside the lock; the frames queued after it (an ended update)
        // follow it in `out`.
        resyncs.emplace_back(id, std::move(entry.latest));
        out.emplace_back();
        entry.collapsed = false;
      }
      while (!entry.frames.empty() && (out.empty() || taken < max_bytes)) {
        taken += entry.frames.front().size();
        pending_ -= entry.frames.front().size();
        entry.bytes -= entry.frames.front().size();
        out.push_back(std::move(entry.frames.front()));
        entry.frames.pop_front();
      }
      if (!entry.frames.empty()) break;  // the rest next time, in order
      ready_.pop_front();
      entry.ready = false;
      if (entry.ended) entries_.erase(it);
    }
  }
  // Fill in the RESYNC frames (the empty strings), in order.
  size_t r = 0;
  for (std::string& frame : out) {
    if (!frame.empty()) continue;
    const auto& [id, value] = resyncs[r++];
    proto::SubscriptionUpdate update;
    update.subscription = id;
    update.diffs.push_back(Diff{Diff::Op::kResync, {}, Value(), *value, 0});
    frame = Frame(update);
    if (frame.size() > limits_.max_frame_size) {
      update.diffs.clear();
      update.ended = proto::Error{proto::ErrorCode::kInvalidArgument,
                                  "the subscribed value is " + std::to_string(frame.size()) +
                                      " bytes encoded, above the max frame size " +
                                      std::to_string(limits_.max_frame_size) +
                                      ": subscribe to a narrower path"};
      frame = Frame(update);
      Remove(id);
    }
  }
  return out;
}

bool SubscriptionOutbox::Remove(uint64_t id) {
  MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  Drop(it->second);
  entries_.erase(it);  // a stale id left in ready_ is skipped by Take
  return true;
}

std::vector<uint64_t> SubscriptionOutbox::EndAll(const proto::Error& why) {
  std::vector<uint64_t> ids;
  bool wake = false;
  {
    MutexLock lock(&mu_);
    for (auto& [id, entry] : entries_) {
      if (entry.ended) continue;
      ids.push_back(id);
      proto::SubscriptionUpdate update;
      update.subscription = id;
      update.ended = why;
      entry.ended = true;
      entry.announced = true;
      wake = Queue(id, entry, Frame(update)) || wake;
    }
  }
  if (wake) wake_();
  return ids;
}

std::vector<uint64_t> SubscriptionOutbox::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  std::vector<uint64_t> ids;
  for (const auto& [id, entry] : entries_) {
    if (!entry.ended) ids.push_back(id);
  }
  entries_.clear();
  ready_.clear();
  pending_ = 0;
  return ids;
}

size_t SubscriptionOutbox::open() const {
  MutexLock lock(&mu_);
  return entries_.size();
}

uint64_t SubscriptionOutbox::pending_bytes() const {
  MutexLock lock(&mu_);
  return pending_;
}

}  // namespace strata::server
