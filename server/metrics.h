// PLACEHOLDER until the metrics branch lands (h-metrics replaces this file).
#pragma once
#include <string>
#include "dispatcher.h"
#include "strata/engine.h"
namespace strata::server {
inline std::string PrometheusText(Engine&, const ServerCounters&) { return ""; }
}  // namespace strata::server
