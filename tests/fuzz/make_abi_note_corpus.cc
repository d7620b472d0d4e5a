// make_abi_note_corpus: writes the seed corpus of fuzz_abi_note (README.md, "Fuzzing").
//
//   make_abi_note_corpus OUT_DIR
//
// creates OUT_DIR/fuzz_abi_note with small 64-bit ELF files of this host's byte order:
// a section header table after a section name table and a .strata_abi section holding
// this host's ABI stamp and a module name (as STRATA_MODULE writes it), in the forms the
// reader accepts (the section count and name table index in the header or, as for more
// than 0xff00 sections, in section 0) and in the forms it refuses (no or two notes, a
// note without terminators, a bad name, a section or table past the end, not ELF, 32-bit,
// the other byte order, a truncated header). Real modules are too large for the fuzzer's
// -max_len; these few hundred bytes hold every structure the reader looks at.
// Deterministic: the committed corpus is its output.
#include <elf.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "module/loader.h"

namespace {

struct Section {
  std::string name;
  uint32_t type = SHT_PROGBITS;
  std::string data;
};

struct ElfOptions {
  bool extended_count = false;    // e_shnum = 0 and e_shstrndx = SHN_XINDEX: both in section 0
  uint64_t shoff_delta = 0;       // added to e_shoff (past the end when large)
  uint64_t abi_offset_delta = 0;  // added to the .strata_abi section's offset
};

// An ELF file: header, section contents, then the section header table (section 0 null,
// section 1 .shstrtab, then `sections`).
std::string Elf(const std::vector<Section>& sections, const ElfOptions& options = {}) {
  std::string names(1, '\0');
  std::vector<uint32_t> name_offsets;
  auto add_name = [&](const std::string& name) {
    name_offsets.push_back(static_cast<uint32_t>(names.size()));
    names += name;
    names += '\0';
  };
  add_name(".shstrtab");
  for (const Section& s : sections) add_name(s.name);

  std::string file(sizeof(Elf64_Ehdr), '\0');
  std::vector<Elf64_Shdr> headers(2 + sections.size());
  std::memset(headers.data(), 0, headers.size() * sizeof(Elf64_Shdr));
  headers[1].sh_name = name_offsets[0];
  headers[1].sh_type = SHT_STRTAB;
  headers[1].sh_offset = file.size();
  headers[1].sh_size = names.size();
  headers[1].sh_addralign = 1;
  file += names;
  for (size_t i = 0; i < sections.size(); ++i) {
    Elf64_Shdr& h = headers[2 + i];
    h.sh_name = name_offsets[1 + i];
    h.sh_type = sections[i].type;
    h.sh_flags = SHF_ALLOC;
    h.sh_offset = file.size() + (sections[i].name == ".strata_abi" ? options.abi_offset_delta : 0);
    h.sh_size = sections[i].data.size();
    h.sh_addralign = 1;
    file += sections[i].data;
  }
  while (file.size() % 8 != 0) file += '\0';

  Elf64_Ehdr header;
  std::memset(&header, 0, sizeof header);
  std::memcpy(header.e_ident, ELFMAG, SELFMAG);
  header.e_ident[EI_CLASS] = ELFCLASS64;
  header.e_ident[EI_DATA] = std::endian::native == std::endian::little ? ELFDATA2LSB : ELFDATA2MSB;
  header.e_ident[EI_VERSION] = EV_CURRENT;
  header.e_type = ET_DYN;
  header.e_machine = EM_X86_64;
  header.e_version = EV_CURRENT;
  header.e_ehsize = sizeof(Elf64_Ehdr);
  header.e_shentsize = sizeof(Elf64_Shdr);
  header.e_shoff = file.size() + options.shoff_delta;
  if (options.extended_count) {
    header.e_shnum = 0;
    header.e_shstrndx = SHN_XINDEX;
    headers[0].sh_size = headers.size();
    headers[0].sh_link = 1;
  } else {
    header.e_shnum = static_cast<uint16_t>(headers.size());
    header.e_shstrndx = 1;
  }
  std::memcpy(file.data(), &header, sizeof header);
  file.append(reinterpret_cast<const char*>(headers.data()), headers.size() * sizeof(Elf64_Shdr));
  return file;
}

std::string Note(std::string_view stamp, std::string_view name) {
  std::string note(stamp);
  note += '\0';
  note += name;
  note += '\0';
  return note;
}

bool WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::fprintf(stderr, "make_abi_note_corpus: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

std::vector<std::pair<std::string, std::string>> Seeds() {
  const std::string stamp(strata::HostAbiStamp());
  const Section note{".strata_abi", SHT_PROGBITS, Note(stamp, "wordcount")};
  const Section text{".text", SHT_PROGBITS, std::string(16, '\x90')};
  std::vector<std::pair<std::string, std::string>> seeds;
  seeds.emplace_back("module", Elf({text, note}));
  seeds.emplace_back("module_note_first", Elf({note, text}));
  seeds.emplace_back("module_count_in_section_0", Elf({text, note}, {.extended_count = true}));
  seeds.emplace_back("module_other_stamp",
                     Elf({{".strata_abi", SHT_PROGBITS, Note("strata-sdk/999 other", "m-1_x")}}));
  seeds.emplace_back("bad_no_note", Elf({text}));
  seeds.emplace_back("bad_two_notes", Elf({note, note}));
  seeds.emplace_back("bad_note_not_progbits", Elf({{".strata_abi", SHT_NOBITS, note.data}}));
  seeds.emplace_back("bad_note_unterminated",
                     Elf({{".strata_abi", SHT_PROGBITS, stamp + std::string(1, '\0') + "name"}}));
  seeds.emplace_back("bad_module_name", Elf({{".strata_abi", SHT_PROGBITS, Note(stamp, "a b")}}));
  seeds.emplace_back("bad_stamp_not_printable",
                     Elf({{".strata_abi", SHT_PROGBITS, Note("strata\x01", "m")}}));
  seeds.emplace_back("bad_note_past_the_end", Elf({text, note}, {.abi_offset_delta = 4096}));
  seeds.emplace_back("bad_section_table_past_the_end", Elf({text, note}, {.shoff_delta = 64}));
  std::string elf32 = Elf({note});
  elf32[EI_CLASS] = ELFCLASS32;
  seeds.emplace_back("bad_32_bit", elf32);
  std::string other_order = Elf({note});
  other_order[EI_DATA] = other_order[EI_DATA] == ELFDATA2LSB ? ELFDATA2MSB : ELFDATA2LSB;
  seeds.emplace_back("bad_other_byte_order", other_order);
  seeds.emplace_back("bad_truncated_header", Elf({note}).substr(0, 40));
  seeds.emplace_back("bad_not_elf", std::string("#!/bin/sh\necho not a module\n"));
  return seeds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "fuzz_abi_note";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "make_abi_note_corpus: cannot create %s: %s\n", dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  bool ok = true;
  for (const auto& [name, bytes] : Seeds()) ok &= WriteFile(dir / name, bytes);
  return ok ? 0 : 1;
}
