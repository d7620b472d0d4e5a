#!/usr/bin/python3
"""Compares two `bench/compare.sh --json` files (docs/performance.md, "How to reproduce").

Usage: bench/compare-diff.py [--threshold PCT] OLD.json NEW.json

Prints every ratio of OLD (Strata's rate divided by a peer's, per row) next to NEW's and
flags each ratio that fell by more than PCT percent (15 by default). A ratio OLD has and NEW
lacks is flagged too when Strata's own figure is what is missing (its run failed), and so is
a row whose Strata checks failed in NEW; a row or a peer that NEW does not have at all (a
run of fewer workloads, a peer not installed) is reported and not flagged.

Exit status: 0 if nothing is flagged, 1 if something is, 2 if a file cannot be read or is
not a compare.sh JSON file. Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import json
import sys


class BadFile(Exception):
    """A file that is not a readable compare.sh JSON document; the message says why."""


def load(path):
    """Returns (document, {variant: row}) of a compare.sh JSON file, or raises BadFile."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise BadFile(f"{path}: cannot read: {e.strerror}") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadFile(f"{path}: not JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise BadFile(f"{path}: not a compare.sh JSON file (no \"rows\" list)")
    rows = {}
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("variant"), str):
            raise BadFile(f"{path}: row {i} has no \"variant\"")
        variant = row["variant"]
        if variant in rows:
            raise BadFile(f"{path}: row {i}: variant {variant!r} appears twice")
        for field in ("ratios", "systems"):
            if not isinstance(row.get(field, {}), dict):
                raise BadFile(f"{path}: row {variant!r}: \"{field}\" is not an object")
        for key, value in row.get("ratios", {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise BadFile(f"{path}: row {variant!r}: ratio {key!r} is not a number ≥ 0: {value!r}")
        rows[variant] = row
    return doc, rows


def strata_failed(row):
    """Why Strata's side of a row is not usable (its run failed), or None."""
    strata = row.get("systems", {}).get("strata")
    if not isinstance(strata, dict) or strata.get("rate") is None:
        return "Strata has no figure (its run failed)"
    if strata.get("ok") is False:
        return "Strata's run reported errors or a failed check"
    return None


def ratio_label(key, labels):
    """'strata/postgres' → 'Strata ÷ PostgreSQL' with the file's system names."""
    parts = key.split("/")
    if len(parts) != 2:
        return key
    return " ÷ ".join(labels.get(p, p) if isinstance(labels.get(p), str) else p for p in parts)


def fmt(value):
    return "–" if value is None else f"{value:.2f}×"


def compare(old_rows, new_rows, labels, threshold):
    """Returns (table lines, notes, flagged descriptions, number of ratios compared)."""
    lines, notes, flagged, compared = [], [], [], 0
    for variant in list(old_rows) + [v for v in new_rows if v not in old_rows]:
        old, new = old_rows.get(variant), new_rows.get(variant)
        if new is None:
            notes.append(f"{variant}: row missing in NEW (not run?); not compared")
            continue
        if old is None:
            notes.append(f"{variant}: new row (not in OLD)")
        failed = strata_failed(new)
        if old is not None:
            for field in ("configuration", "unit"):
                if old.get(field) != new.get(field):
                    notes.append(f"{variant}: {field} changed: {old.get(field)!r} → {new.get(field)!r}")
        strata = new.get("systems", {}).get("strata")
        if failed and isinstance(strata, dict) and strata.get("rate") is not None:
            flagged.append(f"{variant}: {failed}")
        old_ratios = old.get("ratios", {}) if old else {}
        new_ratios = new.get("ratios", {})
        for key in list(old_ratios) + [k for k in new_ratios if k not in old_ratios]:
            a, b = old_ratios.get(key), new_ratios.get(key)
            label = ratio_label(key, labels)
            mark = ""
            if a is not None and b is not None:
                compared += 1
                change = (b / a - 1) * 100 if a > 0 else 0.0
                mark = f"{change:+.1f}%"
                # The tolerance keeps a fall of exactly the threshold (in decimal) unflagged.
                if -change > threshold + 1e-9:
                    mark += "  FELL"
                    flagged.append(f"{variant}: {label} fell {fmt(a)} → {fmt(b)} ({change:+.1f}%)")
            elif a is None:
                mark = "new in NEW"
            elif failed:
                mark = f"MISSING in NEW: {failed}"
                flagged.append(f"{variant}: {label}: {failed}")
            else:
                peer = key.split("/")[-1]
                mark = f"missing in NEW: no {labels.get(peer, peer)} figure; not compared"
            lines.append((variant, label, fmt(a), fmt(b), mark))
    return lines, notes, flagged, compared


def describe(name, doc):
    return (f"{name}: commit {doc.get('commit', '?')}, started {doc.get('started', '?')}\n"
            f"     {doc.get('machine', '(no machine line)')}")


def main(argv):
    parser = argparse.ArgumentParser(
        description="Compares the ratios of two bench/compare.sh --json files and flags "
                    "every ratio that fell by more than the threshold.")
    parser.add_argument("old", metavar="OLD.json")
    parser.add_argument("new", metavar="NEW.json")
    parser.add_argument("--threshold", type=float, default=15.0, metavar="PCT",
                        help="flag a ratio that fell by more than PCT percent (default 15)")
    args = parser.parse_args(argv)
    if not 0 <= args.threshold < 100:
        parser.error(f"--threshold {args.threshold:g}: a percentage in [0, 100)")
    try:
        old_doc, old_rows = load(args.old)
        new_doc, new_rows = load(args.new)
    except BadFile as e:
        print(f"compare-diff: {e}", file=sys.stderr)
        return 2

    labels = {}
    for doc in (old_doc, new_doc):
        if isinstance(doc.get("systems"), dict):
            labels.update(doc["systems"])
    lines, notes, flagged, compared = compare(old_rows, new_rows, labels, args.threshold)

    print(describe("OLD", old_doc))
    print(describe("NEW", new_doc))
    print()
    header = ("row", "ratio", "old", "new", "change")
    widths = [max(len(r[i]) for r in lines + [header]) for i in range(4)]
    for r in [header] + lines:
        print("  ".join(r[i].ljust(widths[i]) if i < 2 else r[i].rjust(widths[i])
                        for i in range(4)) + "  " + r[4])
    for note in notes:
        print(f"note: {note}")
    print()
    if flagged:
        print(f"compare-diff: {len(flagged)} flagged (a ratio fell by more than "
              f"{args.threshold:g}%, or Strata's run failed):")
        for f in flagged:
            print(f"  {f}")
        return 1
    print(f"compare-diff: no ratio fell by more than {args.threshold:g}% "
          f"({compared} ratios compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
