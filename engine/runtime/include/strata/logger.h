// The engine's log, after LevelDB's Env/Logger: everything the engine has to tell an operator
// that no caller receives as a Status — an error it could not return (a progress marker or a
// failure row that could not be written, a depot record replay could not read, Close's error
// when ~Engine closes), a warning (tables of an undeployed module dropped at Open, a module
// loaded without a file checksum), the storage's messages — goes to the Logger given in
// EngineOptions::logger. stratad routes it to its own log.
//
// Threading: Log is called from any engine thread, concurrently, sometimes with engine locks
// held or inside the storage: an implementation must be thread-safe, return quickly and must
// not call the Engine.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace strata {

class Logger {
 public:
  enum class Level : uint8_t { kInfo, kWarning, kError };

  virtual ~Logger() = default;
  // One message (one line, without the trailing newline).
  virtual void Log(Level level, std::string_view message) = 0;

  void Info(std::string_view message) { Log(Level::kInfo, message); }
  void Warning(std::string_view message) { Log(Level::kWarning, message); }
  void Error(std::string_view message) { Log(Level::kError, message); }
};

// "INFO", "WARNING" or "ERROR".
std::string_view LevelName(Logger::Level level);

// A Logger that writes "strata: LEVEL message" lines to stderr, each with one write, so that
// lines of concurrent callers never interleave. The engine's default (EngineOptions::logger).
std::shared_ptr<Logger> StderrLogger();

}  // namespace strata
