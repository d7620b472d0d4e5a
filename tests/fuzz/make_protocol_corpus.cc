// make_protocol_corpus: writes the seed corpus of the protocol fuzz targets (README.md,
// "Fuzzing").
//
//   make_protocol_corpus OUT_DIR
//
// creates OUT_DIR/fuzz_request_decode, OUT_DIR/fuzz_response_decode and
// OUT_DIR/fuzz_frame_decode. Request and response seeds are the real encodings of every
// request and response kind (protocol/testing/sample_messages.h), plus a few the decoders
// must reject (truncated, the id only). Frame seeds are streams of those
// requests framed with AppendFrame, behind the target's first byte that picks
// max_frame_size (0: the default 16 MiB), plus a zero and an oversized length prefix and
// a stream cut inside a frame. Deterministic: the committed corpus is its output.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "strata/protocol/frame.h"
#include "strata/protocol/messages.h"
#include "testing/sample_messages.h"

namespace {

using namespace strata::protocol;

bool WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::fprintf(stderr, "make_protocol_corpus: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

void Frame(const std::string& payload, std::string* out) {
  AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), out);
}

std::vector<std::pair<std::string, std::string>> RequestSeeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  for (const auto& [name, request] : testing::SampleRequests()) {
    seeds.emplace_back(name, EncodeRequest(request));
  }
  const std::string append = EncodeRequest(testing::SampleRequests()[6].request);
  seeds.emplace_back("bad_truncated_append", append.substr(0, append.size() / 2));
  seeds.emplace_back("bad_no_body", EncodeRequest({3, ListModulesRequest{}}).substr(0, 16));
  return seeds;
}

std::vector<std::pair<std::string, std::string>> ResponseSeeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  for (const auto& [name, response] : testing::SampleResponses()) {
    seeds.emplace_back(name, EncodeResponse(response));
  }
  const std::string stats = EncodeResponse(testing::SampleResponses()[10].response);
  seeds.emplace_back("bad_truncated_stats", stats.substr(0, stats.size() / 2));
  seeds.emplace_back("bad_id_only", EncodeResponse({3, {}, {}}).substr(0, 12));
  return seeds;
}

std::vector<std::pair<std::string, std::string>> FrameSeeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  const std::string kDefaultMax(1, '\0');
  std::string all = kDefaultMax;
  for (const auto& [name, request] : testing::SampleRequests()) {
    std::string one = kDefaultMax;
    Frame(EncodeRequest(request), &one);
    seeds.emplace_back("frame_" + name, one);
    Frame(EncodeRequest(request), &all);
  }
  seeds.emplace_back("stream_every_request", all);
  seeds.emplace_back("stream_cut_inside_a_frame", all.substr(0, all.size() - 7));
  std::string small_max(1, '\x40');  // max_frame_size 64: the first frame fits, not all
  Frame(std::string(64, 'a'), &small_max);
  Frame(std::string(65, 'b'), &small_max);
  seeds.emplace_back("max_64_then_too_large", small_max);
  seeds.emplace_back("bad_zero_length", kDefaultMax + std::string("\0\0\0\0", 4));
  seeds.emplace_back("bad_absurd_length", kDefaultMax + std::string("\xff\xff\xff\xff", 4));
  return seeds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const std::filesystem::path request_dir = root / "fuzz_request_decode";
  const std::filesystem::path response_dir = root / "fuzz_response_decode";
  const std::filesystem::path frame_dir = root / "fuzz_frame_decode";
  std::error_code ec;
  for (const auto& dir : {request_dir, response_dir, frame_dir}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      std::fprintf(stderr, "make_protocol_corpus: cannot create %s: %s\n", dir.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }
  bool ok = true;
  for (const auto& [name, bytes] : RequestSeeds()) ok &= WriteFile(request_dir / name, bytes);
  for (const auto& [name, bytes] : ResponseSeeds()) ok &= WriteFile(response_dir / name, bytes);
  for (const auto& [name, bytes] : FrameSeeds()) ok &= WriteFile(frame_dir / name, bytes);
  return ok ? 0 : 1;
}
