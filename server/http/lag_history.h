// PLACEHOLDER until the console branch lands (h-console replaces this file).
#pragma once
#include <chrono>
#include <string>
#include "strata/engine.h"
#include "strata/value.h"
namespace strata::server::http {
class LagHistory {
 public:
  explicit LagHistory(Engine&, std::chrono::milliseconds = std::chrono::seconds(5), size_t = 120) {}
  Value Of(const std::string&) const { return Value::EmptyMap(); }
};
}  // namespace strata::server::http
