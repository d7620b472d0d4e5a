// Seeds of randomized tests. Every random generator of a test is seeded through TestSeed
// or RandomTestSeed, so that STRATA_TEST_SEED=<n> in the environment repeats any run:
//
//   const uint64_t seed = strata::testing::TestSeed(7);   // or RandomTestSeed()
//   SCOPED_TRACE(strata::testing::SeedTrace(seed));       // every failure names the seed
//   std::mt19937_64 rng(seed);
//
// The seed is also printed to stdout (ctest --output-on-failure shows it) and recorded as
// the test's "seed" property in the XML report. Header-only; linked into every test by
// strata_add_test (cmake/StrataHelpers.cmake).
#ifndef STRATA_TESTING_TEST_SEED_H_
#define STRATA_TESTING_TEST_SEED_H_

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace strata::testing {

// STRATA_TEST_SEED when set (decimal), else `fixed`: a test that is repeatable by default.
inline uint64_t TestSeed(uint64_t fixed) {
  uint64_t seed = fixed;
  if (const char* env = std::getenv("STRATA_TEST_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 10);
  }
  std::cout << "[ seed     ] " << seed << " (set STRATA_TEST_SEED to change it)" << std::endl;
  // Also called at namespace scope (a file's base seed), outside any test.
  if (::testing::UnitTest::GetInstance()->current_test_info() != nullptr) {
    ::testing::Test::RecordProperty("seed", std::to_string(seed));
  }
  return seed;
}

// STRATA_TEST_SEED when set, else a fresh random seed: a test that explores new cases on
// each run.
inline uint64_t RandomTestSeed() {
  std::random_device device;
  return TestSeed((uint64_t{device()} << 32) | device());
}

// For SCOPED_TRACE: how to repeat the run.
inline std::string SeedTrace(uint64_t seed) { return "STRATA_TEST_SEED=" + std::to_string(seed); }

}  // namespace strata::testing

#endif  // STRATA_TESTING_TEST_SEED_H_
