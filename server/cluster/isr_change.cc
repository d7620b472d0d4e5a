#include "isr_change.h"

#include <nlohmann/json.hpp>

namespace strata::cluster {

std::string IsrChangeRequestJson(const IsrChangeRequest& request) {
  nlohmann::json doc{{"module", request.module},
                     {"group", request.group},
                     {"epoch", request.epoch},
                     {"isr", request.isr}};
  if (request.resign) doc["resign"] = true;
  return doc.dump();
}

Result<IsrChangeRequest> ParseIsrChangeRequest(const std::string& name, std::string_view json) {
  try {
    const nlohmann::json doc = nlohmann::json::parse(json);
    IsrChangeRequest request;
    request.name = name;
    request.module = doc.at("module").get<std::string>();
    request.group = doc.at("group").get<int>();
    request.epoch = doc.at("epoch").get<int64_t>();
    request.isr = doc.at("isr").get<std::vector<std::string>>();
    if (doc.contains("resign")) request.resign = doc.at("resign").get<bool>();
    return request;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption("znode " + std::string(kIsrChangePath) + "/" + name +
                              " does not hold an ISR change request: " + e.what());
  }
}

}  // namespace strata::cluster
