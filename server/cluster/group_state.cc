#include "group_state.h"

#include <nlohmann/json.hpp>

#include "controller_election.h"

namespace strata::cluster {
namespace {

Result<std::string> GroupPath(const std::string& module, const std::string& group) {
  for (const std::string* name : {&module, &group}) {
    if (name->empty() || name->find('/') != std::string::npos) {
      return Status::InvalidArgument("group state of module '" + module + "', group '" + group +
                                     "': names must be non-empty and hold no '/'");
    }
  }
  return std::string(kGroupsPath) + "/" + module + "/" + group;
}

}  // namespace

std::string GroupStateJson(const GroupState& state) {
  nlohmann::json doc{
      {"leader", state.leader},     {"epoch", state.epoch},
      {"isr", state.isr},           {"min_isr", state.min_isr},
      {"replicas", state.replicas}, {"leader_incarnation", state.leader_incarnation}};
  if (!state.target.empty()) doc["target"] = state.target;
  return doc.dump();
}

Result<GroupState> ParseGroupState(const std::string& path, std::string_view json) {
  try {
    const nlohmann::json doc = nlohmann::json::parse(json);
    GroupState state;
    state.leader = doc.at("leader").get<std::string>();
    state.epoch = doc.at("epoch").get<int64_t>();
    state.isr = doc.at("isr").get<std::vector<std::string>>();
    state.min_isr = doc.at("min_isr").get<int>();
    state.replicas =
        doc.contains("replicas") ? doc.at("replicas").get<std::vector<std::string>>() : state.isr;
    if (doc.contains("leader_incarnation")) {
      state.leader_incarnation = doc.at("leader_incarnation").get<std::string>();
    }
    if (doc.contains("target")) state.target = doc.at("target").get<std::vector<std::string>>();
    return state;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption("znode " + path + " does not hold a group state: " + e.what());
  }
}

GroupStateStore::GroupStateStore(ZkClient& client, std::string candidate)
    : client_(client), guard_(std::string(kControllerPath) + "/" + std::move(candidate)) {}

Result<VersionedGroupState> GroupStateStore::Read(const std::string& module,
                                                  const std::string& group) {
  STRATA_ASSIGN_OR_RETURN(std::string path, GroupPath(module, group));
  STRATA_ASSIGN_OR_RETURN(ZnodeData data, client_.Get(path));
  STRATA_ASSIGN_OR_RETURN(GroupState state, ParseGroupState(path, data.data));
  return VersionedGroupState{std::move(state), data.version};
}

Status GroupStateStore::Create(const std::string& module, const std::string& group,
                               const GroupState& state) {
  STRATA_ASSIGN_OR_RETURN(std::string path, GroupPath(module, group));
  STRATA_RETURN_IF_ERROR(client_.CreateAll(std::string(kGroupsPath) + "/" + module));
  return client_.CreateGuarded(guard_, path, GroupStateJson(state), CreateMode::kPersistent)
      .status();
}

Result<int32_t> GroupStateStore::CompareAndSet(const std::string& module, const std::string& group,
                                               const GroupState& state, int32_t expected_version) {
  STRATA_ASSIGN_OR_RETURN(std::string path, GroupPath(module, group));
  if (expected_version < 0) {
    return Status::InvalidArgument("znode " + path +
                                   ": CompareAndSet needs the version read, not " +
                                   std::to_string(expected_version));
  }
  return client_.SetGuarded(guard_, path, GroupStateJson(state), expected_version);
}

}  // namespace strata::cluster
