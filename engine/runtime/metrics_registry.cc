#include "runtime/metrics_registry.h"

namespace strata::runtime {
namespace {

template <typename Counters>
std::shared_ptr<Counters> FindOrCreate(
    std::map<std::pair<std::string, std::string>, std::shared_ptr<Counters>>& map,
    const std::string& module, const std::string& name) {
  std::shared_ptr<Counters>& counters = map[{module, name}];
  if (!counters) counters = std::make_shared<Counters>();
  return counters;
}

template <typename Map>
void EraseModule(Map& map, const std::string& module) {
  auto it = map.lower_bound({module, std::string()});
  while (it != map.end() && it->first.first == module) it = map.erase(it);
}

}  // namespace

std::shared_ptr<DepotCounters> MetricsRegistry::Depot(const std::string& module,
                                                      const std::string& name) {
  MutexLock lock(&mu_);
  return FindOrCreate(depots_, module, name);
}

std::shared_ptr<TopologyCounters> MetricsRegistry::Topology(const std::string& module,
                                                            const std::string& name) {
  MutexLock lock(&mu_);
  return FindOrCreate(topologies_, module, name);
}

void MetricsRegistry::Forget(const std::string& module) {
  MutexLock lock(&mu_);
  EraseModule(depots_, module);
  EraseModule(topologies_, module);
}

}  // namespace strata::runtime
