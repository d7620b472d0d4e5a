// The default Logger (strata/logger.h): stderr.
#include "strata/logger.h"

#include <cstdio>
#include <string>

namespace strata {
namespace {

class StderrLoggerImpl final : public Logger {
 public:
  void Log(Level level, std::string_view message) override {
    std::string line = "strata: ";
    line += LevelName(level);
    line += ' ';
    line += message;
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);  // one call: lines never interleave
  }
};

}  // namespace

std::string_view LevelName(Logger::Level level) {
  switch (level) {
    case Logger::Level::kInfo:
      return "INFO";
    case Logger::Level::kWarning:
      return "WARNING";
    case Logger::Level::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

std::shared_ptr<Logger> StderrLogger() {
  static const std::shared_ptr<Logger> logger = std::make_shared<StderrLoggerImpl>();
  return logger;
}

}  // namespace strata
