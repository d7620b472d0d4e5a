#include "module/loader.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include <xxhash.h>

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

static_assert(sizeof(void*) == 8, "the module loader reads 64-bit ELF files only");
constexpr char kAbiSection[] = ".strata_abi";
constexpr uint64_t kMaxAbiNoteSize = 4096;  // a stamp and a module name

// Closes the descriptor it holds.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status MalformedModule(const std::string& path, const std::string& what) {
  return Status::InvalidArgument("cannot load module " + path + ": " + what);
}

// Reads [offset, offset + size) of the file into *out; false when that is not inside it.
using ReadAtFn = std::function<bool(uint64_t offset, uint64_t size, void* out)>;

// The parser of ReadAbiNote and ParseAbiNote, on a file of `file_size` bytes that it reads
// only through `read_at`.
Result<AbiNote> ParseAbiNoteAt(const std::string& path, uint64_t file_size,
                               const ReadAtFn& read_at) {
  auto malformed = [&](const std::string& what) { return MalformedModule(path, what); };
  auto not_a_module = [&](const std::string& what) {
    return Status::InvalidArgument(path + " is not a Strata module: " + what +
                                   " (build it with STRATA_MODULE against this server's SDK)");
  };
  auto range = [](uint64_t offset, uint64_t size) {
    std::string text = "[";  // appended: g++ 12 warns falsely (-Wrestrict) on "[" + ...
    text += std::to_string(offset) + ", +" + std::to_string(size) + ")";
    return text;
  };

  Elf64_Ehdr header;
  if (!read_at(0, sizeof(header), &header)) {
    return malformed("file too short for an ELF header (" + std::to_string(file_size) + " bytes)");
  }
  if (std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) return malformed("not an ELF file");
  if (header.e_ident[EI_CLASS] != ELFCLASS64) return malformed("not a 64-bit ELF file");
  const unsigned char host_data =
      std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  if (header.e_ident[EI_DATA] != host_data) return malformed("an ELF file of the other byte order");
  if (header.e_shoff == 0)
    return not_a_module("it has no section headers, so no .strata_abi section");
  if (header.e_shentsize != sizeof(Elf64_Shdr)) {
    return malformed("section header size " + std::to_string(header.e_shentsize) + ", not " +
                     std::to_string(sizeof(Elf64_Shdr)));
  }
  // Section 0 holds the real count and name table index when they do not fit the header.
  Elf64_Shdr first;
  if (!read_at(header.e_shoff, sizeof(first), &first)) {
    return malformed("section header table at offset " + std::to_string(header.e_shoff) +
                     " is past the end of the file (" + std::to_string(file_size) + " bytes)");
  }
  const uint64_t count = header.e_shnum != 0 ? header.e_shnum : first.sh_size;
  const uint64_t names_index = header.e_shstrndx != SHN_XINDEX ? header.e_shstrndx : first.sh_link;
  if (count > (file_size - header.e_shoff) / sizeof(Elf64_Shdr)) {
    return malformed("section header table of " + std::to_string(count) + " entries at offset " +
                     std::to_string(header.e_shoff) + " does not fit the file (" +
                     std::to_string(file_size) + " bytes)");
  }
  std::vector<Elf64_Shdr> sections(count);
  if (!read_at(header.e_shoff, count * sizeof(Elf64_Shdr), sections.data())) {
    return malformed("cannot read the section header table");
  }
  if (names_index == SHN_UNDEF || names_index >= count) {
    return malformed("section name table index " + std::to_string(names_index) +
                     " is not one of the " + std::to_string(count) + " sections");
  }
  const Elf64_Shdr& names_header = sections[names_index];
  if (names_header.sh_type != SHT_STRTAB)
    return malformed("the section name table is not a string table");
  // Checked before the allocation: the size is the file's word, up to 2^64 - 1.
  const bool names_inside = names_header.sh_offset <= file_size &&
                            names_header.sh_size <= file_size - names_header.sh_offset;
  std::string names(names_inside ? names_header.sh_size : 0, '\0');
  if (!names_inside || !read_at(names_header.sh_offset, names_header.sh_size, names.data())) {
    return malformed("section name table " + range(names_header.sh_offset, names_header.sh_size) +
                     " is not inside the file (" + std::to_string(file_size) + " bytes)");
  }

  const Elf64_Shdr* abi = nullptr;
  for (const Elf64_Shdr& section : sections) {
    if (section.sh_name >= names.size()) {
      return malformed("a section name offset (" + std::to_string(section.sh_name) +
                       ") is past the end of the section name table");
    }
    const size_t end = names.find('\0', section.sh_name);
    if (end == std::string::npos) return malformed("a section name is not NUL-terminated");
    if (std::string_view(names).substr(section.sh_name, end - section.sh_name) != kAbiSection)
      continue;
    if (abi != nullptr) return not_a_module("it has two .strata_abi sections");
    abi = &section;
  }
  if (abi == nullptr) return not_a_module("it has no .strata_abi section");
  if (abi->sh_type != SHT_PROGBITS || abi->sh_size == 0 || abi->sh_size > kMaxAbiNoteSize) {
    return not_a_module("its .strata_abi section (type " + std::to_string(abi->sh_type) + ", " +
                        std::to_string(abi->sh_size) + " bytes) is not an ABI note");
  }
  std::string note(abi->sh_size, '\0');
  if (!read_at(abi->sh_offset, abi->sh_size, note.data())) {
    return malformed(".strata_abi section " + range(abi->sh_offset, abi->sh_size) +
                     " is not inside the file (" + std::to_string(file_size) + " bytes)");
  }
  // The stamp, NUL, the module name, NUL.
  const size_t stamp_end = note.find('\0');
  const size_t name_end =
      stamp_end == std::string::npos ? std::string::npos : note.find('\0', stamp_end + 1);
  if (name_end == std::string::npos) {
    return not_a_module("its .strata_abi section is not a stamp and a name, each NUL-terminated");
  }
  AbiNote out{note.substr(0, stamp_end), note.substr(stamp_end + 1, name_end - stamp_end - 1)};
  for (char c : out.stamp) {
    if (c < 0x20 || c > 0x7e)
      return not_a_module("its ABI stamp has a byte that is not printable ASCII");
  }
  if (out.stamp.empty() || !IsValidName(out.name, "")) {
    return not_a_module(
        "its .strata_abi section has an empty stamp or a module name that is not "
        "[A-Za-z0-9_-]+");
  }
  return out;
}

}  // namespace

