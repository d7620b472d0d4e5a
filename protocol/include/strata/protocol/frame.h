// Framing of the wire protocol (docs/protocol.md, "Frames"): a 4-byte little-endian
// unsigned payload length N, then N bytes of one FlatBuffers message. Socket-free: the
// decoder looks at bytes received so far and says complete / need more / bad, so it is
// tested and fuzzed without a connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace strata::protocol {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr uint32_t kDefaultMaxFrameSize = 16u << 20;  // payload bytes
inline constexpr size_t kLengthPrefixSize = 4;

enum class DecodeState : uint8_t { kComplete, kNeedMore, kBad };

struct FrameView {
  const uint8_t* data = nullptr;  // points into the caller's buffer
  uint32_t size = 0;
};

// Looks at the front of `buffer` (the bytes received and not yet consumed).
//  kComplete: *frame is the first frame's payload, *consumed = its size + the prefix.
//  kNeedMore: no complete frame yet (nothing is written to the outputs).
//  kBad: the length prefix is 0 or above max_frame_size; *error says which, and
//        frame->size is the announced length (frame->data null): 0 -> reply BAD_FRAME,
//        above the cap -> FRAME_TOO_LARGE. Decided from the 4 prefix bytes alone. The
//        connection cannot be resynchronised and must be closed after the error reply.
// Thread-safe (no state); the caller owns `buffer` and drops `*consumed` bytes itself.
DecodeState DecodeFrame(const uint8_t* buffer, size_t size, uint32_t max_frame_size,
                        FrameView* frame, size_t* consumed, std::string* error);

// Appends the length prefix and the payload to *out. `size` must fit in 32 bits (the
// caller keeps payloads within the peer's max_frame_size).
void AppendFrame(const uint8_t* payload, size_t size, std::string* out);

}  // namespace strata::protocol
