// strata-value: shows how Strata encodes a value. Reads JSON values (docs/values.md), one
// per line, from the arguments or standard input, and prints for each its canonical JSON
// form, its type, its key encoding (hex), its partition hash and its FlexBuffers value
// encoding (hex), after checking that both encodings decode back to the same value.
// Useful to check a driver written in another language against the reference encoders.
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
    "42",       "-1",          "1.0",          "-0.0",     "\"hello\"", "{\"$bytes\": \"AAE=\"}",
    "[\"alice\", 3]", "{\"name\": \"ann\", \"age\": 31}", "{\"$set\": [3, 1, 2]}",
    "{\"$map\": [[1, \"one\"], [2, \"two\"]]}",
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"strata-value: show the key and value encodings of Strata values (docs/values.md)"};
  std::vector<std::string> values;
  bool tour = false;
  app.add_option("values", values, "JSON values to explain; without any, read one per line from stdin");
  app.add_flag("--tour", tour, "explain a few example values first");
  CLI11_PARSE(app, argc, argv);

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