Result<AbiNote> ReadAbiNote(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0)
    return MalformedModule(path, std::string("cannot open it: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return MalformedModule(path, std::string("cannot stat it: ") + std::strerror(errno));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  return ParseAbiNoteAt(path, file_size, [&](uint64_t offset, uint64_t size, void* out) {
    if (offset > file_size || size > file_size - offset) return false;
    auto* bytes = static_cast<char*>(out);
    while (size > 0) {
      ssize_t n = ::pread(fd.get(), bytes, size, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes += n;
      offset += static_cast<uint64_t>(n);
      size -= static_cast<uint64_t>(n);
    }
    return true;
  });
}

Result<AbiNote> ParseAbiNote(std::string_view file, const std::string& path) {
  return ParseAbiNoteAt(path, file.size(), [&](uint64_t offset, uint64_t size, void* out) {
    if (offset > file.size() || size > file.size() - offset) return false;
    if (size > 0) std::memcpy(out, file.data() + offset, size);
    return true;
  });
}

namespace {

Status StampMismatch(const std::string& name, const std::string& so_path, std::string_view stamp) {
  return Status::InvalidArgument("module " + name + " (" + so_path + ") was built for " +
                                 std::string(stamp) + "; this server is " +
                                 std::string(HostAbiStamp()) +
                                 " (rebuild the module against this server's SDK)");
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
    return Invalid(def,
                   "depot name " + Quoted(depot.name) + " is not * followed by [A-Za-z0-9_-]+");
  }
  if (depot.record_schema.has_subindexed()) {
    return Invalid(def, "depot " + depot.name + ": record schema " +
                            depot.record_schema.ToString() +
                            " has a subindexed part, but a depot record is one value (subindexed "
                            "is for PStates)");
  }
  if (Status st = PStateSchema{depot.record_schema, false}.Check(); !st.ok()) {
    return Invalid(def, "depot " + depot.name + ": record schema " +
                            depot.record_schema.ToString() + ": " + st.message());
  }
  if (!depot.mirror_of.empty()) {
    if (!IsValidName(depot.mirror_of, "") || depot.mirror_of == def.name) {
      return Invalid(def, "mirror depot " + depot.name + " names module " +
                              Quoted(depot.mirror_of) +
                              ", which is not another module's name ([A-Za-z0-9_-]+)");
    }
    if (depot.tick_interval_ms != 0 ||
        depot.partitioning.kind != DepotPartitioning::Kind::kNoClientAppends) {
      return Invalid(def, "mirror depot " + depot.name +
                              " takes no appends and no ticks (declare it with "
                              "ModuleBuilder::MirrorDepot)");
    }
  }
  if (depot.tick_interval_ms != 0) {
    if (depot.tick_interval_ms < 10 || depot.tick_interval_ms > 86400000) {
      return Invalid(def, "tick depot " + depot.name + " ticks every " +
                              std::to_string(depot.tick_interval_ms) +
                              " ms; the interval must be 10 ms to one day (86400000 ms)");
    }
    if (depot.partitioning.kind != DepotPartitioning::Kind::kNoClientAppends ||
        !(depot.record_schema == Schema::Int64())) {
      return Invalid(def, "tick depot " + depot.name +
                              " must take no client appends and have record schema Int64 "
                              "(declare it with ModuleBuilder::TickDepot)");
    }
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

// A migration rewrites the values stored under the top-level keys of a map, each one blob:
// the only values a read can pass through a function whole (docs/modules.md, "Migrations").
Status CheckMigration(const ModuleDef& def, const PStateDef& pstate, const MigrationDef& m) {
  const std::string where = "PState " + pstate.name + ": migration " + Quoted(m.id);
  if (m.id.empty()) return Invalid(def, "PState " + pstate.name + ": a migration needs an id");
  if (!m.fn) return Invalid(def, where + " has no function");
  const Schema& root = pstate.schema.root;
  if (root.kind() != Schema::Kind::kMap) {
    return Invalid(def, where + ": the schema " + pstate.schema.ToString() +
                            " is not a map; a migration rewrites the values under the "
                            "top-level keys of a map");
  }
  if (root.value().has_subindexed()) {
    return Invalid(def, where + ": the map's values (" + root.value().ToString() +
                            ") have a subindexed part, stored one element per record; a "
                            "migration rewrites top-level values stored as one blob each");
  }
  return Status::Ok();
}

Status CheckPState(const ModuleDef& def, const PStateDef& pstate) {
  if (!IsValidName(pstate.name, "$$")) {
    return Invalid(def,
                   "PState name " + Quoted(pstate.name) + " is not $$ followed by [A-Za-z0-9_-]+");
  }
  if (Status st = pstate.schema.Check(); !st.ok()) {
    return Invalid(def, "PState " + pstate.name + ": schema " + pstate.schema.ToString() + ": " +
                            st.message());
  }
  if (pstate.migration) return CheckMigration(def, pstate, *pstate.migration);
  return Status::Ok();
}

std::string_view OpKindName(TopologyOp::Kind kind) {
  switch (kind) {
    case TopologyOp::Kind::kEach:
      return "each";
    case TopologyOp::Kind::kHashPartition:
      return "hash partition";
    case TopologyOp::Kind::kAllPartitions:
      return "all partitions";
    case TopologyOp::Kind::kGlobal:
      return "global";
    case TopologyOp::Kind::kShuffle:
      return "shuffle";
    case TopologyOp::Kind::kDirect:
      return "direct";
    case TopologyOp::Kind::kAggregate:
      return "aggregate";
    case TopologyOp::Kind::kGroupBy:
      return "group by";
    case TopologyOp::Kind::kEachGroup:
      return "each group";
    case TopologyOp::Kind::kOrigin:
      return "origin";
    case TopologyOp::Kind::kCombine:
      return "combine";
  }
  return "unknown";
}

// An Aggregate into Path().Key(key) of a map PState: the map's values must be able to hold
// what the combiner stores (a count is an int64, a set union a set, a top-N a list), so a
// mismatch is refused at load rather than failing every batch.
Status CheckAggregateTarget(const ModuleDef& def, const std::string& where, const TopologyOp& op) {
  const Schema& root = def.pstates[op.pstate].schema.root;
  if (op.path_of || root.kind() != Schema::Kind::kMap) return Status::Ok();
  const Schema::Kind value = root.value().kind();
  if (value == Schema::Kind::kAny) return Status::Ok();
  const char* needs = nullptr;
  switch (op.combiner.kind) {
    case Combiner::Kind::kCount:
      if (value != Schema::Kind::kInt64) needs = "int64 values (a count)";
      break;
    case Combiner::Kind::kSum:
      if (value != Schema::Kind::kInt64 && value != Schema::Kind::kDouble)
        needs = "int64 or double values (a sum)";
      break;
    case Combiner::Kind::kSetUnion:
      if (value != Schema::Kind::kSet) needs = "set values (a set union)";
      break;
    case Combiner::Kind::kTopN:
      if (value != Schema::Kind::kList) needs = "list values (a top-N list)";
      break;
    default:
      break;
  }
  if (needs == nullptr) return Status::Ok();
  return Invalid(def, where + " (aggregate) writes " + def.pstates[op.pstate].name + ", whose " +
                          "schema " + def.pstates[op.pstate].schema.ToString() + " holds " +
                          root.value().ToString() + " values, but the combiner needs " + needs);
}

// Checks op `i` of `topology`; sets *is_step to whether it runs user code on a partition.
Status CheckOp(const ModuleDef& def, const TopologyDef& topology, size_t i, bool* is_step) {
  const TopologyOp& op = topology.ops[i];
  std::string where = "topology " + topology.name + ", op " + std::to_string(i);
  *is_step = false;
  if (i > 0 && topology.ops[i - 1].kind == TopologyOp::Kind::kGroupBy &&
      op.kind != TopologyOp::Kind::kEachGroup) {
    return Invalid(def, where + " (" + std::string(OpKindName(op.kind)) +
                            ") follows GroupBy: GroupBy must be followed by EachGroup");
  }
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
    case TopologyOp::Kind::kAggregate:
    case TopologyOp::Kind::kGroupBy:
    case TopologyOp::Kind::kEachGroup:
      break;
    case TopologyOp::Kind::kOrigin:
    case TopologyOp::Kind::kCombine:
      if (topology.kind != TopologyDef::Kind::kQuery) {
        return Invalid(def,
                       where + " (" + std::string(OpKindName(op.kind)) + ") is for queries only");
      }
      return Status::Ok();  // CheckQuery checks where they stand
    default:
      return Invalid(def, where + " has unknown kind " + std::to_string(static_cast<int>(op.kind)));
  }
  const std::string kind(OpKindName(op.kind));
  if (topology.kind != TopologyDef::Kind::kMicrobatch) {
    return Invalid(def, where + " (" + kind + ") is for microbatch topologies only");
  }
  const bool after_group_by = i > 0 && topology.ops[i - 1].kind == TopologyOp::Kind::kGroupBy;
  if ((op.kind == TopologyOp::Kind::kEachGroup) != after_group_by) {
    return Invalid(def, where + " (" + kind + "): GroupBy must be followed by EachGroup, and " +
                            "EachGroup may only follow GroupBy");
  }
  switch (op.kind) {
    case TopologyOp::Kind::kGroupBy:
      if (!op.key_fn) return Invalid(def, where + " (group by) has no key function");
      return Status::Ok();
    case TopologyOp::Kind::kEachGroup:
      *is_step = true;
      if (!op.group_fn) return Invalid(def, where + " (each group) has no function");
      return Status::Ok();
    default:
      break;
  }
  *is_step = true;  // an aggregate may end the chain
  if (!op.key_fn) return Invalid(def, where + " (aggregate) has no key function");
  if (op.pstate < 0 || static_cast<size_t>(op.pstate) >= def.pstates.size()) {
    return Invalid(def, where + " (aggregate) writes PState index " + std::to_string(op.pstate) +
                            ", but the module declares " + std::to_string(def.pstates.size()) +
                            " PStates");
  }
  const Combiner& c = op.combiner;
  if (c.kind > Combiner::Kind::kTopN) {
    return Invalid(def, where + " (aggregate) has unknown combiner kind " +
                            std::to_string(static_cast<int>(c.kind)));
  }
  if (c.kind == Combiner::Kind::kTopN) {
    if (!c.sort_key_of || !c.id_of) {
      return Invalid(def, where + " (aggregate): TopN needs a sort key and an id function");
    }
    if (c.n < 1 || c.n > 10000) {
      return Invalid(def, where + " (aggregate): TopN keeps " + std::to_string(c.n) +
                              " items; it must keep 1 to 10,000");
    }
  }
  return CheckAggregateTarget(def, where, op);
}

Status CheckTopology(const ModuleDef& def, const TopologyDef& topology) {
  if (!IsValidName(topology.name, "")) {
    return Invalid(def, "topology name " + Quoted(topology.name) + " is not [A-Za-z0-9_-]+");
  }
  if (topology.kind == TopologyDef::Kind::kQuery) {
    return Invalid(def, "topology " + topology.name +
                            " is a query: declare queries with ModuleBuilder::Query");
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
  for (int w : topology.writes) {
    if (w < 0 || static_cast<size_t>(w) >= def.pstates.size()) {
      return Invalid(def, "topology " + topology.name + " writes PState index " +
                              std::to_string(w) + ", but the module declares " +
                              std::to_string(def.pstates.size()) + " PStates");
    }
  }
  if (topology.ops.back().kind == TopologyOp::Kind::kGroupBy) {
    return Invalid(def, "topology " + topology.name +
                            " ends with GroupBy: GroupBy must be followed by EachGroup");
  }
  if (!last_is_step) {
    return Invalid(def, "topology " + topology.name + " ends with a partitioner (" +
                            std::string(OpKindName(topology.ops.back().kind)) +
                            ") that no step follows");
  }
  return Status::Ok();
}

bool IsPartitioner(TopologyOp::Kind kind) {
  switch (kind) {
    case TopologyOp::Kind::kHashPartition:
    case TopologyOp::Kind::kAllPartitions:
    case TopologyOp::Kind::kGlobal:
    case TopologyOp::Kind::kShuffle:
    case TopologyOp::Kind::kDirect:
      return true;
    default:
      return false;
  }
}

// A query's chain starts at the origin; partitioners leave it, Origin returns to it. It
// must end there, Combine runs only there, and microbatch ops have no place in it.
Status CheckQuery(const ModuleDef& def, const QueryDef& query) {
  const TopologyDef& topology = query.topology;
  const std::string where = "query " + Quoted(topology.name);
  if (!IsValidName(topology.name, "")) {
    return Invalid(def, "query name " + Quoted(topology.name) + " is not [A-Za-z0-9_-]+");
  }
  if (topology.kind != TopologyDef::Kind::kQuery || !topology.sources.empty() ||
      !topology.writes.empty()) {
    return Invalid(def, where + " has sources or writes (declare it with ModuleBuilder::Query)");
  }
  std::set<std::string> params;
  for (const QueryParam& param : query.params) {
    if (!IsValidName(param.name, "")) {
      return Invalid(def,
                     where + ": parameter name " + Quoted(param.name) + " is not [A-Za-z0-9_-]+");
    }
    if (!params.insert(param.name).second) {
      return Invalid(def, where + " declares parameter " + param.name + " twice");
    }
    if (param.schema.has_subindexed()) {
      return Invalid(def, where + ": parameter " + param.name + " has schema " +
                              param.schema.ToString() +
                              " with a subindexed part (subindexed is for PStates)");
    }
    if (Status st = PStateSchema{param.schema, false}.Check(); !st.ok()) {
      return Invalid(def, where + ": parameter " + param.name + ": schema " +
                              param.schema.ToString() + ": " + st.message());
    }
  }
  if (topology.ops.empty()) return Invalid(def, where + " has no steps");
  bool at_origin = true;
  for (size_t i = 0; i < topology.ops.size(); ++i) {
    bool is_step = false;
    STRATA_RETURN_IF_ERROR(CheckOp(def, topology, i, &is_step));
    const TopologyOp& op = topology.ops[i];
    const std::string at = where + ", op " + std::to_string(i);
    if (op.kind == TopologyOp::Kind::kAggregate || op.kind == TopologyOp::Kind::kGroupBy ||
        op.kind == TopologyOp::Kind::kEachGroup) {
      return Invalid(def, at + " (" + std::string(OpKindName(op.kind)) +
                              ") is for microbatch topologies only; a query merges with Combine");
    }
    if (IsPartitioner(op.kind)) at_origin = false;
    if (op.kind == TopologyOp::Kind::kOrigin) {
      if (at_origin) {
        return Invalid(def, at + " (origin) is already at the origin: Origin() returns from "
                                 "the partitions, after a partitioner");
      }
      at_origin = true;
    }
    if (op.kind == TopologyOp::Kind::kCombine && !at_origin) {
      return Invalid(def, at + " (combine) runs on the partitions: Combine merges at the "
                               "origin, after Origin()");
    }
  }
  if (!at_origin) {
    return Invalid(def, where +
                            " ends on the partitions: end it with Origin() (and Combine "
                            "to merge the partitions' values into one)");
  }
  return Status::Ok();
}

// A PState or query of another module (MirrorPState, MirrorQuery).
Status CheckMirror(const ModuleDef& def, const MirrorDef& mirror, std::string_view kind,
                   std::string_view sigil) {
  if (!IsValidName(mirror.module, "") || mirror.module == def.name) {
    return Invalid(def, "mirror " + std::string(kind) + " " + mirror.name + " names module " +
                            Quoted(mirror.module) +
                            ", which is not another module's name ([A-Za-z0-9_-]+)");
  }
  if (!IsValidName(mirror.name, sigil)) {
    return Invalid(def, "mirror " + std::string(kind) + " name " + Quoted(mirror.name) +
                            " of module " + mirror.module + " is not " +
                            (sigil.empty() ? std::string() : std::string(sigil) + " followed by ") +
                            "[A-Za-z0-9_-]+");
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
      return Status::Internal(
          "module " + def->name + ": depot " + depot.name +
          ": key path does not survive its wire form: " + path.status().message());
    }
    depot.partitioning.key_path = std::move(path).value();
    Result<Schema> schema = Schema::FromValue(depot.record_schema.ToValue());
    if (!schema.ok() || !(*schema == depot.record_schema)) {
      return Status::Internal("module " + def->name + ": depot " + depot.name + ": record schema " +
                              depot.record_schema.ToString() + " does not survive its wire form" +
                              (schema.ok() ? std::string() : ": " + schema.status().message()));
    }
    depot.record_schema = std::move(schema).value();
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
  for (QueryDef& query : def->queries) {
    for (QueryParam& param : query.params) {
      Result<Schema> schema = Schema::FromValue(param.schema.ToValue());
      if (!schema.ok() || !(*schema == param.schema)) {
        return Status::Internal("module " + def->name + ": query " + query.topology.name +
                                ": parameter " + param.name + ": schema " +
                                param.schema.ToString() + " does not survive its wire form");
      }
      param.schema = std::move(schema).value();
    }
  }
  return Status::Ok();
}

}  // namespace

std::string_view HostAbiStamp() { return STRATA_ABI_STAMP; }

Result<std::string> ModuleFileChecksum(const std::string& path) {
  auto failed = [&](const std::string& what) {
    return Status::IOError("cannot checksum module file " + path + ": " + what + ": " +
                           std::strerror(errno));
  };
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return failed("cannot open it");
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  if (state == nullptr || XXH3_128bits_reset(state.get()) == XXH_ERROR) {
    return Status::Internal("cannot checksum module file " + path + ": no XXH3 state");
  }
  std::vector<char> buffer(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("cannot read it");
    if (n == 0) break;
    XXH3_128bits_update(state.get(), buffer.data(), static_cast<size_t>(n));
  }
  const XXH128_hash_t hash = XXH3_128bits_digest(state.get());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(hash.high64),
                static_cast<unsigned long long>(hash.low64));
  return "xxh3-128:" + std::string(hex);
}

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
  std::map<int, std::string> writer;  // PState index -> the microbatch that writes it
  for (const TopologyDef& topology : def.topologies) {
    STRATA_RETURN_IF_ERROR(CheckTopology(def, topology));
    STRATA_RETURN_IF_ERROR(CheckUnique(def, &topologies, topology.name, "topology"));
    for (int w : topology.writes) {
      auto [it, fresh] = writer.emplace(w, topology.name);
      if (!fresh && it->second != topology.name) {
        return Invalid(def, "PState " + def.pstates[w].name + " is written by microbatch " +
                                "topologies " + it->second + " and " + topology.name +
                                "; a microbatch's PStates have one writer");
      }
    }
  }
  std::set<std::string> queries;
  for (const QueryDef& query : def.queries) {
    STRATA_RETURN_IF_ERROR(CheckQuery(def, query));
    STRATA_RETURN_IF_ERROR(CheckUnique(def, &queries, query.topology.name, "query"));
  }
  for (const MirrorDef& mirror : def.mirror_pstates) {
    STRATA_RETURN_IF_ERROR(CheckMirror(def, mirror, "PState", "$$"));
  }
  for (const MirrorDef& mirror : def.mirror_queries) {
    STRATA_RETURN_IF_ERROR(CheckMirror(def, mirror, "query", ""));
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

Result<std::unique_ptr<LoadedModule>> LoadedModule::Load(const std::string& so_path,
                                                         std::string_view expected_checksum) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(so_path, ec)) {
    return Status::NotFound("no module file at " + so_path);
  }
  // A damaged copy can hold any bytes, including machine code that kills the process
  // (SIGILL) once run: it is refused before anything below reads or maps it.
  if (!expected_checksum.empty()) {
    STRATA_ASSIGN_OR_RETURN(std::string checksum, ModuleFileChecksum(so_path));
    if (checksum != expected_checksum) {
      return Status::Corruption(
          "module file " + so_path + " has checksum " + checksum + ", not the " +
          std::string(expected_checksum) +
          " recorded when it was deployed: the file is damaged or was replaced");
    }
  }
  // Read from the file before dlopen maps it: a refused module runs no code at all, not
  // even its static initialisers.
  STRATA_ASSIGN_OR_RETURN(AbiNote note, ReadAbiNote(so_path));
  if (note.stamp != HostAbiStamp()) return StampMismatch(note.name, so_path, note.stamp);

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
  // Checked again through the entry (the file may have changed since it was read), before
  // any C++ object crosses the boundary: only C strings so far.
  if (std::strcmp(entry->abi_stamp, HostAbiStamp().data()) != 0) {
    return StampMismatch(entry->name, so_path, entry->abi_stamp);
  }

  std::string error;
  if (!entry->define(module->def_.get(), &error)) {
    // The module cannot be loaded as it is: the deploy request is refused, not a topology.
    return Status::InvalidArgument("module " + std::string(entry->name) + " (" + so_path +
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
