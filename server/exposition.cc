#include "exposition.h"

#include <charconv>
#include <cmath>

namespace strata::server {

namespace {

// Backslash and newline escaped, and double quotes too if `quotes`: the text format's rules
// for label values (with quotes) and HELP lines (without).
std::string Escape(std::string_view text, bool quotes) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) { return Escape(value, true); }

std::string EscapeHelp(std::string_view help) { return Escape(help, false); }

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  std::to_chars_result end{};
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    end = std::to_chars(buffer, buffer + sizeof buffer, static_cast<int64_t>(value));
  } else {
    end = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  return std::string(buffer, end.ptr);
}

void Exposition::Family(std::string_view name, std::string_view type, std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  text_ += EscapeHelp(help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void Exposition::Sample(std::string_view name, std::initializer_list<Label> labels, double value) {
  Line(name, labels, {}, value);
}

void Exposition::Histogram(std::string_view name, std::initializer_list<Label> labels,
                           const HistogramSnapshot& histogram) {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < histogram.bounds.size(); ++i) {
    cumulative += histogram.counts[i];
    Line(bucket, labels, FormatSampleValue(histogram.bounds[i]), static_cast<double>(cumulative));
  }
  const uint64_t count = histogram.count();
  Line(bucket, labels, "+Inf", static_cast<double>(count));
  Line(std::string(name) + "_sum", labels, {}, histogram.sum);
  Line(std::string(name) + "_count", labels, {}, static_cast<double>(count));
}

void Exposition::Line(std::string_view name, std::initializer_list<Label> labels,
                      std::string_view le, double value) {
  text_ += name;
  if (labels.size() > 0 || !le.empty()) {
    text_ += '{';
    bool first = true;
    auto add = [&](std::string_view label, std::string_view escaped) {
      if (!first) text_ += ',';
      first = false;
      text_ += label;
      text_ += "=\"";
      text_ += escaped;
      text_ += '"';
    };
    for (const Label& label : labels) add(label.name, EscapeLabelValue(label.value));
    if (!le.empty()) add("le", le);
    text_ += '}';
  }
  text_ += ' ';
  text_ += FormatSampleValue(value);
  text_ += '\n';
}

}  // namespace strata::server
