#include "module_spec.h"

#include <nlohmann/json.hpp>

namespace strata::cluster {

std::string ModulePath(const std::string& name) { return std::string(kModulesPath) + "/" + name; }

std::string ModuleSpecJson(const ModuleSpec& spec) {
  return nlohmann::json{{"partitions", spec.partitions},
                        {"replication", spec.replication},
                        {"min_isr", spec.min_isr},
                        {"origin", spec.origin}}
      .dump();
}

Result<ModuleSpec> ParseModuleSpec(const std::string& name, std::string_view json) {
  ModuleSpec spec;
  spec.name = name;
  try {
    const nlohmann::json doc = nlohmann::json::parse(json);
    spec.partitions = doc.at("partitions").get<int>();
    spec.replication = doc.at("replication").get<int>();
    spec.min_isr = doc.at("min_isr").get<int>();
    spec.origin = doc.at("origin").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption("znode " + ModulePath(name) +
                              " does not hold a module spec: " + e.what());
  }
  if (spec.partitions < 1 || spec.replication < 1 || spec.min_isr < 1 ||
      spec.min_isr > spec.replication) {
    return Status::Corruption("znode " + ModulePath(name) + " holds partitions " +
                              std::to_string(spec.partitions) + ", replication " +
                              std::to_string(spec.replication) + ", min_isr " +
                              std::to_string(spec.min_isr) +
                              ": partitions and replication must be >= 1 and min_isr in "
                              "1..replication");
  }
  return spec;
}

}  // namespace strata::cluster
