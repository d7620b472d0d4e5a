// The Prometheus text format writer: family headers, label and help escaping, cumulative
// histogram buckets ending at +Inf with _sum and _count, sample values.
#include "exposition.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace strata::server {
namespace {

TEST(ExpositionTest, FamilyHeaderAndSamples) {
  Exposition out;
  out.Family("strata_x_total", "counter", "Things.");
  out.Sample("strata_x_total", {{"module", "m"}, {"depot", "*d"}}, 3);
  out.Sample("strata_x_total", {}, 0.5);
  EXPECT_EQ(out.text(),
            "# HELP strata_x_total Things.\n"
            "# TYPE strata_x_total counter\n"
            "strata_x_total{module=\"m\",depot=\"*d\"} 3\n"
            "strata_x_total 0.5\n");
}

TEST(ExpositionTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(EscapeLabelValue("plain *depot $$ps"), "plain *depot $$ps");
  // In help text only the backslash and the newline are escaped.
  EXPECT_EQ(EscapeHelp("say \"hi\"\\\nbye"), "say \"hi\"\\\\\\nbye");
  Exposition out;
  out.Family("f", "gauge", "line one\nline two");
  out.Sample("f", {{"module", "we\"ird\\\n"}}, 1);
  EXPECT_EQ(out.text(),
            "# HELP f line one\\nline two\n"
            "# TYPE f gauge\n"
            "f{module=\"we\\\"ird\\\\\\n\"} 1\n");
}

TEST(ExpositionTest, SampleValues) {
  EXPECT_EQ(FormatSampleValue(0), "0");
  EXPECT_EQ(FormatSampleValue(-7), "-7");
  EXPECT_EQ(FormatSampleValue(123456789012.0), "123456789012");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(1e-6), "1e-06");
  EXPECT_EQ(FormatSampleValue(1e300), "1e+300");
  EXPECT_EQ(FormatSampleValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatSampleValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatSampleValue(0.0 / 0.0), "NaN");
}

TEST(ExpositionTest, HistogramBucketsAreCumulativeAndEndAtInf) {
  HistogramSnapshot h;
  h.bounds = {0.001, 0.01, 1};
  h.counts = {2, 0, 3, 1};  // the last: above 1 s
  h.sum = 4.5;
  Exposition out;
  out.Histogram("lat_seconds", {{"kind", "append"}}, h);
  EXPECT_EQ(out.text(),
            "lat_seconds_bucket{kind=\"append\",le=\"0.001\"} 2\n"
            "lat_seconds_bucket{kind=\"append\",le=\"0.01\"} 2\n"
            "lat_seconds_bucket{kind=\"append\",le=\"1\"} 5\n"
            "lat_seconds_bucket{kind=\"append\",le=\"+Inf\"} 6\n"
            "lat_seconds_sum{kind=\"append\"} 4.5\n"
            "lat_seconds_count{kind=\"append\"} 6\n");
}

TEST(ExpositionTest, AHistogramWithoutLabelsHasOnlyLe) {
  DurationHistogram h;
  h.Observe(std::chrono::microseconds(3));
  Exposition out;
  out.Histogram("flush_seconds", {}, h.Snapshot());
  const std::string& text = out.text();
  EXPECT_NE(text.find("flush_seconds_bucket{le=\"1e-06\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("flush_seconds_bucket{le=\"5e-06\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("flush_seconds_bucket{le=\"10\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("flush_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("flush_seconds_sum 3e-06\n"), std::string::npos) << text;
  EXPECT_NE(text.find("flush_seconds_count 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace strata::server
