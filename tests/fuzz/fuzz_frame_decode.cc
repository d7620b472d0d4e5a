// libFuzzer target for the frame decoder (strata/protocol/frame.h): DecodeFrame over the
// input as a received byte stream, taking frames off the front until it needs more or
// says bad — what a connection does with its read buffer.
//
// The first input byte picks max_frame_size (so small caps are exercised too), the rest
// is the stream. Asserted beyond "no crash": a complete frame lies inside the buffer,
// right after its prefix, with 1 <= size <= max and consumed == size + 4; kBad happens
// exactly for a prefix of 0 or above the cap and reports the announced length; kNeedMore
// happens exactly when fewer than prefix + length bytes remain; re-framing the decoded
// payloads with AppendFrame reproduces the consumed bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_checks.h"
#include "strata/protocol/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::protocol;
  if (size == 0) return 0;
  const uint32_t max_frame_size = data[0] == 0 ? kDefaultMaxFrameSize : data[0];
  const uint8_t* stream = data + 1;
  const size_t stream_size = size - 1;

  size_t offset = 0;
  std::string reframed;
  for (;;) {
    const uint8_t* front = stream + offset;
    const size_t remaining = stream_size - offset;
    FrameView frame;
    size_t consumed = 0;
    std::string error;
    const DecodeState state =
        DecodeFrame(front, remaining, max_frame_size, &frame, &consumed, &error);
    uint32_t announced = 0;
    if (remaining >= kLengthPrefixSize) {
      announced = uint32_t{front[0]} | uint32_t{front[1]} << 8 | uint32_t{front[2]} << 16 |
                  uint32_t{front[3]} << 24;
    }
    const bool bad_prefix =
        remaining >= kLengthPrefixSize && (announced == 0 || announced > max_frame_size);
    if (state == DecodeState::kBad) {
      STRATA_FUZZ_CHECK(
          bad_prefix, "kBad only for a zero or oversized prefix",
          "announced " + std::to_string(announced) + ", max " + std::to_string(max_frame_size));
      STRATA_FUZZ_CHECK(frame.size == announced && frame.data == nullptr && !error.empty(),
                        "kBad reports the announced length and a message", error);
      break;
    }
    STRATA_FUZZ_CHECK(!bad_prefix, "a zero or oversized prefix is kBad",
                      "announced " + std::to_string(announced));
    if (state == DecodeState::kNeedMore) {
      STRATA_FUZZ_CHECK(
          remaining < kLengthPrefixSize || remaining - kLengthPrefixSize < announced,
          "kNeedMore only when the frame is incomplete",
          "remaining " + std::to_string(remaining) + ", announced " + std::to_string(announced));
      break;
    }
    STRATA_FUZZ_CHECK(frame.data == front + kLengthPrefixSize && frame.size == announced &&
                          consumed == kLengthPrefixSize + frame.size && consumed <= remaining,
                      "a complete frame follows its prefix inside the buffer",
                      "size " + std::to_string(frame.size) + ", consumed " +
                          std::to_string(consumed) + ", remaining " + std::to_string(remaining));
    AppendFrame(frame.data, frame.size, &reframed);
    offset += consumed;
  }
  STRATA_FUZZ_CHECK(reframed.size() == offset && std::memcmp(reframed.data(), stream, offset) == 0,
                    "AppendFrame of the decoded payloads reproduces the consumed bytes",
                    "consumed " + std::to_string(offset));
  return 0;
}
