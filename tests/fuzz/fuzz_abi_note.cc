// libFuzzer target for the module loader's ABI-note reader (engine/module/loader.h): the
// input is a module file, which LoadedModule::Load reads with ReadAbiNote before dlopen.
// ParseAbiNote runs the reader's parser on the bytes in memory, ReadAbiNote on the same
// bytes written to a temporary file.
//
// Asserted beyond "no crash": both readers give the same note or the same error; a
// rejection is kInvalidArgument whose message names the file and starts with "cannot load
// module FILE: " or "FILE is not a Strata module: "; an accepted note has a non-empty
// stamp of printable ASCII and a name of [A-Za-z0-9_-]+, which fit the 4 KiB section.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_checks.h"
#include "module/loader.h"

namespace {

using namespace strata;

// One file per process, rewritten for each input; removed at exit.
const std::string& TempFile() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string pattern =
        std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/strata-fuzz-abi-note.XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    STRATA_FUZZ_CHECK(fd >= 0, "a temporary file can be created", pattern);
    ::close(fd);
    std::atexit([] { std::remove(TempFile().c_str()); });
    return pattern;
  }();
  return path;
}

void WriteTempFile(const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(TempFile().c_str(), "wb");
  STRATA_FUZZ_CHECK(f != nullptr, "the temporary file can be written", TempFile());
  const bool written = size == 0 || std::fwrite(data, 1, size, f) == size;
  STRATA_FUZZ_CHECK(std::fclose(f) == 0 && written, "the temporary file can be written",
                    TempFile());
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

void CheckNote(const AbiNote& note) {
  STRATA_FUZZ_CHECK(!note.stamp.empty(), "an accepted note has a stamp", "");
  for (char c : note.stamp) {
    STRATA_FUZZ_CHECK(c >= 0x20 && c <= 0x7e, "the stamp is printable ASCII",
                      fuzz::Hex(note.stamp));
  }
  STRATA_FUZZ_CHECK(!note.name.empty(), "an accepted note names its module", "");
  for (char c : note.name) {
    STRATA_FUZZ_CHECK(IsNameChar(c), "the module name is [A-Za-z0-9_-]+", fuzz::Hex(note.name));
  }
  STRATA_FUZZ_CHECK(note.stamp.size() + note.name.size() + 2 <= 4096,
                    "the note fits the 4 KiB section", std::to_string(note.stamp.size()));
}

void CheckRejection(const Status& status, const std::string& path) {
  STRATA_FUZZ_CHECK(status.code() == StatusCode::kInvalidArgument,
                    "the ABI-note reader rejects with kInvalidArgument", status.ToString());
  const std::string& message = status.message();
  const bool malformed = message.starts_with("cannot load module " + path + ": ");
  const bool not_a_module = message.starts_with(path + " is not a Strata module: ");
  STRATA_FUZZ_CHECK(malformed || not_a_module,
                    "rejections name the file and say whether it is a malformed ELF file or "
                    "not a Strata module",
                    message);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = TempFile();
  Result<AbiNote> parsed =
      ParseAbiNote(std::string_view(reinterpret_cast<const char*>(data), size), path);
  WriteTempFile(data, size);
  Result<AbiNote> read = ReadAbiNote(path);
  STRATA_FUZZ_CHECK(parsed.ok() == read.ok(), "ReadAbiNote and ParseAbiNote agree",
                    "file: " + fuzz::ShowResult(read) + "\nbytes: " + fuzz::ShowResult(parsed));
  if (!parsed.ok()) {
    CheckRejection(parsed.status(), path);
    STRATA_FUZZ_CHECK(parsed.status().message() == read.status().message(),
                      "ReadAbiNote and ParseAbiNote give the same error",
                      "file: " + read.status().message() + "\nbytes: " + parsed.status().message());
    return 0;
  }
  CheckNote(*parsed);
  STRATA_FUZZ_CHECK(
      *parsed == *read, "ReadAbiNote and ParseAbiNote read the same note",
      "file: " + read->stamp + " " + read->name + "\nbytes: " + parsed->stamp + " " + parsed->name);
  return 0;
}
