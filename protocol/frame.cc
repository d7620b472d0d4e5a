#include "strata/protocol/frame.h"

#include <cassert>
#include <limits>

namespace strata::protocol {

DecodeState DecodeFrame(const uint8_t* buffer, size_t size, uint32_t max_frame_size,
                        FrameView* frame, size_t* consumed, std::string* error) {
  if (size < kLengthPrefixSize) return DecodeState::kNeedMore;
  const uint32_t length = uint32_t{buffer[0]} | uint32_t{buffer[1]} << 8 |
                          uint32_t{buffer[2]} << 16 | uint32_t{buffer[3]} << 24;
  // Judged on the prefix alone: a peer announcing an absurd length is cut off before
  // anything is buffered for it.
  if (length == 0) {
    frame->data = nullptr;
    frame->size = 0;
    *error = "frame length prefix is 0; every frame holds one FlatBuffers message";
    return DecodeState::kBad;
  }
  if (length > max_frame_size) {
    frame->data = nullptr;
    frame->size = length;
    *error = "frame length " + std::to_string(length) + " exceeds max_frame_size " +
             std::to_string(max_frame_size);
    return DecodeState::kBad;
  }
  if (size - kLengthPrefixSize < length) return DecodeState::kNeedMore;
  frame->data = buffer + kLengthPrefixSize;
  frame->size = length;
  *consumed = kLengthPrefixSize + length;
  return DecodeState::kComplete;
}

void AppendFrame(const uint8_t* payload, size_t size, std::string* out) {
  assert(size <= std::numeric_limits<uint32_t>::max());
  const auto length = static_cast<uint32_t>(size);
  const char prefix[kLengthPrefixSize] = {
      static_cast<char>(length & 0xff), static_cast<char>((length >> 8) & 0xff),
      static_cast<char>((length >> 16) & 0xff), static_cast<char>((length >> 24) & 0xff)};
  out->reserve(out->size() + kLengthPrefixSize + size);
  out->append(prefix, kLengthPrefixSize);
  out->append(reinterpret_cast<const char*>(payload), size);
}

}  // namespace strata::protocol
