#include "line_editor.h"

#include <histedit.h>

#include <cstdio>
#include <utility>

namespace strata::shell {

LineEditor::LineEditor(const char* program, std::string history_file, Completer completer)
    : history_file_(std::move(history_file)), completer_(std::move(completer)) {
  el_ = el_init(program, stdin, stdout, stderr);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_SIGNAL, 1);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_PROMPT, &LineEditor::Prompt);
  history_ = history_init();
  HistEvent ev;
  history(history_, &ev, H_SETSIZE, 1000);
  history(history_, &ev, H_SETUNIQUE, 1);
  if (!history_file_.empty()) history(history_, &ev, H_LOAD, history_file_.c_str());
  el_set(el_, EL_HIST, history, history_);
  el_set(el_, EL_ADDFN, "strata-complete", "Complete a command, module, depot or PState name",
         &LineEditor::Complete);
  el_set(el_, EL_BIND, "^I", "strata-complete", nullptr);
}

LineEditor::~LineEditor() {
  history_end(history_);
  el_end(el_);
}

char* LineEditor::Prompt(editline* el) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return static_cast<LineEditor*>(self)->prompt_.data();
}

std::optional<std::string> LineEditor::ReadLine(const std::string& prompt) {
  prompt_ = prompt;
  int count = 0;
  const char* line = el_gets(el_, &count);
  if (line == nullptr || count <= 0) return std::nullopt;
  std::string text(line, static_cast<size_t>(count));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

void LineEditor::AddHistory(const std::string& entry) {
  HistEvent ev;
  history(history_, &ev, H_ENTER, entry.c_str());
  if (!history_file_.empty()) history(history_, &ev, H_SAVE, history_file_.c_str());
}

unsigned char LineEditor::Complete(editline* el, int /*ch*/) {
  void* data = nullptr;
  el_get(el, EL_CLIENTDATA, &data);
  auto* self = static_cast<LineEditor*>(data);
  const LineInfo* info = el_line(el);
  const std::string_view before(info->buffer, static_cast<size_t>(info->cursor - info->buffer));
  const size_t word_start =
      before.find_last_of(" \t") == std::string_view::npos ? 0 : before.find_last_of(" \t") + 1;
  const size_t typed = before.size() - word_start;
  std::vector<std::string> candidates = self->completer_(before);
  if (candidates.empty()) return CC_REFRESH_BEEP;
  // The longest prefix all candidates share.
  std::string common = candidates[0];
  for (const std::string& c : candidates) {
    size_t n = 0;
    while (n < common.size() && n < c.size() && common[n] == c[n]) ++n;
    common.resize(n);
  }
  std::string insert = common.size() > typed ? common.substr(typed) : "";
  if (candidates.size() == 1 && !common.ends_with("=")) insert += " ";
  if (!insert.empty()) {
    el_insertstr(el, insert.c_str());
    return CC_REFRESH;
  }
  // Nothing more to add: show the choices under the line, then redraw it.
  std::string list = "\n";
  for (const std::string& c : candidates) list += c + "  ";
  list += "\n";
  std::fputs(list.c_str(), stdout);
  std::fflush(stdout);
  return CC_REDISPLAY;
}

}  // namespace strata::shell
