// The blocking forms of Engine's append, built on AppendAsync.
#include <future>

#include "strata/engine.h"

namespace strata {

Result<std::vector<AppendResult>> Engine::AppendBatch(const std::string& module,
                                                      const std::string& depot,
                                                      std::vector<Value> records, AckLevel level) {
  std::promise<Result<std::vector<AppendResult>>> promise;
  std::future<Result<std::vector<AppendResult>>> future = promise.get_future();
  AppendAsync(module, depot, std::move(records), level,
              [&promise](Result<std::vector<AppendResult>> result) {
                promise.set_value(std::move(result));
              });
  return future.get();
}

Result<AppendResult> Engine::Append(const std::string& module, const std::string& depot,
                                    Value record, AckLevel level) {
  std::vector<Value> records;
  records.push_back(std::move(record));
  STRATA_ASSIGN_OR_RETURN(std::vector<AppendResult> results,
                          AppendBatch(module, depot, std::move(records), level));
  if (!results[0].failure.ok()) return results[0].failure;
  return std::move(results[0]);
}

}  // namespace strata
