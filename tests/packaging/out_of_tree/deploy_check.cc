// An embedded-engine user outside the source tree (Strata::engine from the installed
// package): deploys a module into an empty data directory, appends with processed acks
// and reads the view back, printing what it saw for install_and_build_module.sh to
// compare. Exits 1 with the reason when a call fails.
//
// usage: deploy_check GREETER.so DATA_DIR
#include <strata/engine.h>

#include <iostream>
#include <string>

namespace {

int Fail(const std::string& what, const strata::Status& status) {
  std::cerr << "deploy_check: " << what << ": " << status.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: deploy_check GREETER.so DATA_DIR\n";
    return 2;
  }
  strata::EngineOptions options;
  options.data_dir = argv[2];
  options.task_threads = 2;
  options.cache_size_bytes = 64ull << 20;
  auto engine = strata::Engine::Open(options);
  if (!engine.ok()) return Fail("Open", engine.status());

  auto info = (*engine)->Deploy(argv[1], strata::DeployOptions{.partitions = 4});
  if (!info.ok()) return Fail("Deploy", info.status());
  std::cout << "module " << info->name << " (" << info->partitions << " partitions)\n";
  for (const auto& depot : info->depots) {
    std::cout << "depot " << depot.name << " " << depot.partitioning << "\n";
  }
  for (const auto& pstate : info->pstates) {
    std::cout << "pstate " << pstate.name << " " << pstate.schema.ToString() << "\n";
  }
  for (const auto& topology : info->topologies) {
    std::cout << "topology " << topology.name << " <-";
    for (const std::string& source : topology.sources) std::cout << " " << source;
    std::cout << "\n";
  }

  for (const char* name : {"ann", "bob", "ann"}) {
    auto appended = (*engine)->Append("greeter", "*names", strata::Value(name));
    if (!appended.ok()) return Fail(std::string("Append ") + name, appended.status());
    std::cout << "append " << name << " ->";
    for (const auto& [topology, ack] : appended->ack_returns) {
      std::cout << " " << topology << ": " << ack.ToString();
    }
    std::cout << "\n";
  }
  for (const char* name : {"ann", "bob"}) {
    auto count = (*engine)->SelectOne("greeter", "$$greetings", strata::Path().Key(name));
    if (!count.ok()) return Fail(std::string("SelectOne ") + name, count.status());
    std::cout << "$$greetings " << name << " = " << count->ToString() << "\n";
  }
  return 0;
}
