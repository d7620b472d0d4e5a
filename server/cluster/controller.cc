#include "controller.h"

#include <algorithm>

namespace strata::cluster {

Controller::Controller(ZkClient& client, std::string candidate, Log log_info, Log log_warning)
    : client_(client),
      store_(client, std::move(candidate)),
      log_info_(std::move(log_info)),
      log_warning_(std::move(log_warning)) {}

Result<std::vector<IsrChangeRequest>> Controller::ReadIsrChanges(Watch on_isr_change) {
  STRATA_RETURN_IF_ERROR(client_.CreateAll(std::string(kIsrChangePath)));
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> names,
                          client_.Children(std::string(kIsrChangePath), std::move(on_isr_change)));
  // The sequence suffixes are 10 digits, zero-padded: the names sort as they were made.
  std::sort(names.begin(), names.end());
  std::vector<IsrChangeRequest> requests;
  for (const std::string& name : names) {
    const std::string path = std::string(kIsrChangePath) + "/" + name;
    Result<ZnodeData> data = client_.Get(path);
    if (!data.ok() && data.status().code() == StatusCode::kNotFound) continue;
    if (!data.ok()) return data.status();
    Result<IsrChangeRequest> request = ParseIsrChangeRequest(name, data->data);
    if (!request.ok()) {
      if (log_warning_) log_warning_("cluster: " + request.status().message() + ": deleted");
      Status deleted = client_.Delete(path);
      if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
      continue;
    }
    requests.push_back(std::move(request).value());
  }
  return requests;
}

Status Controller::DeleteModuleGroups(const std::string& module) {
  STRATA_ASSIGN_OR_RETURN(bool respecified, client_.Exists(ModulePath(module)));
  if (respecified) return Status::Ok();
  const std::string path = std::string(kGroupsPath) + "/" + module;
  Result<std::vector<std::string>> children = client_.Children(path);
  if (!children.ok() && children.status().code() == StatusCode::kNotFound) return Status::Ok();
  if (!children.ok()) return children.status();
  for (const std::string& child : *children) {
    Status deleted = client_.Delete(path + "/" + child);
    if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
  }
  Status deleted = client_.Delete(path);
  if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
  return Status::Ok();
}

Status Controller::Write(const GroupWrite& write) {
  switch (write.kind) {
    case GroupWrite::Kind::kCreate:
      return store_.Create(write.module, std::to_string(write.group), write.state);
    case GroupWrite::Kind::kCompareAndSet:
      return store_
          .CompareAndSet(write.module, std::to_string(write.group), write.state,
                         write.expected_version)
          .status();
    case GroupWrite::Kind::kDeleteModule:
      return DeleteModuleGroups(write.module);
  }
  return Status::Internal("unknown group write");
}

Result<bool> Controller::Reconcile(PlacementInput input, Watch on_isr_change, Watch on_rebalance) {
  STRATA_ASSIGN_OR_RETURN(input.isr_changes, ReadIsrChanges(std::move(on_isr_change)));
  STRATA_ASSIGN_OR_RETURN(input.rebalance,
                          client_.Exists(std::string(kRebalancePath), std::move(on_rebalance)));
  const Reconciliation decided = cluster::Reconcile(input);
  for (const std::string& warning : decided.warnings) {
    if (log_warning_) log_warning_(warning);
  }
  for (const GroupWrite& write : decided.writes) {
    STRATA_RETURN_IF_ERROR(Write(write));
    if (log_info_) log_info_(write.log);
  }
  for (const IsrChangeRequest& request : input.isr_changes) {
    Status deleted = client_.Delete(std::string(kIsrChangePath) + "/" + request.name);
    if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
  }
  if (input.rebalance) {
    if (log_info_) log_info_("cluster: rebalance: every group has its target");
    Status deleted = client_.Delete(std::string(kRebalancePath));
    if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) return deleted;
  }
  return decided.writes.empty() && input.isr_changes.empty() && !input.rebalance;
}

}  // namespace strata::cluster
