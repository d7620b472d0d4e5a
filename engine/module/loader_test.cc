#include "module/loader.h"
#include "strata/testing/test_seed.h"

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string TestModule(const std::string& name) {
  return std::string(STRATA_TEST_MODULE_DIR) + "/" + name + ".so";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A directory of its own under the system temporary directory, removed with the object.
class TempDir {
 public:
  TempDir()
      : path_(
            std::filesystem::temp_directory_path() /
            ("strata_loader_test_" + std::to_string(::getpid()) + "_" + std::to_string(next_++))) {
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  // Writes `bytes` to the file `name` in the directory and returns its path.
  std::string Write(const std::string& name, const std::string& bytes) const {
    std::string path = (path_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

 private:
  static inline int next_ = 0;
  std::filesystem::path path_;
};

std::string ProcMaps() {
  std::ifstream in("/proc/self/maps");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Stands in for the runtime's context: a step function of a loaded plugin needs one to be
// called at all. Records what the step asked for.
class RecordingContext : public TopologyContext {
 public:
  int partition() const override { return 2; }
  int num_partitions() const override { return 8; }
  RecordId source() const override { return {0, 2, 17}; }
  Result<std::vector<Value>> Select(const PStateRef& pstate, const Path&) override {
    return Status::NotFound("no PState " + pstate.name + " in this test");
  }
  Result<Value> SelectOne(const PStateRef& pstate, const Path&) override {
    return Status::NotFound("no PState " + pstate.name + " in this test");
  }
  Result<int64_t> Transform(const PStateRef& pstate, const Path& path) override {
    transforms.push_back(pstate.name + " " + path.ToString());
    return int64_t{1};
  }
  Status Append(const DepotRef& depot, Value record) override {
    appends.push_back(depot.name + " " + record.ToString());
    return Status::Ok();
  }
  void Emit(Value value) override { emitted.push_back(std::move(value)); }
  void SetAckReturn(Value value) override { ack_return = std::move(value); }
  Result<Value> Invoke(const QueryRef& query, std::vector<Value>) override {
    return Status::NotFound("no query " + query.name + " in this test");
  }

  std::vector<Value> emitted;
  std::vector<std::string> transforms;
  std::vector<std::string> appends;
  Value ack_return;
};

const TopologyDef& FindTopology(const ModuleDef& def, const std::string& name) {
  for (const TopologyDef& t : def.topologies) {
    if (t.name == name) return t;
  }
  ADD_FAILURE() << "no topology " << name;
  static const TopologyDef kNone;
  return kNone;
}

TEST(LoaderTest, HostAbiStampNamesSdkCompilerAndStandard) {
  std::string stamp(HostAbiStamp());
  EXPECT_THAT(stamp, HasSubstr("strata-sdk/" + std::to_string(kSdkVersion) + " "));
  EXPECT_THAT(stamp, HasSubstr("gcc/" + std::to_string(__GNUC__) + " "));
  EXPECT_THAT(stamp, HasSubstr("gxx-abi/"));
  EXPECT_THAT(stamp, HasSubstr("cxx11-abi/"));
  EXPECT_THAT(stamp, HasSubstr("std/" + std::to_string(__cplusplus)));
}

TEST(LoaderTest, LoadsValidModuleWithItsDeclarations) {
  auto loaded = LoadedModule::Load(TestModule("sample"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const ModuleDef& def = (*loaded)->def();
  EXPECT_EQ((*loaded)->path(), TestModule("sample"));
  EXPECT_EQ(def.name, "sample");

  ASSERT_EQ(def.depots.size(), 3u);
  EXPECT_EQ(def.depots[0].name, "*events");
  EXPECT_EQ(def.depots[0].partitioning.kind, DepotPartitioning::Kind::kHash);
  EXPECT_EQ(def.depots[0].partitioning.key_path, Path().Key("user"));
  EXPECT_EQ(def.depots[1].name, "*sentences");
  EXPECT_EQ(def.depots[1].partitioning.kind, DepotPartitioning::Kind::kRandom);
  EXPECT_EQ(def.depots[2].name, "*internal");
  EXPECT_EQ(def.depots[2].partitioning.kind, DepotPartitioning::Kind::kNoClientAppends);

  ASSERT_EQ(def.pstates.size(), 2u);
  EXPECT_EQ(def.pstates[0].name, "$$word_counts");
  EXPECT_EQ(def.pstates[0].schema,
            (PStateSchema{Schema::Map(Schema::String(), Schema::Int64()), false}));
  EXPECT_EQ(def.pstates[1].name, "$$follows");
  EXPECT_EQ(def.pstates[1].schema,
            (PStateSchema{Schema::Map(Schema::String(), Schema::Set(Schema::String()).Subindexed()),
                          true}));

  ASSERT_EQ(def.topologies.size(), 2u);
  const TopologyDef& count = def.topologies[0];
  EXPECT_EQ(count.name, "count");
  EXPECT_EQ(count.sources, std::vector<int>{1});
  ASSERT_EQ(count.ops.size(), 3u);
  EXPECT_EQ(count.ops[0].kind, TopologyOp::Kind::kEach);
  EXPECT_EQ(count.ops[1].kind, TopologyOp::Kind::kHashPartition);
  EXPECT_FALSE(count.ops[1].key_fn);  // hashes the value itself
  EXPECT_EQ(count.ops[2].kind, TopologyOp::Kind::kEach);
  const TopologyDef& faulty = def.topologies[1];
  EXPECT_EQ(faulty.sources, (std::vector<int>{0, 1}));
  std::vector<TopologyOp::Kind> kinds;
  for (const TopologyOp& op : faulty.ops) kinds.push_back(op.kind);
  using K = TopologyOp::Kind;
  EXPECT_EQ(kinds, (std::vector<K>{K::kEach, K::kHashPartition, K::kEach, K::kDirect, K::kEach,
                                   K::kEach, K::kGlobal, K::kEach}));
}

TEST(LoaderTest, StepsOfLoadedModuleRunAgainstTheContext) {
  auto loaded = LoadedModule::Load(TestModule("sample"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const TopologyDef& count = FindTopology((*loaded)->def(), "count");
  ASSERT_EQ(count.ops.size(), 3u);

  RecordingContext split;
  ASSERT_TRUE(count.ops[0].fn(split, Value("the cat the")).ok());
  EXPECT_EQ(split.emitted, (std::vector<Value>{"the", "cat", "the"}));
  EXPECT_EQ(split.ack_return, Value(3));

  RecordingContext add;
  ASSERT_TRUE(count.ops[2].fn(add, Value("cat")).ok());
  EXPECT_EQ(add.transforms, std::vector<std::string>{"$$word_counts " +
                                                     Path().Key("cat").NullTo(0).Inc().ToString()});

  const TopologyDef& faulty = FindTopology((*loaded)->def(), "faulty");
  ASSERT_EQ(faulty.ops.size(), 8u);
  Result<int64_t> partition = faulty.ops[3].partition_fn(Value(5));
  ASSERT_TRUE(partition.ok()) << partition.status().ToString();
  EXPECT_EQ(*partition, 5);
  RecordingContext filter;
  ASSERT_TRUE(faulty.ops[5].fn(filter, Value("not an int")).ok());
  ASSERT_TRUE(faulty.ops[5].fn(filter, Value(4)).ok());
  EXPECT_EQ(filter.emitted, std::vector<Value>{Value(4)});
  RecordingContext map;
  ASSERT_TRUE(faulty.ops[7].fn(map, Value(4)).ok());
  EXPECT_EQ(map.emitted, std::vector<Value>{Value(8)});
}

TEST(LoaderTest, UserExceptionsBecomeUserErrorsAndNothingEscapes) {
  auto loaded = LoadedModule::Load(TestModule("sample"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const TopologyDef& faulty = FindTopology((*loaded)->def(), "faulty");
  ASSERT_EQ(faulty.ops.size(), 8u);
  RecordingContext ctx;

  // A std::exception: its what().
  Status thrown = faulty.ops[0].fn(ctx, Value("r1"));
  EXPECT_EQ(thrown.code(), StatusCode::kUserError);
  EXPECT_EQ(thrown.message(), "cannot handle \"r1\"");

  // A key function's exception: the Result carries it.
  Result<Value> key = faulty.ops[1].key_fn(Value("r1"));
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kUserError);
  EXPECT_EQ(key.status().message(), "no key");

  // Not a std::exception.
  Status thrown_int = faulty.ops[2].fn(ctx, Value("r1"));
  EXPECT_EQ(thrown_int.code(), StatusCode::kUserError);
  EXPECT_THAT(thrown_int.message(), HasSubstr("non-standard exception"));

  // A library exception inside user code (Value::as_int of a string).
  Result<int64_t> partition = faulty.ops[3].partition_fn(Value("not an int"));
  ASSERT_FALSE(partition.ok());
  EXPECT_EQ(partition.status().code(), StatusCode::kUserError);

  // A returned error is passed on unchanged.
  Status returned = faulty.ops[4].fn(ctx, Value(7));
  EXPECT_EQ(returned.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(returned.message(), "rejected 7");

  EXPECT_TRUE(ctx.emitted.empty());
}

TEST(LoaderTest, RefusesMismatchedAbiNamingBothStampsWithoutRunningIt) {
  constexpr char kMarker[] = "STRATA_TEST_MISMATCHED_ABI_INITIALISED";
  ::unsetenv(kMarker);
  std::string path = TestModule("mismatched_abi");
  auto loaded = LoadedModule::Load(path);
  // Refused from the file's ABI note: dlopen never ran the module's static initialiser.
  EXPECT_EQ(std::getenv(kMarker), nullptr);
  EXPECT_THAT(ProcMaps(), Not(HasSubstr(path)));
  // The marker works: loading the module for real sets it.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  EXPECT_STREQ(std::getenv(kMarker), "1");
  dlclose(handle);
  ::unsetenv(kMarker);

  ASSERT_FALSE(loaded.ok());
  const Status& st = loaded.status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  std::string module_stamp(HostAbiStamp());
  module_stamp.replace(module_stamp.find("strata-sdk/" + std::to_string(kSdkVersion)),
                       std::string("strata-sdk/" + std::to_string(kSdkVersion)).size(),
                       "strata-sdk/999");
  EXPECT_EQ(st.message(), "module mismatched (" + path + ") was built for " + module_stamp +
                              "; this server is " + std::string(HostAbiStamp()) +
                              " (rebuild the module against this server's SDK)");
}

TEST(LoaderTest, RefusesModuleWhoseDefineThrows) {
  auto loaded = LoadedModule::Load(TestModule("throwing_define"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(), HasSubstr("module throwing_define"));
  EXPECT_THAT(loaded.status().message(), HasSubstr("define refuses: no configuration"));
}

TEST(LoaderTest, RefusesDuplicatePStateName) {
  auto loaded = LoadedModule::Load(TestModule("duplicate_pstate"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(), "module duplicate_pstate: declares PState $$state twice");
}

TEST(LoaderTest, LoadsAMigrationWhoseExceptionsStayInThePlugin) {
  auto loaded = LoadedModule::Load(TestModule("migration"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const PStateDef& balances = (*loaded)->def().pstates.at(0);
  ASSERT_TRUE(balances.migration.has_value());
  EXPECT_EQ(balances.migration->id, "balance-to-record");
  Result<Value> migrated = balances.migration->fn(Value(int64_t{5}));
  ASSERT_TRUE(migrated.ok()) << migrated.status().ToString();
  EXPECT_EQ(*migrated, Value::MapOf({{"amount", int64_t{5}}, {"currency", "EUR"}}));
  // Idempotent: a migrated value comes back unchanged.
  EXPECT_EQ(balances.migration->fn(*migrated).value(), *migrated);
  Result<Value> thrown = balances.migration->fn(Value("x"));
  EXPECT_EQ(thrown.status().code(), StatusCode::kUserError);
  EXPECT_EQ(thrown.status().message(), "not a balance: \"x\"");
}

TEST(LoaderTest, RefusesTwoMigrationsOfOnePState) {
  auto loaded = LoadedModule::Load(TestModule("duplicate_migration"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("its define function failed: Migrate: PState $$balances already has "
                        "migration \"balance-to-record\" (one migration per PState)"));
}

TEST(LoaderTest, RefusesSharedLibraryWithoutEntryPoint) {
  std::string path = TestModule("no_entry");
  auto loaded = LoadedModule::Load(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(),
            path +
                " is not a Strata module: it exports no strata_module_entry_v1 "
                "(declare one with STRATA_MODULE)");
}

TEST(LoaderTest, RefusesSharedLibraryWithoutAbiNote) {
  std::string path = TestModule("no_abi_note");
  auto loaded = LoadedModule::Load(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(),
            path +
                " is not a Strata module: it has no .strata_abi section (build it with "
                "STRATA_MODULE against this server's SDK)");
  EXPECT_THAT(ProcMaps(), Not(HasSubstr(path)));
}

TEST(LoaderTest, RefusesFileThatIsNotElf) {
  TempDir dir;
  std::string text = dir.Write(
      "text.so",
      "this is not a shared object, but a text long enough to be read as an ELF header\n");
  std::string empty = dir.Write("empty.so", "");
  auto loaded = LoadedModule::Load(text);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(), "cannot load module " + text + ": not an ELF file");
  loaded = LoadedModule::Load(empty);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "cannot load module " + empty + ": file too short for an ELF header (0 bytes)");
}

TEST(LoaderTest, ModuleFileChecksumIsXxh3Of128BitsOverTheBytes) {
  TempDir dir;
  // XXH3-128 of the empty input, from the xxHash reference (XXH3_128bits("", 0)).
  EXPECT_EQ(*ModuleFileChecksum(dir.Write("empty.so", "")),
            "xxh3-128:99aa06d3014798d86001c324468d497f");
  const std::string a = *ModuleFileChecksum(dir.Write("a.so", "a"));
  EXPECT_THAT(a, ::testing::MatchesRegex("xxh3-128:[0-9a-f]{32}"));
  EXPECT_NE(a, *ModuleFileChecksum(dir.Write("b.so", "b")));
  Result<std::string> missing = ModuleFileChecksum(dir.Write("x", "") + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIOError);
  EXPECT_THAT(missing.status().message(), HasSubstr("x.missing: cannot open it"));
}

// A copy whose bytes differ from the recorded checksum is refused before anything reads,
// maps or runs it; the same file with its own checksum loads.
TEST(LoaderTest, RefusesFileWhoseChecksumDiffersWithoutMappingIt) {
  TempDir dir;
  std::string bytes = ReadFile(TestModule("sample"));
  const std::string good = dir.Write("good.so", bytes);
  const std::string checksum = *ModuleFileChecksum(good);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 8; ++i) {
    bytes[i] = static_cast<char>(~bytes[i]);
  }
  const std::string bad = dir.Write("bad.so", bytes);
  const std::string bad_checksum = *ModuleFileChecksum(bad);
  ASSERT_NE(bad_checksum, checksum);

  auto loaded = LoadedModule::Load(bad, checksum);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(loaded.status().message(),
            "module file " + bad + " has checksum " + bad_checksum + ", not the " + checksum +
                " recorded when it was deployed: the file is damaged or was replaced");
  EXPECT_THAT(ProcMaps(), Not(HasSubstr(bad)));

  auto fine = LoadedModule::Load(good, checksum);
  ASSERT_TRUE(fine.ok()) << fine.status().ToString();
  EXPECT_EQ((*fine)->def().name, "sample");
}

// Copies of a valid module, each broken in one way: refused from the file, never mapped.
TEST(LoaderTest, RefusesTruncatedOrCorruptElfWithoutMappingIt) {
  const std::string valid = ReadFile(TestModule("sample"));
  ASSERT_GT(valid.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr header;
  std::memcpy(&header, valid.data(), sizeof(header));
  ASSERT_GT(header.e_shoff, 0u);
  ASSERT_GT(header.e_shnum, 0u);
  auto with_header = [&](const std::function<void(Elf64_Ehdr*)>& change) {
    Elf64_Ehdr h = header;
    change(&h);
    std::string bytes = valid;
    std::memcpy(bytes.data(), &h, sizeof(h));
    return bytes;
  };
  // The file with section `index`'s header changed.
  auto with_section = [&](size_t index, const std::function<void(Elf64_Shdr*)>& change) {
    std::string bytes = valid;
    Elf64_Shdr section;
    const size_t at = header.e_shoff + index * sizeof(Elf64_Shdr);
    std::memcpy(&section, bytes.data() + at, sizeof(section));
    change(&section);
    std::memcpy(bytes.data() + at, &section, sizeof(section));
    return bytes;
  };
  std::string garbage = valid.substr(0, sizeof(Elf64_Ehdr));
  const uint64_t seed = strata::testing::TestSeed(20261126);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 random(seed);
  while (garbage.size() < valid.size()) garbage.push_back(static_cast<char>(random()));

  struct Case {
    std::string what;
    std::string bytes;
    std::string message;  // a substring of the refusal
  };
  std::vector<Case> cases = {
      {"truncated header", valid.substr(0, 40), "file too short for an ELF header (40 bytes)"},
      {"truncated before the section headers", valid.substr(0, header.e_shoff + 10),
       "is past the end of the file"},
      {"truncated inside the section headers", valid.substr(0, valid.size() - 70),
       "does not fit the file"},
      {"32-bit class", with_header([](Elf64_Ehdr* h) { h->e_ident[EI_CLASS] = ELFCLASS32; }),
       "not a 64-bit ELF file"},
      {"section header offset past the end",
       with_header([](Elf64_Ehdr* h) { h->e_shoff = ~uint64_t{0} - 8; }),
       "past the end of the file"},
      {"huge section count", with_header([](Elf64_Ehdr* h) { h->e_shnum = 0xfff0; }),
       "does not fit the file"},
      {"section header size", with_header([](Elf64_Ehdr* h) { h->e_shentsize = 12; }),
       "section header size 12, not 64"},
      {"name table index out of range",
       with_header([](Elf64_Ehdr* h) { h->e_shstrndx = h->e_shnum + 3; }),
       "is not one of the " + std::to_string(header.e_shnum) + " sections"},
      {"name table is not a string table", with_header([](Elf64_Ehdr* h) { h->e_shstrndx = 1; }),
       ""},
      {"garbage after the header", garbage, ""},
      // Found by fuzz_abi_note: the name table's size was allocated before it was checked.
      {"name table of an absurd size",
       with_section(header.e_shstrndx, [](Elf64_Shdr* s) { s->sh_size = uint64_t{1} << 62; }),
       "section name table ["},
  };
  TempDir dir;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::string path = dir.Write("broken" + std::to_string(i) + ".so", c.bytes);
    auto loaded = LoadedModule::Load(path);
    ASSERT_FALSE(loaded.ok()) << c.what;
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(loaded.status().message(), HasSubstr(path)) << c.what;
    EXPECT_THAT(loaded.status().message(), HasSubstr(c.message)) << c.what;
    EXPECT_THAT(ProcMaps(), Not(HasSubstr(path))) << c.what;
  }
}

// The stamp is read from the file: a copy whose note claims another SDK is refused before
// dlopen, naming the stamp it claims.
TEST(LoaderTest, RefusesFileWhoseAbiNoteWasChanged) {
  std::string bytes = ReadFile(TestModule("sample"));
  const std::string stamp(HostAbiStamp());
  std::string other = stamp;
  other.replace(other.find("strata-sdk/"), std::strlen("strata-sdk/") + 1, "strata-sdk/7");
  ASSERT_EQ(other.size(), stamp.size());
  size_t replaced = 0;
  for (size_t at = bytes.find(stamp); at != std::string::npos; at = bytes.find(stamp, at)) {
    bytes.replace(at, stamp.size(), other);
    ++replaced;
  }
  ASSERT_EQ(replaced, 1u);  // only in the note: the entry points at it
  TempDir dir;
  std::string path = dir.Write("changed.so", bytes);
  auto loaded = LoadedModule::Load(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(), "module sample (" + path + ") was built for " + other +
                                           "; this server is " + stamp +
                                           " (rebuild the module against this server's SDK)");
  EXPECT_THAT(ProcMaps(), Not(HasSubstr(path)));
}

TEST(LoaderTest, MissingFileIsNotFound) {
  auto loaded = LoadedModule::Load(TestModule("does_not_exist"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(loaded.status().message(), "no module file at " + TestModule("does_not_exist"));
}

TEST(LoaderTest, DestroyingUnloadsTheSharedObjectAndDataOutlivesIt) {
  std::string path = TestModule("sample");
  PStateSchema schema;
  Path key_path;
  Schema record_schema;
  {
    auto loaded = LoadedModule::Load(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    ASSERT_THAT(ProcMaps(), HasSubstr(path));
    schema = (*loaded)->def().pstates[1].schema;
    key_path = (*loaded)->def().depots[0].partitioning.key_path;
    record_schema = (*loaded)->def().depots[0].record_schema;
  }
  EXPECT_THAT(ProcMaps(), Not(HasSubstr(path)));
  // Built by the host, so still usable (and destructible) with the plugin unmapped.
  EXPECT_EQ(schema.ToString(), "global map<string, subindexed set<string>>");
  EXPECT_EQ(key_path, Path().Key("user"));
  EXPECT_EQ(record_schema.ToString(), "record{n: int64, user: string}");
}

// ---- ValidateModuleDef on declarations built in the test ---------------------------------

StepFn NoopStep() {
  return [](TopologyContext&, const Value&) { return Status::Ok(); };
}

// A valid module; each case below breaks one thing in it.
ModuleDef ValidDef() {
  ModuleDef def;
  def.name = "valid";
  ModuleBuilder m(&def);
  auto in = m.Depot("*in", DepotPartitioning::Hash(Path().Key("k")));
  m.PState("$$p", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("t")
      .Source(in)
      .Each([](TopologyContext&, const Value&) {})
      .Shuffle()
      .Each([](TopologyContext&, const Value&) {});
  return def;
}

TEST(ValidateModuleDefTest, AcceptsValidDefinition) {
  Status st = ValidateModuleDef(ValidDef());
  EXPECT_TRUE(st.ok()) << st.ToString();
}

struct BrokenCase {
  std::string what;
  std::function<void(ModuleDef*)> breaks;
  std::string message;
};

TEST(ValidateModuleDefTest, RefusesEachKindOfBrokenDeclaration) {
  std::vector<BrokenCase> cases = {
      {"module name", [](ModuleDef* d) { d->name = "my module"; },
       "module name \"my module\" is not [A-Za-z0-9_-]+"},
      {"empty module name", [](ModuleDef* d) { d->name = ""; }, "module name \"\" is not"},
      {"depot name without *", [](ModuleDef* d) { d->depots[0].name = "in"; },
       "module valid: depot name \"in\" is not * followed by [A-Za-z0-9_-]+"},
      {"depot name only *", [](ModuleDef* d) { d->depots[0].name.assign(1, '*'); },
       "depot name \"*\""},
      {"depot name with dot", [](ModuleDef* d) { d->depots[0].name = "*a.b"; },
       "depot name \"*a.b\""},
      {"duplicate depot",
       [](ModuleDef* d) {
         d->depots.push_back({"*in", DepotPartitioning::Random(), Schema::Any(), 0, {}});
       },
       "module valid: declares depot *in twice"},
      {"hash key path with terminal",
       [](ModuleDef* d) { d->depots[0].partitioning.key_path = Path().Key("k").Inc(); },
       "depot *in: hash key path " + Path().Key("k").Inc().ToString() +
           " is a transform, not a select path"},
      {"invalid hash key path",
       [](ModuleDef* d) { d->depots[0].partitioning.key_path = Path().Nth(-1); },
       "depot *in: hash key path: "},
      {"subindexed record schema",
       [](ModuleDef* d) {
         d->depots[0].record_schema =
             Schema::Record({{"tags", Schema::Set(Schema::String()).Subindexed()}});
       },
       "module valid: depot *in: record schema record{tags: subindexed set<string>} has a "
       "subindexed part"},
      {"record schema with a duplicate field",
       [](ModuleDef* d) {
         d->depots[0].record_schema =
             Schema::Record({{"k", Schema::String()}, {"k", Schema::Int64()}});
       },
       "module valid: depot *in: record schema record{k: string, k: int64}: "},
      {"unknown partitioning",
       [](ModuleDef* d) {
         d->depots[0].partitioning.kind = static_cast<DepotPartitioning::Kind>(9);
       },
       "depot *in has unknown partitioning kind 9"},
      {"PState name with one $", [](ModuleDef* d) { d->pstates[0].name = "$p"; },
       "PState name \"$p\" is not $$ followed by [A-Za-z0-9_-]+"},
      {"duplicate PState",
       [](ModuleDef* d) {
         d->pstates.push_back({"$$p", PStateSchema{Schema::Int64(), false}, std::nullopt});
       },
       "module valid: declares PState $$p twice"},
      {"schema failing Check",
       [](ModuleDef* d) {
         d->pstates[0].schema = PStateSchema{Schema::Int64().Subindexed(), false};
       },
       "module valid: PState $$p: schema "},
      {"topology name", [](ModuleDef* d) { d->topologies[0].name = "a/b"; },
       "topology name \"a/b\" is not [A-Za-z0-9_-]+"},
      {"duplicate topology", [](ModuleDef* d) { d->topologies.push_back(d->topologies[0]); },
       "module valid: declares topology t twice"},
      {"topology without source", [](ModuleDef* d) { d->topologies[0].sources.clear(); },
       "topology t has no source depot"},
      {"source index out of range", [](ModuleDef* d) { d->topologies[0].sources = {1}; },
       "topology t has source depot index 1, but the module declares 1 depots"},
      {"negative source index", [](ModuleDef* d) { d->topologies[0].sources = {-1}; },
       "topology t has source depot index -1"},
      {"source twice",
       [](ModuleDef* d) {
         d->topologies[0].sources = {0, 0};
       },
       "topology t lists source depot *in twice"},
      {"no ops", [](ModuleDef* d) { d->topologies[0].ops.clear(); }, "topology t has no steps"},
      {"step without function", [](ModuleDef* d) { d->topologies[0].ops[2].fn = nullptr; },
       "topology t, op 2 (each) has no function"},
      {"direct without function",
       [](ModuleDef* d) {
         d->topologies[0].ops[1] =
             TopologyOp{TopologyOp::Kind::kDirect, {}, {}, {}, -1, {}, {}, {}};
       },
       "topology t, op 1 (direct) has no partition function"},
      {"unknown op kind",
       [](ModuleDef* d) { d->topologies[0].ops[1].kind = static_cast<TopologyOp::Kind>(42); },
       "topology t, op 1 has unknown kind 42"},
      {"ends with partitioner", [](ModuleDef* d) { d->topologies[0].ops.pop_back(); },
       "topology t ends with a partitioner (shuffle) that no step follows"},
  };
  for (const BrokenCase& c : cases) {
    ModuleDef def = ValidDef();
    c.breaks(&def);
    Status st = ValidateModuleDef(def);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
  }
}

// A valid module with a microbatch topology; each case below breaks one thing in it.
ModuleDef ValidMicrobatchDef() {
  ModuleDef def;
  def.name = "mb";
  ModuleBuilder m(&def);
  auto in = m.Depot("*in", DepotPartitioning::Random());
  m.TickDepot("*ticks", 100);
  auto counts = m.PState("$$counts", Schema::Map(Schema::String(), Schema::Int64()));
  auto seen = m.PState("$$seen", Schema::Map(Schema::String(), Schema::Int64()));
  m.Microbatch("b")
      .Source(in)
      .Writes(seen)
      .Aggregate(
          counts, [](const Value& v) { return v; }, agg::Count())
      .GroupBy([](const Value& kv) { return kv.as_list()[0]; })
      .EachGroup([](TopologyContext&, const Value&, const std::vector<Value>&) {});
  return def;
}

TEST(ValidateModuleDefTest, AcceptsAValidMicrobatch) {
  Status st = ValidateModuleDef(ValidMicrobatchDef());
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(ValidateModuleDefTest, RefusesEachKindOfBrokenMicrobatch) {
  std::vector<BrokenCase> cases = {
      {"aggregate in a stream",
       [](ModuleDef* d) { d->topologies[0].kind = TopologyDef::Kind::kStream; },
       "topology b, op 0 (aggregate) is for microbatch topologies only"},
      {"each group without group by",
       [](ModuleDef* d) { d->topologies[0].ops.erase(d->topologies[0].ops.begin() + 1); },
       "topology b, op 1 (each group): GroupBy must be followed by EachGroup"},
      {"group by at the end", [](ModuleDef* d) { d->topologies[0].ops.pop_back(); },
       "topology b ends with GroupBy: GroupBy must be followed by EachGroup"},
      {"each after group by",
       [](ModuleDef* d) {
         d->topologies[0].ops.back().kind = TopologyOp::Kind::kEach;
         d->topologies[0].ops.back().fn = [](TopologyContext&, const Value&) {
           return Status::Ok();
         };
       },
       "topology b, op 2 (each) follows GroupBy: GroupBy must be followed by EachGroup"},
      {"a count into a map of strings",
       [](ModuleDef* d) {
         d->pstates[0].schema =
             PStateSchema{Schema::Map(Schema::String(), Schema::String()), false};
       },
       "topology b, op 0 (aggregate) writes $$counts, whose schema map<string, string> holds "
       "string values, but the combiner needs int64 values (a count)"},
      {"aggregate of an unknown PState", [](ModuleDef* d) { d->topologies[0].ops[0].pstate = 7; },
       "topology b, op 0 (aggregate) writes PState index 7, but the module declares 2 PStates"},
      {"top-N of 0",
       [](ModuleDef* d) {
         d->topologies[0].ops[0].combiner = agg::TopN(
             0, [](const Value& v) { return v; }, [](const Value& v) { return v; });
       },
       "TopN keeps 0 items; it must keep 1 to 10,000"},
      {"top-N without an id",
       [](ModuleDef* d) {
         d->topologies[0].ops[0].combiner = agg::TopN(
             5, [](const Value& v) { return v; }, [](const Value& v) { return v; });
         d->topologies[0].ops[0].combiner.id_of = nullptr;
       },
       "TopN needs a sort key and an id function"},
      {"two writers",
       [](ModuleDef* d) {
         ModuleBuilder m(d);
         m.Microbatch("c")
             .Source(DepotRef{"*in", 0})
             .Writes(PStateRef{"$$seen", 1, {}})
             .Each([](TopologyContext&, const Value&) {});
       },
       "PState $$seen is written by microbatch topologies b and c"},
      {"writes of an unknown PState", [](ModuleDef* d) { d->topologies[0].writes.push_back(9); },
       "topology b writes PState index 9"},
      {"tick interval too short", [](ModuleDef* d) { d->depots[1].tick_interval_ms = 5; },
       "tick depot *ticks ticks every 5 ms; the interval must be 10 ms to one day"},
      {"tick depot taking client appends",
       [](ModuleDef* d) { d->depots[1].partitioning = DepotPartitioning::Random(); },
       "tick depot *ticks must take no client appends and have record schema Int64"},
  };
  for (const BrokenCase& c : cases) {
    ModuleDef def = ValidMicrobatchDef();
    c.breaks(&def);
    Status st = ValidateModuleDef(def);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
  }
}

Value Same(const Value& v) { return v; }

TEST(ValidateModuleDefTest, AcceptsAMigrationOfAMapWithBlobValues) {
  ModuleDef def = ValidDef();
  ModuleBuilder m(&def);
  m.Migrate(PStateRef{"$$p", 0, {}}, "m1", Same);
  ASSERT_TRUE(def.pstates[0].migration.has_value());
  Status st = ValidateModuleDef(def);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(ValidateModuleDefTest, RefusesMisplacedMigrations) {
  auto with_schema = [](Schema root) {
    return [root](ModuleDef* d) {
      d->pstates[0].schema = PStateSchema{root, false};
      d->pstates[0].migration = MigrationDef{"m1", Same};
    };
  };
  std::vector<BrokenCase> cases = {
      {"empty id",
       [](ModuleDef* d) {
         d->pstates[0].migration = MigrationDef{"", Same};
       },
       "module valid: PState $$p: a migration needs an id"},
      {"no function",
       [](ModuleDef* d) {
         d->pstates[0].migration = MigrationDef{"m1", nullptr};
       },
       "module valid: PState $$p: migration \"m1\" has no function"},
      {"root not a map", with_schema(Schema::List(Schema::Int64())),
       "module valid: PState $$p: migration \"m1\": the schema list<int64> is not a map; a "
       "migration rewrites the values under the top-level keys of a map"},
      {"subindexed values",
       with_schema(Schema::Map(Schema::String(), Schema::Set(Schema::Int64()).Subindexed())),
       "module valid: PState $$p: migration \"m1\": the map's values (subindexed set<int64>) "
       "have a subindexed part"},
      {"values with a subindexed field",
       with_schema(Schema::Map(Schema::String(),
                               Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}}))),
       "the map's values (record{s: subindexed set<int64>}) have a subindexed part"},
  };
  for (const BrokenCase& c : cases) {
    ModuleDef def = ValidDef();
    c.breaks(&def);
    Status st = ValidateModuleDef(def);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(st.message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(ModuleBuilderTest, MigrateRefusesAPStateItDidNotDeclare) {
  ModuleDef def = ValidDef();
  ModuleBuilder m(&def);
  for (const PStateRef& ref : {PStateRef{"$$other", 0, {}}, PStateRef{"$$p", 1, {}}, PStateRef{}}) {
    try {
      m.Migrate(ref, "m1", Same);
      ADD_FAILURE() << "no exception for " << ref.name << " #" << ref.index;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()),
                "Migrate: " + ref.name + " is not a PState declared by this module");
    }
  }
  EXPECT_FALSE(def.pstates[0].migration.has_value());
}

// ---- Queries and mirrors ---------------------------------------------------------------

// A query of ValidDef's module built by `build`, checked alone.
Status CheckQueryDef(const std::function<void(ModuleBuilder&)>& build) {
  ModuleDef def = ValidDef();
  ModuleBuilder m(&def);
  build(m);
  return ValidateModuleDef(def);
}

TEST(ValidateModuleDefTest, AcceptsQueriesAndMirrors) {
  Status st = CheckQueryDef([](ModuleBuilder& m) {
    m.Query("one").Param("k", Schema::String()).Each([](TopologyContext&, const Value&) {});
    m.Query("fan")
        .AllPartitions()
        .Each([](TopologyContext&, const Value&) {})
        .Origin()
        .Combine(agg::Count())
        .Each([](TopologyContext&, const Value&) {});
    m.Query("two-hops")
        .HashPartition([](const Value& v) { return v; })
        .Each([](TopologyContext&, const Value&) {})
        .Direct([](const Value&) { return 0; })
        .Each([](TopologyContext&, const Value&) {})
        .Origin();
    m.MirrorDepot("other", "*events");
    m.MirrorPState("other", "$$counts");
    m.MirrorQuery("other", "top");
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST(ValidateModuleDefTest, RefusesMisplacedQueryOps) {
  auto step = [](TopologyContext&, const Value&) {};
  struct Case {
    std::function<void(ModuleBuilder&)> build;
    std::string message;
  };
  std::vector<Case> cases = {
      {[&](ModuleBuilder& m) { m.Query("q").AllPartitions().Each(step); },
       "query \"q\" ends on the partitions: end it with Origin()"},
      {[&](ModuleBuilder& m) { m.Query("q").Each(step).Origin(); },
       "query \"q\", op 1 (origin) is already at the origin"},
      {[&](ModuleBuilder& m) { m.Query("q").AllPartitions().Combine(agg::Sum()).Origin(); },
       "query \"q\", op 1 (combine) runs on the partitions"},
      {[&](ModuleBuilder& m) { m.Query("q"); }, "query \"q\" has no steps"},
      {[&](ModuleBuilder& m) { m.Query("bad name").Each(step); },
       "query name \"bad name\" is not [A-Za-z0-9_-]+"},
      {[&](ModuleBuilder& m) {
         m.Query("q").Each(step);
         m.Query("q").Each(step);
       },
       "declares query q twice"},
      {[&](ModuleBuilder& m) { m.Query("q").Param("n").Param("n").Each(step); },
       "query \"q\" declares parameter n twice"},
      {[&](ModuleBuilder& m) { m.Query("q").Param("a b").Each(step); },
       "parameter name \"a b\" is not"},
      {[&](ModuleBuilder& m) {
         m.Query("q").Param("s", Schema::Set(Schema::Int64()).Subindexed()).Each(step);
       },
       "with a subindexed part"},
      {[&](ModuleBuilder& m) { m.MirrorDepot("valid", "*in2"); },
       "mirror depot *in2 names module \"valid\", which is not another module's name"},
      {[&](ModuleBuilder& m) { m.MirrorPState("other", "counts"); },
       "mirror PState name \"counts\" of module other is not $$ followed by"},
      {[&](ModuleBuilder& m) { m.MirrorQuery("", "top"); }, "mirror query top names module \"\""},
  };
  for (const Case& c : cases) {
    Status st = CheckQueryDef(c.build);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(st.message(), HasSubstr(c.message));
  }
}

TEST(ValidateModuleDefTest, RefusesQueryOpsInTopologiesAndAggregatesInQueries) {
  ModuleDef def = ValidDef();
  TopologyOp origin;
  origin.kind = TopologyOp::Kind::kOrigin;
  def.topologies[0].ops.insert(def.topologies[0].ops.begin() + 1, origin);
  Status st = ValidateModuleDef(def);
  EXPECT_THAT(st.message(), HasSubstr("topology t, op 1 (origin) is for queries only"));

  def = ValidDef();
  QueryDef& q = def.queries.emplace_back();
  q.topology.name = "q";
  q.topology.kind = TopologyDef::Kind::kQuery;
  TopologyOp group;
  group.kind = TopologyOp::Kind::kGroupBy;
  group.key_fn = [](const Value& v) -> Result<Value> { return v; };
  q.topology.ops.push_back(group);
  st = ValidateModuleDef(def);
  EXPECT_THAT(st.message(), HasSubstr("is for microbatch topologies only"));
}

TEST(ValidateModuleDefTest, AcceptsEveryPartitionerBeforeAStep) {
  ModuleDef def = ValidDef();
  std::vector<TopologyOp> partitioners = {
      {TopologyOp::Kind::kHashPartition, {}, {}, {}, -1, {}, {}, {}},
      {TopologyOp::Kind::kHashPartition,
       {},
       [](const Value& v) -> Result<Value> { return v; },
       {},
       -1,
       {},
       {},
       {}},
      {TopologyOp::Kind::kAllPartitions, {}, {}, {}, -1, {}, {}, {}},
      {TopologyOp::Kind::kGlobal, {}, {}, {}, -1, {}, {}, {}},
      {TopologyOp::Kind::kShuffle, {}, {}, {}, -1, {}, {}, {}},
      {TopologyOp::Kind::kDirect,
       {},
       {},
       [](const Value&) -> Result<int64_t> { return 0; },
       -1,
       {},
       {},
       {}},
  };
  def.topologies[0].ops.clear();
  for (TopologyOp& op : partitioners) {
    def.topologies[0].ops.push_back(std::move(op));
    def.topologies[0].ops.push_back({TopologyOp::Kind::kEach, NoopStep(), {}, {}, -1, {}, {}, {}});
  }
  Status st = ValidateModuleDef(def);
  EXPECT_TRUE(st.ok()) << st.ToString();
}

}  // namespace
}  // namespace strata
