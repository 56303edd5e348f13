#!/usr/bin/env python3
"""The shape of the code: lines per crate, the largest source files and the longest functions.

    python3 scripts/code-shape.py [--top N] [--max-fn LINES CRATE...]

Reads crates/*/src and src/ of the current directory (run it from the repo root, or from a
checkout of another commit to compare). Lines are physical lines of .rs files under src/.
Functions are found by their `fn name` line and measured to their closing brace (braces in
strings, chars and comments are skipped); functions inside a `#[cfg(test)]` module or a
`tests.rs` / `tests/` file are test code and are listed apart. `--max-fn 80 engine cli` exits
1 if a non-test function of those crates is longer than 80 lines, and lists them.
"""

import argparse
import re
import sys
from pathlib import Path

FN = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
                r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip(text):
    """The text with strings, chars and comments blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = len(re.match(r"r(#*)\"", text[i:]).group(1))
            end = '"' + "#" * hashes
            j = text.find(end, i + 2 + hashes)
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12]):
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:i + 12])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, lines, is_test) of every function with a body in `path`."""
    text = strip(path.read_text())
    lines = text.split("\n")
    test_file = path.name == "tests.rs" or "tests" in path.parts[path.parts.index("src") + 1:-1]
    # Lines inside #[cfg(test)] items.
    test_lines = set()
    for k, line in enumerate(lines):
        if "#[cfg(test)]" in line:
            depth, started = 0, False
            for m in range(k + 1, len(lines)):
                depth += lines[m].count("{") - lines[m].count("}")
                started = started or "{" in lines[m]
                test_lines.add(m)
                if (started and depth <= 0) or (not started and lines[m].rstrip().endswith(";")):
                    break
    found = []
    for k, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(k, len(lines)):
            if not started and ";" in lines[j] and "{" not in lines[j]:
                break  # a declaration without a body
            depth += lines[j].count("{") - lines[j].count("}")
            started = started or "{" in lines[j]
            if started and depth <= 0:
                found.append((m.group(1), k + 1, j - k + 1, test_file or k in test_lines))
                break
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--max-fn", nargs="+", metavar=("LINES", "CRATE"))
    args = ap.parse_args()
    roots = sorted(Path("crates").glob("*/src")) + [Path("src")]
    files, fns = [], []
    print("lines per crate (src/**/*.rs):")
    for root in roots:
        total = 0
        for path in sorted(root.rglob("*.rs")):
            count = len(path.read_text().split("\n")) - 1
            total += count
            files.append((count, str(path)))
            crate = root.parent.name if root.parent.name != "." else "rollcall"
            for name, line, length, is_test in functions(path):
                fns.append((length, f"{path}:{line} {name}", crate, is_test))
        print(f"  {str(root.parent):<22} {total:>6}")
    print(f"largest files:")
    for count, path in sorted(files, reverse=True)[:args.top]:
        print(f"  {count:>5}  {path}")
    print(f"longest functions (not test code):")
    for length, where, _, _ in sorted([f for f in fns if not f[3]], reverse=True)[:args.top]:
        print(f"  {length:>5}  {where}")
    print(f"longest test functions:")
    for length, where, _, _ in sorted([f for f in fns if f[3]], reverse=True)[:args.top]:
        print(f"  {length:>5}  {where}")
    if args.max_fn:
        limit, crates = int(args.max_fn[0]), set(args.max_fn[1:])
        over = sorted(f for f in fns if not f[3] and f[2] in crates and f[0] > limit)
        print(f"non-test functions over {limit} lines in {', '.join(sorted(crates))}: {len(over)}")
        for length, where, _, _ in reversed(over):
            print(f"  {length:>5}  {where}")
        return 1 if over else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
