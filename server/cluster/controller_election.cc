#include "controller_election.h"

#include <algorithm>
#include <chrono>
#include <vector>

namespace strata::cluster {
namespace {

constexpr std::string_view kCandidatePrefix = "candidate-";
// After a failed evaluation (a lost connection), the pause before the next one.
constexpr std::chrono::milliseconds kRetryPause{200};

std::string ControllerChild(const std::string& name) {
  return std::string(kControllerPath) + "/" + name;
}

// The candidates, lowest sequence first. The suffixes are 10 digits (zero-padded), so the
// names sort as their numbers do.
Result<std::vector<std::string>> Candidates(ZkClient& client) {
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> children,
                          client.Children(std::string(kControllerPath)));
  std::erase_if(children,
                [](const std::string& name) { return name.rfind(kCandidatePrefix, 0) != 0; });
  std::sort(children.begin(), children.end());
  return children;
}

}  // namespace

struct ControllerElection::Wakeup {
  Mutex mu;
  CondVar cv;
  bool pending GUARDED_BY(mu) = true;  // evaluate (again)
  bool stop GUARDED_BY(mu) = false;

  void Notify() {
    MutexLock lock(&mu);
    pending = true;
    cv.SignalAll();
  }
};

Result<std::unique_ptr<ControllerElection>> ControllerElection::Enter(ZkClient& client,
                                                                      const std::string& node_id,
                                                                      OnChange on_change) {
  STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kControllerPath)));
  STRATA_ASSIGN_OR_RETURN(std::string path,
                          client.Create(ControllerChild(std::string(kCandidatePrefix)), node_id,
                                        CreateMode::kEphemeralSequential));
  std::string name = path.substr(path.rfind('/') + 1);
  std::unique_ptr<ControllerElection> election(
      new ControllerElection(client, std::move(name), std::move(on_change)));
  election->thread_ = std::thread([e = election.get()] { e->Run(); });
  return election;
}

ControllerElection::ControllerElection(ZkClient& client, std::string candidate, OnChange on_change)
    : client_(client),
      candidate_(std::move(candidate)),
      on_change_(std::move(on_change)),
      wakeup_(std::make_shared<Wakeup>()) {}

ControllerElection::~ControllerElection() {
  {
    MutexLock lock(&wakeup_->mu);
    wakeup_->stop = true;
    wakeup_->cv.SignalAll();
  }
  thread_.join();
  if (!client_.expired()) (void)client_.Delete(ControllerChild(candidate_));
}

bool ControllerElection::IsController() const {
  MutexLock lock(&mu_);
  return is_controller_;
}

void ControllerElection::Run() {
  bool first = true;
  // What on_change_ was last told. Compared with, not the value before this evaluation:
  // an evaluation that failed after deciding (its watch could not be set) has changed
  // is_controller_ without telling, and the retry, finding no change, must still tell.
  bool reported = false;
  for (;;) {
    {
      MutexLock lock(&wakeup_->mu);
      while (!wakeup_->pending && !wakeup_->stop) wakeup_->cv.Wait(&wakeup_->mu);
      if (wakeup_->stop) return;
      wakeup_->pending = false;
    }
    bool again = false;
    Status evaluated = Evaluate(&again);
    if (!evaluated.ok() && client_.expired()) {
      // The session and the candidacy with it are gone: no longer the controller, and
      // never again in this session (the owner enters again in a new one).
      MutexLock lock(&mu_);
      is_controller_ = false;
      evaluated = Status::Ok();
    }
    const bool is = IsController();
    if (evaluated.ok() && (first || is != reported)) {
      first = false;
      reported = is;
      if (on_change_) on_change_(is);
    }
    if (again) {
      wakeup_->Notify();
    } else if (!evaluated.ok()) {
      MutexLock lock(&wakeup_->mu);
      wakeup_->cv.WaitFor(&wakeup_->mu, kRetryPause);
      wakeup_->pending = true;
    }
  }
}

Status ControllerElection::Evaluate(bool* again) {
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> candidates, Candidates(client_));
  const auto self = std::find(candidates.begin(), candidates.end(), candidate_);
  if (self == candidates.end()) {
    // Our candidate is gone: the session ended. The owner enters again with a new one.
    MutexLock lock(&mu_);
    is_controller_ = false;
    return Status::Ok();
  }
  {
    MutexLock lock(&mu_);
    is_controller_ = self == candidates.begin();
  }
  // The controller watches its own candidate, the others their predecessor's: either
  // watch also fires when the session expires, which ends the office.
  const std::string watched = ControllerChild(self == candidates.begin() ? *self : *(self - 1));
  std::shared_ptr<Wakeup> wakeup = wakeup_;
  STRATA_ASSIGN_OR_RETURN(bool watched_exists, client_.Exists(watched, [wakeup](const WatchEvent&) {
    wakeup->Notify();
  }));
  *again = !watched_exists;
  return Status::Ok();
}

Result<std::string> ControllerElection::CurrentController(ZkClient& client) {
  STRATA_RETURN_IF_ERROR(client.CreateAll(std::string(kControllerPath)));
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> candidates, Candidates(client));
    if (candidates.empty()) return std::string();
    Result<ZnodeData> lowest = client.Get(ControllerChild(candidates.front()));
    if (lowest.ok()) return lowest->data;
    // It left between the two reads: the next one is the controller now.
    if (lowest.status().code() != StatusCode::kNotFound) return lowest.status();
  }
}

}  // namespace strata::cluster
