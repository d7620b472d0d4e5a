#include "http_server.h"

#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include <httplib.h>

namespace strata::server::http {
namespace {

// httplib's TaskQueue with bounds: `threads` workers, each serving one connection at a
// time, and at most `threads` accepted connections waiting for one. When the queue is
// full, enqueue blocks the accept loop, so further connections wait in the kernel's
// backlog instead of in our memory.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(int threads, std::atomic<int64_t>& open, std::atomic<int64_t>& total)
      : capacity_(static_cast<size_t>(threads)), open_(open), total_(total) {
    workers_.reserve(capacity_);
    for (size_t i = 0; i < capacity_; ++i) workers_.emplace_back([this] { Work(); });
  }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return shutdown_ || queue_.size() < capacity_; });
    // At shutdown the connection is still queued: the workers drain the queue before
    // they end, and serving it is what closes its socket.
    queue_.push_back(std::move(fn));
    not_empty_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        not_empty_.wait(lock, [&] { return shutdown_ || !queue_.empty(); });
        if (queue_.empty()) return;  // shut down and drained
        fn = std::move(queue_.front());
        queue_.pop_front();
        not_full_.notify_one();
      }
      open_.fetch_add(1, std::memory_order_relaxed);
      total_.fetch_add(1, std::memory_order_relaxed);
      fn();  // serves the connection until it closes
      open_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  const size_t capacity_;
  std::atomic<int64_t>& open_;
  std::atomic<int64_t>& total_;
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<std::function<void()>> queue_;
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

HttpServer::HttpServer(const HttpSettings& limits, std::atomic<int64_t>& open_connections,
                       std::atomic<int64_t>& total_connections)
    : server_(std::make_unique<httplib::Server>()) {
  const int threads = limits.threads;
  server_->new_task_queue = [threads, &open_connections, &total_connections] {
    return new BoundedPool(threads, open_connections, total_connections);
  };
  server_->set_payload_max_length(limits.max_body);
  server_->set_read_timeout(limits.timeout_s, 0);
  server_->set_write_timeout(limits.timeout_s, 0);
  server_->set_keep_alive_timeout(kKeepAliveSeconds);
  server_->set_keep_alive_max_count(kKeepAliveRequests);
  server_->set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT, which lets a second stratad bind the same port and
  // silently share its connections; SO_REUSEADDR alone only allows a quick restart.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind(const std::string& host, uint16_t port) {
  if (port == 0) {
    const int bound = server_->bind_to_any_port(host);
    if (bound > 0) {
      port_ = static_cast<uint16_t>(bound);
      return Status::Ok();
    }
  } else if (server_->bind_to_port(host, port)) {
    port_ = port;
    return Status::Ok();
  }
  return Status::IOError("cannot listen for HTTP on " + host + ":" + std::to_string(port) +
                         " (in use, or not an address of this machine); choose another with "
                         "--http HOST:PORT, or --http off");
}

void HttpServer::Start() {
  listen_thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void HttpServer::Stop() {
  if (!listen_thread_.joinable()) return;
  server_->stop();
  listen_thread_.join();
}

}  // namespace strata::server::http
