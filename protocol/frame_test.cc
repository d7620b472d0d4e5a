#include "strata/protocol/frame.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace strata::protocol {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string Framed(const std::vector<std::string>& payloads) {
  std::string out;
  for (const std::string& p : payloads) AppendFrame(Bytes(p), p.size(), &out);
  return out;
}

// What a connection does: append what arrives, take every complete frame off the front.
class Reassembler {
 public:
  explicit Reassembler(uint32_t max_frame_size) : max_(max_frame_size) {}

  // Returns false when the decoder said kBad.
  bool Receive(std::string_view chunk) {
    buffer_.append(chunk);
    for (;;) {
      FrameView frame;
      size_t consumed = 0;
      std::string error;
      switch (DecodeFrame(Bytes(buffer_), buffer_.size(), max_, &frame, &consumed, &error)) {
        case DecodeState::kNeedMore:
          return true;
        case DecodeState::kBad:
          return false;
        case DecodeState::kComplete:
          frames.emplace_back(reinterpret_cast<const char*>(frame.data), frame.size);
          buffer_.erase(0, consumed);
      }
    }
  }
  size_t buffered() const { return buffer_.size(); }

  std::vector<std::string> frames;

 private:
  uint32_t max_;
  std::string buffer_;
};

TEST(FrameTest, AppendFrameWritesLittleEndianLengthThenPayload) {
  std::string payload(258, 'p');
  std::string out = "x";
  AppendFrame(Bytes(payload), payload.size(), &out);
  ASSERT_EQ(out.size(), 1 + 4 + 258u);
  EXPECT_EQ(out.substr(0, 5), std::string("x\x02\x01\x00\x00", 5));
  EXPECT_EQ(out.substr(5), payload);
}

TEST(FrameTest, DecodesOneCompleteFrame) {
  std::string stream = Framed({"hello"});
  FrameView frame;
  size_t consumed = 0;
  std::string error;
  ASSERT_EQ(DecodeFrame(Bytes(stream), stream.size(), 100, &frame, &consumed, &error),
            DecodeState::kComplete);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(frame.data), frame.size), "hello");
  EXPECT_EQ(frame.data, Bytes(stream) + 4);
  EXPECT_EQ(consumed, 9u);
}

TEST(FrameTest, NeedMoreLeavesOutputsUntouched) {
  std::string stream = Framed({"hello"});
  for (size_t size = 0; size < stream.size(); ++size) {
    FrameView frame{reinterpret_cast<const uint8_t*>(&size), 77};
    size_t consumed = 55;
    std::string error = "untouched";
    EXPECT_EQ(DecodeFrame(Bytes(stream), size, 100, &frame, &consumed, &error),
              DecodeState::kNeedMore)
        << "size " << size;
    EXPECT_EQ(frame.size, 77u);
    EXPECT_EQ(consumed, 55u);
    EXPECT_EQ(error, "untouched");
  }
}

TEST(FrameTest, SeveralFramesInOneBuffer) {
  std::vector<std::string> payloads = {"a", std::string(1000, 'b'), "ccc", std::string(1, '\0')};
  Reassembler r(1 << 20);
  ASSERT_TRUE(r.Receive(Framed(payloads)));
  EXPECT_EQ(r.frames, payloads);
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(FrameTest, SplitAtEveryByteBoundaryGivesTheSameFrames) {
  std::vector<std::string> payloads = {"first", std::string(300, 'x'), "z", "last one"};
  const std::string stream = Framed(payloads);
  for (size_t split = 0; split <= stream.size(); ++split) {
    Reassembler r(1 << 20);
    ASSERT_TRUE(r.Receive(std::string_view(stream).substr(0, split)));
    ASSERT_TRUE(r.Receive(std::string_view(stream).substr(split)));
    EXPECT_EQ(r.frames, payloads) << "split at " << split;
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(FrameTest, ByteByByteGivesTheSameFrames) {
  std::vector<std::string> payloads = {"one", "two", std::string(70, 'q')};
  const std::string stream = Framed(payloads);
  Reassembler r(1 << 20);
  for (char c : stream) ASSERT_TRUE(r.Receive(std::string_view(&c, 1)));
  EXPECT_EQ(r.frames, payloads);
}

TEST(FrameTest, ZeroLengthIsBad) {
  const std::string stream("\0\0\0\0more", 8);
  FrameView frame{Bytes(stream), 99};
  size_t consumed = 0;
  std::string error;
  EXPECT_EQ(DecodeFrame(Bytes(stream), stream.size(), 100, &frame, &consumed, &error),
            DecodeState::kBad);
  EXPECT_EQ(frame.size, 0u);
  EXPECT_EQ(frame.data, nullptr);
  EXPECT_NE(error.find("length prefix is 0"), std::string::npos) << error;
}

TEST(FrameTest, AbsurdLengthIsBadFromThePrefixAlone) {
  const std::string stream("\xff\xff\xff\xff", 4);
  FrameView frame;
  size_t consumed = 0;
  std::string error;
  EXPECT_EQ(
      DecodeFrame(Bytes(stream), stream.size(), kDefaultMaxFrameSize, &frame, &consumed, &error),
      DecodeState::kBad);
  EXPECT_EQ(frame.size, 0xffffffffu);
  EXPECT_NE(error.find("4294967295"), std::string::npos) << error;
  EXPECT_NE(error.find(std::to_string(kDefaultMaxFrameSize)), std::string::npos) << error;
}

TEST(FrameTest, ExactlyMaxIsAcceptedOneMoreIsNot) {
  for (uint32_t max : {1u, 1000u, kDefaultMaxFrameSize}) {
    std::string at_max = Framed({std::string(max, 'm')});
    FrameView frame;
    size_t consumed = 0;
    std::string error;
    ASSERT_EQ(DecodeFrame(Bytes(at_max), at_max.size(), max, &frame, &consumed, &error),
              DecodeState::kComplete)
        << "max " << max << ": " << error;
    EXPECT_EQ(frame.size, max);
    EXPECT_EQ(consumed, max + 4u);

    std::string prefix_only = Framed({std::string(max + 1, 'm')}).substr(0, 4);
    EXPECT_EQ(DecodeFrame(Bytes(prefix_only), prefix_only.size(), max, &frame, &consumed, &error),
              DecodeState::kBad)
        << "max " << max;
    EXPECT_EQ(frame.size, max + 1);
  }
}

TEST(FrameTest, BadFrameAfterGoodOnesStopsAfterTheGoodOnes) {
  std::string stream = Framed({"ok1", "ok2"});
  stream.append("\x00\x10\x00\x00", 4);  // 1 MiB announced, 1 KiB allowed
  Reassembler r(1024);
  EXPECT_FALSE(r.Receive(stream));
  EXPECT_EQ(r.frames, (std::vector<std::string>{"ok1", "ok2"}));
}

}  // namespace
}  // namespace strata::protocol
