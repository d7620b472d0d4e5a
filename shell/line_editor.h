// Interactive line input for the shell on libedit (histedit.h): emacs key bindings,
// history recalled with the arrow keys and kept in a file across sessions, and Tab
// completion through a callback. Only for a terminal; one LineEditor per process, used from
// the main thread only.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct editline;
struct history;

namespace strata::shell {

class LineEditor {
 public:
  // Completions of the last word of the text before the cursor (whole words).
  using Completer = std::function<std::vector<std::string>(std::string_view before_cursor)>;

  // Loads the history from `history_file` ("" keeps no history); it need not exist.
  LineEditor(const char* program, std::string history_file, Completer completer);
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // One line without its newline; nullopt at end of input (Ctrl-D on an empty line).
  std::optional<std::string> ReadLine(const std::string& prompt);
  // Adds an entry to the history and writes the history file at once, so that a shell
  // that is killed keeps what was typed.
  void AddHistory(const std::string& entry);

 private:
  static char* Prompt(editline* el);
  static unsigned char Complete(editline* el, int ch);

  editline* el_ = nullptr;
  history* history_ = nullptr;
  std::string history_file_;
  Completer completer_;
  std::string prompt_;
};

}  // namespace strata::shell
