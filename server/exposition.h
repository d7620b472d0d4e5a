// Exposition: writes metrics in the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): per family a # HELP and a
// # TYPE line, then its samples, one per line, `name{label="value",...} number`. Label
// values and help texts are escaped as the format says; the caller passes names that are
// valid metric and label names ([a-zA-Z_:][a-zA-Z0-9_:]*). docs/metrics.md lists stratad's.
//
// Not thread-safe: one Exposition per scrape.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "strata/histogram.h"

namespace strata::server {

struct Label {
  std::string_view name;
  std::string_view value;
};

class Exposition {
 public:
  // Starts the family `name` of `type` ("counter", "gauge", "histogram", "summary").
  // Every family is started once, and its samples follow it.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // One sample: `name` is the family's name, or for a summary its name with _sum or _count.
  void Sample(std::string_view name, std::initializer_list<Label> labels, double value);
  // The samples of one histogram of the family `name`: a cumulative _bucket per bound
  // (le="<bound>") and le="+Inf", then _sum and _count (== the +Inf bucket).
  void Histogram(std::string_view name, std::initializer_list<Label> labels,
                 const HistogramSnapshot& histogram);

  const std::string& text() const { return text_; }
  std::string Take() { return std::move(text_); }

 private:
  // `name`{labels[,le="<le>"]} value\n; `le` empty: no le label.
  void Line(std::string_view name, std::initializer_list<Label> labels, std::string_view le,
            double value);
  std::string text_;
};

// A label value as the format writes it between quotes: \ as \\, " as \", newline as \n.
std::string EscapeLabelValue(std::string_view value);
// A help text as the format writes it: \ as \\, newline as \n.
std::string EscapeHelp(std::string_view help);
// A sample value: integers below 2^53 without a fraction or exponent, other numbers in
// their shortest round-trip form, +Inf, -Inf and NaN as the format spells them.
std::string FormatSampleValue(double value);

}  // namespace strata::server
