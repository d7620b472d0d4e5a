// The plugin host: loads a module's shared object, checks its ABI stamp, runs its define
// function and validates what it declared. The runtime deploys modules through it. See
// docs/modules.md ("The ABI stamp and what is refused").
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "strata/module.h"
#include "strata/status.h"

namespace strata {

// What STRATA_DETAIL_ABI_NOTE put in a module's .strata_abi section.
struct AbiNote {
  std::string stamp;
  std::string name;
  bool operator==(const AbiNote&) const = default;
};

// Reads the ABI note of the ELF file at `path` from its section headers, without mapping
// or running anything of it. The file is untrusted: every offset and size is checked
// against the file's size before it is read. A file that is not a well-formed 64-bit ELF
// file of this byte order is refused with "cannot load module PATH: <what is wrong>"; one
// without a well-formed .strata_abi section (a stamp of printable ASCII and a name of
// [A-Za-z0-9_-]+, each NUL-terminated, at most 4 KiB) with "PATH is not a Strata module:
// ...". kInvalidArgument either way. Thread-safe.
Result<AbiNote> ReadAbiNote(const std::string& path);
// The same parser on a file's bytes already in memory (tests/fuzz/fuzz_abi_note.cc);
// `path` only names the file in messages.
Result<AbiNote> ParseAbiNote(std::string_view file, const std::string& path);

// A plugin loaded with dlopen(RTLD_NOW | RTLD_LOCAL), ABI-checked and validated. Keeps the
// shared object open while it lives: the ModuleDef's functions are code inside it.
//
// Ownership: the TopologyOp and MigrationDef functions of def() (and copies of them) must
// be destroyed before this object. Everything else in def() (names, schemas, key paths) is rebuilt
// by the host during Load and may outlive it. Threading: def() is immutable after Load and may be
// read from any thread; its functions may be called concurrently, each call with its own
// TopologyContext. Paths: dlopen hands back the object already loaded from a path while one is (the
// destructor's dlclose unmaps it when nothing else holds it), so load a changed plugin
// from a new path rather than overwriting the file of a loaded one.
class LoadedModule {
 public:
  // Refuses, in this order: a file that does not exist (kNotFound); then, read from the
  // file before dlopen so that a refused module runs no code: when `expected_checksum` is
  // not empty, a file whose ModuleFileChecksum differs from it (kCorruption naming the file
  // and both checksums); then (kInvalidArgument each) a file that is not a well-formed
  // 64-bit ELF file, one without a well-formed .strata_abi
  // ABI note, a note whose stamp is not HostAbiStamp() (naming both stamps); then one
  // dlopen rejects (kInvalidArgument with dlerror's message); a shared object without the
  // `strata_module_entry_v1` symbol (kInvalidArgument); an entry whose stamp is not
  // HostAbiStamp() (as for the note); a define function that fails (kInvalidArgument
  // with its message); declarations ValidateModuleDef refuses. See docs/modules.md.
  static Result<std::unique_ptr<LoadedModule>> Load(const std::string& so_path,
                                                    std::string_view expected_checksum = {});
  ~LoadedModule();  // destroys def_ first, then dlclose

  LoadedModule(const LoadedModule&) = delete;
  LoadedModule& operator=(const LoadedModule&) = delete;

  const ModuleDef& def() const { return *def_; }
  const std::string& path() const { return path_; }

 private:
  // Only Load constructs: the passkey keeps the constructor out of other hands while
  // letting std::make_unique call it.
  struct Passkey {
    explicit Passkey() = default;
  };

 public:
  LoadedModule(Passkey, std::string path, void* handle);

 private:
  std::string path_;
  void* handle_;  // from dlopen; closed by the destructor
  std::unique_ptr<ModuleDef> def_;
};

// Checks a module's declarations: the module name and topology names are
// [A-Za-z0-9_-]+, depot names *[A-Za-z0-9_-]+, PState names $$[A-Za-z0-9_-]+, each unique
// in its kind; every depot partitioning is known and a kHash key path is a valid select
// path (no terminal); every depot record schema has no subindexed part and unique record
// field names; every PState schema passes PStateSchema::Check; a PState's migration has
// an id and a function, and its PState's root is a map whose values have no subindexed
// part; every topology has
// at least one source, valid and distinct source depot indexes, at least one op, no op
// kind unknown or without its function, and a step after its last partitioner. The first
// problem is returned as kInvalidArgument naming the module and the offending thing.
Status ValidateModuleDef(const ModuleDef& def);

// The checksum of the file at `path` as the host records it for a deployed module:
// "xxh3-128:" and 32 lowercase hex digits of XXH3-128 (seed 0) over the file's bytes. It
// detects a damaged file (flipped bytes, a truncated copy) before dlopen runs any of it; it
// is not a security feature: whoever can change the file can change the recorded checksum
// too. kIOError when the file cannot be read.
Result<std::string> ModuleFileChecksum(const std::string& path);

// STRATA_ABI_STAMP as compiled into the host, e.g.
// "strata-sdk/3 gcc/12 gxx-abi/1017 cxx11-abi/1 std/202002".
std::string_view HostAbiStamp();

}  // namespace strata
