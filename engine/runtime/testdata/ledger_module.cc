// The module of module_failure_test, deployed beside rt_test and then damaged or replaced
// in the data directory. Built three ways (engine/runtime/CMakeLists.txt), each named
// "ledger": as is; with LEDGER_OTHER_SCHEMA, which declares a new depot before a PState
// whose schema differs from the stored one; with LEDGER_DEFINE_THROWS, whose define
// function throws.
#include <stdexcept>

#include "strata/module.h"

namespace {

using strata::DepotPartitioning;
using strata::Path;
using strata::Schema;
using strata::TopologyContext;
using strata::Value;

void Define(strata::ModuleBuilder& m) {
#ifdef LEDGER_DEFINE_THROWS
  throw std::runtime_error("ledger cannot define itself");
#endif
  // entry {account, amount} -> hash(account) -> balances[account] += amount.
  auto entries = m.Depot("*entries", DepotPartitioning::Hash(Path().Key("account")));
#ifdef LEDGER_OTHER_SCHEMA
  m.Depot("*audit", DepotPartitioning::Random());
  auto balances = m.PState("$$balances", Schema::Map(Schema::String(), Schema::String()));
#else
  auto balances = m.PState("$$balances", Schema::Map(Schema::String(), Schema::Int64()));
#endif
  m.Stream("balances").Source(entries).Each([balances](TopologyContext& ctx, const Value& entry) {
    const Value* account = entry.Find("account");
    const Value* amount = entry.Find("amount");
    if (account == nullptr || amount == nullptr) throw std::invalid_argument("not an entry");
    return ctx.Transform(balances, Path().Key(*account).NullTo(0).Add(*amount)).status();
  });
}

}  // namespace

STRATA_MODULE(ledger, Define)
