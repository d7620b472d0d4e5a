// strata-value: shows how Strata encodes a value. Reads JSON values (docs/values.md), one
// per argument, or one per line from standard input, and prints for each its canonical JSON
// form, its type, its key encoding (hex), its partition hash and its FlexBuffers value
// encoding (hex), after checking that both encodings decode back to the same value.
// Useful to check a driver written in another language against the reference encoders.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace {

std::string Hex(const void* data, size_t size) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    if (i > 0) out += ' ';
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

// Prints the report for one line of input; returns false when the line is not a value.
bool Explain(const std::string& text) {
  // JSON text never starts with '-' followed by anything but a digit: an unknown option.
  if (text.size() >= 2 && text[0] == '-' && !std::isdigit(static_cast<unsigned char>(text[1]))) {
    std::cout << "error: unknown option " << text << " (see --help)\n";
    return false;
  }
  strata::Result<strata::Value> parsed = strata::ParseJson(text);
  if (!parsed.ok()) {
    std::cout << "error: " << parsed.status().message() << "\n";
    return false;
  }
  const strata::Value& v = *parsed;
  std::string key = strata::EncodeKey(v);
  std::vector<uint8_t> flex = strata::EncodeValue(v);
  strata::Result<strata::Value> from_key = strata::DecodeKey(key);
  strata::Result<strata::Value> from_flex = strata::DecodeValue(flex.data(), flex.size());
  bool round_trips = from_key.ok() && *from_key == v && from_flex.ok() && *from_flex == v;
  std::cout << "value:      " << strata::ToJson(v) << "\n"
            << "type:       " << strata::TypeName(v.type()) << "\n"
            << "key bytes:  " << Hex(key.data(), key.size()) << "  (" << key.size() << " bytes)\n"
            << "hash:       0x" << std::hex << strata::HashKey(v) << std::dec << "\n"
            << "flexbuffer: " << Hex(flex.data(), flex.size()) << "  (" << flex.size()
            << " bytes)\n"
            << "round trip: " << (round_trips ? "ok" : "MISMATCH") << "\n";
  return round_trips;
}

constexpr const char* kTour[] = {
    "42",
    "-1",
    "1.0",
    "-0.0",
    "\"hello\"",
    "{\"$bytes\": \"AAE=\"}",
    "[\"alice\", 3]",
    "{\"name\": \"ann\", \"age\": 31}",
    "{\"$set\": [3, 1, 2]}",
    "{\"$map\": [[1, \"one\"], [2, \"two\"]]}",
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "strata-value: show the key and value encodings of Strata values (docs/values.md)\n"
      "Arguments: JSON values, one per argument (quote them for the shell, e.g. '[\"a\",1]');\n"
      "without any, values are read one per line from stdin."};
  bool tour = false;
  app.add_flag("--tour", tour, "explain a few example values first");
  // The values are taken as extras, not as a positional vector option: CLI11 2.1.2 splits
  // a vector option's argument that looks like "[a,b]" into a list of arguments
  // (Option::_add_result whenever allow_extra_args is set, which vector options need),
  // so '["a",1]' would arrive as two values.
  app.allow_extras();
  CLI11_PARSE(app, argc, argv);
  std::vector<std::string> values = app.remaining();
  // CLI11 keeps the first "--" (end of options) among the extras; later ones are values.
  if (auto marker = std::find(values.begin(), values.end(), "--"); marker != values.end()) {
    values.erase(marker);
  }

  bool all_ok = true;
  if (tour) {
    std::cout << "Strata value encodings — a few examples (docs/values.md explains them):\n\n";
    for (const char* text : kTour) {
      all_ok &= Explain(text);
      std::cout << "\n";
    }
  }
  for (const std::string& text : values) {
    all_ok &= Explain(text);
    std::cout << "\n";
  }
  if (values.empty()) {
    if (tour) std::cout << "Type a JSON value per line (Ctrl-D to quit):\n";
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      all_ok &= Explain(line);
      std::cout << std::endl;
    }
  }
  return all_ok ? 0 : 1;
}
