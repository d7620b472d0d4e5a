// Key layout of a PState partition table (engine-internal). The full specification, byte
// by byte, is docs/storage.md, "PState tables". In short, for a value stored at key
// prefix P (the root has P = ""):
//
//   P                      entry record of a non-root stored value: its blob, or empty for a
//                          subindexed container (marks it present)
//   P ‖ 0x01               size record of the subindexed container at P (8 bytes, little
//                          endian, unsigned); present only while the container exists, so
//                          one read of it tells both (absent: read the entry record)
//   P ‖ EncodeKey(k)       element k of the container at P / field k of the record at P
//   0x02                   the root value when the root is a blob or a record
//   0x03                   the PState schema (FlexBuffers of PStateSchema::ToValue)
//
// Every EncodeKey starts with a type tag in 0x10..0x90, so marker bytes below 0x10 never
// collide with an element, and a container's elements are exactly the keys in
// [P ‖ 0x10, PrefixEnd(P)) that are not nested deeper.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "strata/key_codec.h"

namespace strata::pstate_layout {

inline constexpr char kSizeMarker = '\x01';
inline constexpr std::string_view kRootValueKey = "\x02";
inline constexpr std::string_view kSchemaKey = "\x03";
inline constexpr char kFirstElementByte = '\x10';

inline std::string ElementKey(std::string_view prefix, const Value& key) {
  std::string out(prefix);
  AppendKey(key, &out);
  return out;
}

inline std::string SizeKey(std::string_view prefix) {
  std::string out(prefix);
  out += kSizeMarker;
  return out;
}

// Start of the element range of the container at `prefix`.
inline std::string ElementsBegin(std::string_view prefix) {
  std::string out(prefix);
  out += kFirstElementByte;
  return out;
}

// End (exclusive) of everything under `prefix`; empty for the root ("to the table's end").
inline std::string SubtreeEnd(std::string_view prefix) { return PrefixEnd(prefix); }

inline std::string EncodeSize(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

inline bool DecodeSize(std::string_view bytes, uint64_t* n) {
  if (bytes.size() != 8) return false;
  *n = 0;
  for (int i = 0; i < 8; ++i)
    *n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return true;
}

}  // namespace strata::pstate_layout
