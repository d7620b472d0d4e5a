// A module declaring a migration of $$balances (int64 balances become records) whose
// function throws on a value it does not know, and, with MIGRATION_TWICE, a second
// migration of the same PState.
#include <stdexcept>

#include "strata/module.h"

namespace {

using strata::Schema;
using strata::Value;

void Define(strata::ModuleBuilder& m) {
  auto in = m.Depot("*in", strata::DepotPartitioning::Random());
  auto balances = m.PState(
      "$$balances",
      Schema::Map(Schema::String(),
                  Schema::Record({{"amount", Schema::Int64()}, {"currency", Schema::String()}})));
  m.Migrate(balances, "balance-to-record", [](const Value& old) {
    if (old.is_map()) return old;
    if (!old.is_int()) throw std::invalid_argument("not a balance: " + old.ToString());
    return Value::MapOf({{"amount", old}, {"currency", "EUR"}});
  });
#ifdef MIGRATION_TWICE
  m.Migrate(balances, "again", [](const Value& old) { return old; });
#endif
  m.Stream("noop").Source(in).Each([](strata::TopologyContext&, const Value&) {});
}

}  // namespace

#ifdef MIGRATION_TWICE
STRATA_MODULE(duplicate_migration, Define)
#else
STRATA_MODULE(migration, Define)
#endif
