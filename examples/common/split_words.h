// The word split of the word-counting examples (wordcount, topwords, leaderboard) and of
// their tests and benchmark: lower-cased runs of ASCII letters and digits; every other
// byte separates words. Header-only, so each module compiles it into its own plugin.
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace strata_examples {

inline std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  std::string current;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) {
      current.push_back(static_cast<char>(std::tolower(u)));
    } else if (!current.empty()) {
      words.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words.push_back(std::move(current));
  return words;
}

}  // namespace strata_examples
