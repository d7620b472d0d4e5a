#!/bin/bash
# The interactive strata shell as a person uses it, in a tmux terminal: Tab completion of a
# command, a module and a PState name, a recompute's progress, multi-line input, a watch
# stopped by Ctrl-C, and history recalled with the Up arrow after a restart of the shell.
# Starts its own stratad on a free port with the example
# modules.
#
# usage: interactive_test.sh STRATA STRATAD MODULE_DIR
set -u
strata=$1 stratad=$2 modules=$3

if ! command -v tmux > /dev/null; then
  echo "FAIL: tmux is not installed (apt-get install tmux); the interactive shell test needs it"
  exit 1
fi

tmp=$(mktemp -d /tmp/strata-shell-tty-XXXXXX)
socket="strata-shell-test-$$"
server_pid=""
cleanup() {
  tmux -L "$socket" kill-server 2> /dev/null
  if [ -n "$server_pid" ]; then kill "$server_pid" 2> /dev/null; wait "$server_pid" 2> /dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- screen:"
  tmux -L "$socket" capture-pane -p -t shell 2> /dev/null
  echo "--- stratad log (tail):"
  tail -5 "$tmp/stratad.log"
  exit 1
}

"$stratad" --data-dir "$tmp/data" --listen 127.0.0.1:0 --http off --deploy "$modules/wordcount.so" \
  > "$tmp/stratad.out" 2> "$tmp/stratad.log" &
server_pid=$!
port=""
for _ in $(seq 300); do
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/stratad.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2> /dev/null || fail "stratad exited before listening"
  sleep 0.1
done
[ -n "$port" ] || fail "stratad printed no 'listening on' line within 30 s"

# A shell in a fresh 160x50 terminal, with the test directory as its home (history file).
start_shell() {
  env -u TMUX tmux -L "$socket" new-session -d -s shell -x 160 -y 50 \
    "env HOME='$tmp' TERM=xterm '$strata' --port $port" || fail "tmux cannot start a session"
}
screen() { tmux -L "$socket" capture-pane -p -N -t shell; }
keys() { tmux -L "$socket" send-keys -t shell "$@"; }
# Waits up to 10 s until the screen shows a line matching the extended regex $1.
expect_line() {
  for _ in $(seq 100); do
    screen | grep -Eq -- "$1" && return 0
    sleep 0.1
  done
  fail "no line matching /$1/ on the screen ($2)"
}

start_shell
expect_line "^Connected to stratad .* at 127\.0\.0\.1:$port\. Type help" "banner"

keys -l 'append wordcount *sentences "the cat, the hat"'
keys Enter
expect_line '^count|^partition [0-7], offset 0$' "append result"

# Completion of a command: "desc" -> "describe ", then of a module name: "wo" -> "wordcount ".
keys -l 'desc'
keys Tab
expect_line '^strata> describe $' "command completion"
keys -l 'wo'
keys Tab
expect_line '^strata> describe wordcount $' "module completion"
keys Enter
expect_line '^module wordcount: 8 partitions, 1 depot, 2 PStates, 1 topology$' "describe output"

# Two candidates: the common prefix, then the list on a second Tab.
keys -l 'sel'
keys Tab
expect_line '^strata> select$' "common prefix of select and select-one"
keys Tab
expect_line '^select  select-one' "list of candidates"
# A PState name: "$$w" -> "$$word_counts ".
keys -l -- '-one wordcount $$w'
keys Tab
expect_line '^strata> select-one wordcount \$\$word_counts $' "PState completion"
keys -l 'key("the")'
keys Enter
expect_line '^2$' "select-one result"

# recompute on a terminal: the progress line is redrawn in place, then the result; the
# prompt comes back.
keys -l 'recompute wordcount $$word_counts'
keys Enter
expect_line '^recompute of \$\$word_counts of wordcount finished: the rebuilt PStates serve$' "recompute result"
expect_line '^strata> $' "prompt after recompute"

# watch shows the value, then each change made by another client; Ctrl-C stops the watch,
# not the shell, which goes on reading commands.
keys -l 'watch-one wordcount $$word_counts key("the")'
keys Enter
expect_line '^watching \$\$word_counts key\("the"\) of wordcount \(partition [0-7]\); Ctrl-C stops$' "watch banner"
"$strata" --port "$port" -c 'append wordcount *sentences "the end"' > /dev/null || fail "append during the watch"
expect_line '^replace \[\] 3$' "watched change"
keys C-c
expect_line '^(\^C)?stopped watching after 1 change$' "watch stopped by Ctrl-C"
expect_line '^strata> $' "prompt after the watch"
keys -l 'select-one wordcount $$word_counts key("end")'
keys Enter
expect_line '^strata> select-one wordcount \$\$word_counts key\("end"\)$' "command after the watch"
expect_line '^1$' "the shell still runs commands after Ctrl-C"

# Multi-line input: an open parenthesis continues the command on the next line.
keys -l 'select wordcount $$word_counts key('
keys Enter
expect_line '^   \.\.\.> +$' "continuation prompt"
keys -l '"cat")'
keys Enter
expect_line '^\[1\]$' "multi-line select result"

# destroy asks for the module's name; a wrong answer keeps the module.
keys -l 'destroy wordcount'
keys Enter
expect_line '^destroy module wordcount and ALL its data\? type its name to confirm: $' "destroy confirmation"
keys -l 'no'
keys Enter
expect_line '^not destroyed$' "destroy declined"

keys -l 'quit'
keys Enter
for _ in $(seq 100); do
  tmux -L "$socket" has-session -t shell 2> /dev/null || break
  sleep 0.1
done
tmux -L "$socket" has-session -t shell 2> /dev/null && fail "quit did not end the shell"
# libedit writes spaces as \040 in its history file.
grep -Eq 'select-one(\\040| )wordcount' "$tmp/.strata_history" ||
  fail "the history file $tmp/.strata_history lacks the select-one command"

# A new shell recalls the previous session's commands: Up three times is the multi-line
# select, as one line.
start_shell
expect_line "^Connected to stratad" "banner after restart"
keys Up
expect_line '^strata> quit$' "history: last command"
keys Up
expect_line '^strata> destroy wordcount$' "history: the destroy (its confirmation answer is not history)"
keys Up
expect_line '^strata> select wordcount \$\$word_counts key\( "cat"\)$' "history: the multi-line command"
keys Enter
expect_line '^\[1\]$' "recalled command result"
keys C-d
echo "PASS: completion (command, module, PState, candidate list), recompute, multi-line input, watch stopped by Ctrl-C, destroy confirmation, history across restarts"
