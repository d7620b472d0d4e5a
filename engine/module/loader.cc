#include "module/loader.h"

#include <dlfcn.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

namespace strata {

// The host's own stamp must describe the SDK it was compiled with.
static_assert(STRATA_SDK_VERSION_FOR_STAMP == kSdkVersion,
              "STRATA_SDK_VERSION_FOR_STAMP must equal kSdkVersion in the host");

namespace {

constexpr char kEntrySymbol[] = "strata_module_entry_v1";
using EntryFn = const ModuleEntryV1* (*)();

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Whether `name` is `prefix` followed by one or more [A-Za-z0-9_-].
bool IsValidName(std::string_view name, std::string_view prefix) {
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return false;
  for (char c : name.substr(prefix.size())) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

Status Invalid(const ModuleDef& def, const std::string& what) {
  return Status::InvalidArgument("module " + def.name + ": " + what);
}

std::string Quoted(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.append(1, '"').append(name).append(1, '"');
  return out;
}

Status CheckDepot(const ModuleDef& def, const DepotDef& depot) {
  if (!IsValidName(depot.name, "*")) {
    return Invalid(def, "depot name " + Quoted(depot.name) + " is not * followed by [A-Za-z0-9_-]+");
  }
  switch (depot.partitioning.kind) {
    case DepotPartitioning::Kind::kRandom:
    case DepotPartitioning::Kind::kNoClientAppends:
      return Status::Ok();
    case DepotPartitioning::Kind::kHash: {
      const Path& key = depot.partitioning.key_path;
      if (Status st = key.Validate(); !st.ok()) {
        return Invalid(def, "depot " + depot.name + ": hash key path: " + st.message());
      }
      if (key.terminal().has_value()) {
        return Invalid(def, "depot " + depot.name + ": hash key path " + key.ToString() +
                                " is a transform, not a select path");
      }
      return Status::Ok();
    }
  }
  return Invalid(def, "depot " + depot.name + " has unknown partitioning kind " +
                          std::to_string(static_cast<int>(depot.partitioning.kind)));
}

Status CheckPState(const ModuleDef& def, const PStateDef& pstate) {
  if (!IsValidName(pstate.name, "$$")) {
    return Invalid(def, "PState name " + Quoted(pstate.name) + " is not $$ followed by [A-Za-z0-9_-]+");
  }
  if (Status st = pstate.schema.Check(); !st.ok()) {
    return Invalid(def, "PState " + pstate.name + ": schema " + pstate.schema.ToString() + ": " +
                            st.message());
  }
  return Status::Ok();
}

std::string_view OpKindName(TopologyOp::Kind kind) {
  switch (kind) {
    case TopologyOp::Kind::kEach: return "each";
    case TopologyOp::Kind::kHashPartition: return "hash partition";
    case TopologyOp::Kind::kAllPartitions: return "all partitions";
    case TopologyOp::Kind::kGlobal: return "global";
    case TopologyOp::Kind::kShuffle: return "shuffle";
    case TopologyOp::Kind::kDirect: return "direct";
  }
  return "unknown";
}

// Checks op `i` of `topology`; sets *is_step to whether it runs user code on a partition.
Status CheckOp(const ModuleDef& def, const TopologyDef& topology, size_t i, bool* is_step) {
  const TopologyOp& op = topology.ops[i];
  std::string where = "topology " + topology.name + ", op " + std::to_string(i);
  *is_step = false;
  switch (op.kind) {
    case TopologyOp::Kind::kEach:
      *is_step = true;
      if (!op.fn) return Invalid(def, where + " (each) has no function");
      return Status::Ok();
    case TopologyOp::Kind::kDirect:
      if (!op.partition_fn) return Invalid(def, where + " (direct) has no partition function");
      return Status::Ok();
    case TopologyOp::Kind::kHashPartition:  // no key function: hash the value itself
    case TopologyOp::Kind::kAllPartitions:
    case TopologyOp::Kind::kGlobal:
    case TopologyOp::Kind::kShuffle:
      return Status::Ok();
  }
  return Invalid(def, where + " has unknown kind " + std::to_string(static_cast<int>(op.kind)));
}

Status CheckTopology(const ModuleDef& def, const TopologyDef& topology) {
  if (!IsValidName(topology.name, "")) {
    return Invalid(def, "topology name " + Quoted(topology.name) + " is not [A-Za-z0-9_-]+");
  }
  if (topology.sources.empty()) {
    return Invalid(def, "topology " + topology.name + " has no source depot");
  }
  std::set<int> seen;
  for (int source : topology.sources) {
    if (source < 0 || static_cast<size_t>(source) >= def.depots.size()) {
      return Invalid(def, "topology " + topology.name + " has source depot index " +
                              std::to_string(source) + ", but the module declares " +
                              std::to_string(def.depots.size()) + " depots");
    }
    if (!seen.insert(source).second) {
      return Invalid(def, "topology " + topology.name + " lists source depot " +
                              def.depots[source].name + " twice");
    }
  }
  if (topology.ops.empty()) {
    return Invalid(def, "topology " + topology.name + " has no steps");
  }
  bool last_is_step = false;
  for (size_t i = 0; i < topology.ops.size(); ++i) {
    STRATA_RETURN_IF_ERROR(CheckOp(def, topology, i, &last_is_step));
  }
  if (!last_is_step) {
    return Invalid(def, "topology " + topology.name + " ends with a partitioner (" +
                            std::string(OpKindName(topology.ops.back().kind)) +
                            ") that no step follows");
  }
  return Status::Ok();
}

// Records `name` in *seen; a name already there is a duplicate `kind`.
Status CheckUnique(const ModuleDef& def, std::set<std::string>* seen, const std::string& name,
                   std::string_view kind) {
  if (!seen->insert(name).second) {
    return Invalid(def, "declares " + std::string(kind) + " " + name + " twice");
  }
  return Status::Ok();
}

// Replaces the schemas and key paths the plugin built by equal ones built by the host.
// Their shared representations carry control blocks (and so code) of the plugin; rebuilt
// here, they can outlive the shared object.
Status RebuildDataInHost(ModuleDef* def) {
  for (DepotDef& depot : def->depots) {
    Result<Path> path = Path::FromValue(depot.partitioning.key_path.ToValue());
    if (!path.ok()) {
      return Status::Internal("module " + def->name + ": depot " + depot.name +
                              ": key path does not survive its wire form: " + path.status().message());
    }
    depot.partitioning.key_path = std::move(path).value();
  }
  for (PStateDef& pstate : def->pstates) {
    Result<PStateSchema> schema = PStateSchema::FromValue(pstate.schema.ToValue());
    if (!schema.ok() || !(*schema == pstate.schema)) {
      return Status::Internal("module " + def->name + ": PState " + pstate.name + ": schema " +
                              pstate.schema.ToString() + " does not survive its wire form" +
                              (schema.ok() ? std::string() : ": " + schema.status().message()));
    }
    pstate.schema = std::move(schema).value();
  }
  return Status::Ok();
}

}  // namespace

std::string_view HostAbiStamp() { return STRATA_ABI_STAMP; }

Status ValidateModuleDef(const ModuleDef& def) {
  if (!IsValidName(def.name, "")) {
    return Status::InvalidArgument("module name " + Quoted(def.name) + " is not [A-Za-z0-9_-]+");
  }
  std::set<std::string> depots;
  for (const DepotDef& depot : def.depots) {
    STRATA_RETURN_IF_ERROR(CheckDepot(def, depot));
    STRATA_RETURN_IF_ERROR(CheckUnique(def, &depots, depot.name, "depot"));
  }
  std::set<std::string> pstates;
  for (const PStateDef& pstate : def.pstates) {
    STRATA_RETURN_IF_ERROR(CheckPState(def, pstate));
    STRATA_RETURN_IF_ERROR(CheckUnique(def, &pstates, pstate.name, "PState"));
  }
  std::set<std::string> topologies;
  for (const TopologyDef& topology : def.topologies) {
    STRATA_RETURN_IF_ERROR(CheckTopology(def, topology));
    STRATA_RETURN_IF_ERROR(CheckUnique(def, &topologies, topology.name, "topology"));
  }
  return Status::Ok();
}

LoadedModule::LoadedModule(Passkey, std::string path, void* handle)
    : path_(std::move(path)), handle_(handle), def_(std::make_unique<ModuleDef>()) {}

LoadedModule::~LoadedModule() {
  // The ModuleDef's std::function objects (and anything else the plugin allocated with
  // its own code) are destroyed by code inside the shared object: before dlclose.
  def_.reset();
  dlclose(handle_);
}

Result<std::unique_ptr<LoadedModule>> LoadedModule::Load(const std::string& so_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(so_path, ec)) {
    return Status::NotFound("no module file at " + so_path);
  }
  dlerror();  // clears a stale error
  void* handle = dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    return Status::InvalidArgument("cannot load module " + so_path + ": " +
                                   (error != nullptr ? error : "dlopen failed"));
  }
  // From here on the handle is owned, and closed on every refusal.
  auto module = std::make_unique<LoadedModule>(Passkey(), so_path, handle);

