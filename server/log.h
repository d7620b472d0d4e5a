// stratad's log: one line per significant event on stderr, "2024-01-02T03:04:05.678Z LEVEL
// message". Thread-safe (a line is written with one fwrite call, so lines never interleave).
#pragma once

#include <string_view>

namespace strata::server {

enum class LogLevel { kInfo, kWarning, kError };

void Log(LogLevel level, std::string_view message);
inline void LogInfo(std::string_view message) { Log(LogLevel::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(LogLevel::kWarning, message); }
inline void LogError(std::string_view message) { Log(LogLevel::kError, message); }

}  // namespace strata::server