  auto entry_fn = reinterpret_cast<EntryFn>(dlsym(handle, kEntrySymbol));
  if (entry_fn == nullptr) {
    return Status::InvalidArgument(so_path + " is not a Strata module: it exports no " +
                                   std::string(kEntrySymbol) + " (declare one with STRATA_MODULE)");
  }
  const ModuleEntryV1* entry = entry_fn();
  if (entry == nullptr || entry->abi_stamp == nullptr || entry->name == nullptr ||
      entry->define == nullptr) {
    return Status::InvalidArgument(so_path + ": " + kEntrySymbol +
                                   " returned an incomplete entry (not made by STRATA_MODULE)");
  }
  // Compared before any C++ object crosses the boundary: only C strings so far.
  if (std::strcmp(entry->abi_stamp, HostAbiStamp().data()) != 0) {
    return Status::InvalidArgument("module " + std::string(entry->name) + " (" + so_path +
                                   ") was built for " + entry->abi_stamp + "; this server is " +
                                   std::string(HostAbiStamp()) +
                                   " (rebuild the module against this server's SDK)");
  }

  std::string error;
  if (!entry->define(module->def_.get(), &error)) {
    return Status::UserError("module " + std::string(entry->name) + " (" + so_path +
                             "): its define function failed: " + error);
  }
  if (module->def_->name != entry->name) {
    return Status::InvalidArgument(so_path + ": the entry names module " + Quoted(entry->name) +
                                   " but its define function named it " +
                                   Quoted(module->def_->name));
  }
  STRATA_RETURN_IF_ERROR(ValidateModuleDef(*module->def_));
  STRATA_RETURN_IF_ERROR(RebuildDataInHost(module->def_.get()));
  return module;
}

}  // namespace strata
