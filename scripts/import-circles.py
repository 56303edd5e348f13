#!/usr/bin/env python3
"""Import circles between the source files of each crate.

Run from the repository root (Python 3.11, standard library only):

    scripts/import-circles.py                  # every crate: crates/*/src and the root src/
    scripts/import-circles.py crates/core      # some crates only
    scripts/import-circles.py --edges crates/sim   # also print every edge found

Prints each strongly connected component of more than one file, with the line that makes each
edge of it, and exits 1 if there is any (0 when none, 2 on bad arguments).

How it works:
- The module tree is read from each crate root (`lib.rs`, `main.rs`, `bin/*.rs`) by following
  `mod x;` declarations, the way rustc finds files: `a.rs` or `a/mod.rs`, children of `a.rs`
  in `a/`; inline `mod x { ... }` blocks are part of their file. A node is a file.
- Comments, string and char literals are blanked first (doc examples and Lua scripts are not
  code), so only paths in code count.
- Edges come from `use` declarations (trees, groups, `as`, `self`, globs) and from paths in
  code that start with `crate::`, `super::`, `self::`, a child module's name or a name bound by
  a `use` of the same file. `super` and `self` are taken from the inline module they appear
  in, so `mod tests { use super::*; }` is the file itself, not its parent.
- A path is resolved to the file that defines the item: the longest module prefix that is a
  module, then through any `use` binding of that module (re-exports are followed, so
  `crate::Domain` re-exported by `lib.rs` from `domain.rs` is an edge to `domain.rs`).
- Parent and children: declaring `mod child;` is not an import. A child using its parent's
  items (`super::Item`, `use super::*`) imports the parent; a parent using a child's items
  (`child::f()`, `use child::Item;`) imports the child. A `pub use child::Item;` that only
  re-exports (the name is not used elsewhere in the file) is not an import: it is the
  module's public face, and users of the name are sent on to the child. So a parent that
  re-exports its children while they use its own items is not a circle; a parent that calls
  into a child that calls back into it is.
- A `use` naming a module only (`use crate::ports;`) is no edge by itself; the paths through
  that name are. Test code (`#[cfg(test)]`) counts like any other code.
- The cycles are the strongly connected components (Tarjan) of that graph with more than one
  file; a file using itself is not reported.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def blank(text: str) -> str:
    """Comments and the contents of string/char literals replaced by spaces, lines kept."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif m := re.compile(r'b?r(#*)"').match(text, i):
            if i > 0 and re.match(r"[A-Za-z0-9_]", text[i - 1]):
                i += 1
                continue
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            wipe(m.end(), j - len(end))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i + 1, j)
            i = j + 1
        elif c == "'":
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'").match(text, i)
            if m:
                wipe(i + 1, m.end() - 1)
                i = m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


@dataclass
class Binding:
    scope: tuple[str, ...]  # module the `use` is in
    path: list[str]  # as written
    name: str  # bound name, or "*" for a glob
    reexport: bool  # pub / pub(crate) / pub(super)
    line: int
    text: str


@dataclass
class Source:
    path: Path
    module: tuple[str, ...]
    code: str = ""
    lines: list[str] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)
    # (module the path is in, segments, line) for paths in code outside `use`
    paths: list[tuple[tuple[str, ...], list[str], int]] = field(default_factory=list)
    use_spans: list[tuple[int, int]] = field(default_factory=list)


def parse_use_tree(tree: str) -> list[tuple[list[str], str]]:
    """`a::{b, c::{d as e, self}, *}` to [(path, bound name)], "*" for globs."""
    tokens = re.findall(rf"::|[{{}},*]|{IDENT}|\S", tree)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def tree_at(prefix: list[str]) -> list[tuple[list[str], str]]:
        nonlocal pos
        path = list(prefix)
        while True:
            t = peek()
            if t is None:
                return [(path, path[-1])] if path else []
            if t == "{":
                pos += 1
                result = []
                while peek() not in (None, "}"):
                    result += tree_at(path)
                    if peek() == ",":
                        pos += 1
                pos += 1
                return result
            if t == "*":
                pos += 1
                return [(path, "*")]
            if t == "::":
                pos += 1
                continue
            pos += 1
            if t == "self" and path != [] and len(path) == len(prefix) and prefix:
                # `a::{self}` binds `a`
                name = path[-1]
            else:
                path.append(t)
                name = t
            if peek() == "as":
                pos += 1
                name = tokens[pos]
                pos += 1
            if peek() == "::":
                continue
            return [(path, name)]

    result = []
    while pos < len(tokens):
        result += tree_at([])
        if peek() == ",":
            pos += 1
        elif pos < len(tokens):
            pos += 1
    return result


USE_RE = re.compile(rf"(?P<vis>pub(\s*\([^)]*\))?\s+)?\buse\s+(?P<tree>[^;]*);")
MOD_RE = re.compile(rf"\bmod\s+(?P<name>{IDENT})\s*(?P<end>[;{{])")
PATH_RE = re.compile(rf"(?<![\w:$])(?P<path>\$?{IDENT}(?:\s*::\s*{IDENT})+)")


def scan(src: Source) -> list[tuple[tuple[str, ...], str, int]]:
    """Fill bindings and paths; return the `mod x;` declarations (module, name, line)."""
    code = src.code
    line_at = [0] * (len(code) + 1)
    ln = 1
    for k, ch in enumerate(code):
        line_at[k] = ln
        if ch == "\n":
            ln += 1
    line_at[len(code)] = ln

    # Inline module spans from braces.
    events = []  # (pos, kind, payload)
    for m in MOD_RE.finditer(code):
        events.append((m.start(), "mod", m))
    for k, ch in enumerate(code):
        if ch in "{}":
            events.append((k, ch, None))
    events.sort(key=lambda e: (e[0], 0 if e[1] == "mod" else 1))
    depth = 0
    stack: list[tuple[str, int]] = []  # (inline module, depth inside it)
    scope_changes = [(0, src.module)]
    decls = []
    pending = None
    for pos, kind, m in events:
        if kind == "mod":
            here = src.module + tuple(s for s, _ in stack)
            if m.group("end") == ";":
                decls.append((here, m.group("name"), line_at[pos]))
            else:
                pending = m.group("name")
        elif kind == "{":
            depth += 1
            if pending is not None:
                stack.append((pending, depth))
                pending = None
                scope_changes.append((pos, src.module + tuple(s for s, _ in stack)))
        else:
            if stack and stack[-1][1] == depth:
                stack.pop()
                scope_changes.append((pos, src.module + tuple(s for s, _ in stack)))
            depth -= 1

    def scope_at(pos: int) -> tuple[str, ...]:
        current = src.module
        for p, s in scope_changes:
            if p > pos:
                break
            current = s
        return current

    for m in USE_RE.finditer(code):
        before = code[: m.start()].rstrip()
        if before and before[-1] not in ";{}]":
            continue
        src.use_spans.append((m.start(), m.end()))
        tree = m.group("tree").strip()
        if tree.startswith("::"):
            continue
        line = line_at[m.start()]
        for path, name in parse_use_tree(tree):
            src.bindings.append(
                Binding(scope_at(m.start()), path, name, m.group("vis") is not None, line,
                        src.lines[line - 1].strip())
            )

    for m in PATH_RE.finditer(code):
        if any(a <= m.start() < b for a, b in src.use_spans):
            continue
        segs = [s.strip() for s in m.group("path").split("::")]
        src.paths.append((scope_at(m.start()), segs, line_at[m.start()]))
    return decls


@dataclass
class Crate:
    name: str
    root: Path
    files: dict[tuple[str, ...], Source] = field(default_factory=dict)  # module -> file
    inline: dict[tuple[str, ...], Source] = field(default_factory=dict)  # inline module -> file

    def load(self, root_file: Path) -> None:
        todo = [(root_file, (), True)]
        while todo:
            path, module, owns_dir = todo.pop()
            text = path.read_text(encoding="utf-8")
            src = Source(path, module, blank(text), text.splitlines())
            self.files[module] = src
            for here, name, _ in scan(src):
                base = path.parent if owns_dir else path.parent / path.stem
                base = base.joinpath(*here[len(module):])
                child = here + (name,)
                for cand, owns in ((base / f"{name}.rs", False), (base / name / "mod.rs", True)):
                    if cand.exists():
                        todo.append((cand, child, owns))
                        break
                else:
                    print(f"note: {path}: mod {name} has no file", file=sys.stderr)
            for b in src.bindings:
                if b.scope != module:
                    self.inline.setdefault(b.scope, src)
            for scope, _, _ in src.paths:
                if scope != module:
                    self.inline.setdefault(scope, src)

    def module_file(self, module: tuple[str, ...]) -> Source | None:
        return self.files.get(module) or self.inline.get(module)

    def is_module(self, module: tuple[str, ...]) -> bool:
        return self.module_file(module) is not None

    def bindings_of(self, module: tuple[str, ...], name: str) -> list[Binding]:
        src = self.module_file(module)
        if src is None:
            return []
        return [b for b in src.bindings if b.scope == module and b.name == name]

    def absolute(self, scope: tuple[str, ...], segs: list[str], depth: int = 0) -> list[str] | None:
        """The path from the crate root, or None when it leaves the crate."""
        if depth > 20 or not segs:
            return None
        head, rest = segs[0], segs[1:]
        if head in ("crate", "$crate"):
            return rest
        if head == "self":
            return list(scope) + rest
        if head == "super":
            up = list(scope)
            while segs and segs[0] == "super":
                if not up:
                    return None
                up.pop()
                segs = segs[1:]
            if segs and segs[0] in ("self",):
                segs = segs[1:]
            return up + segs
        if self.is_module(scope + (head,)):
            return list(scope) + segs
        for s in (scope, scope[:-1]) if len(scope) > len(self.file_scope(scope)) else (scope,):
            for b in self.bindings_of(s, head):
                base = self.absolute(b.scope, b.path, depth + 1)
                return None if base is None else base + rest
        return None

    def file_scope(self, scope: tuple[str, ...]) -> tuple[str, ...]:
        src = self.module_file(scope)
        return src.module if src else ()

    def resolve(self, path: list[str], depth: int = 0) -> Source | None:
        """The file defining what an absolute path names."""
        if depth > 20:
            return None
        k = len(path)
        while k > 0 and not self.is_module(tuple(path[:k])):
            k -= 1
        module = tuple(path[:k])
        src = self.module_file(module)
        rest = path[k:]
        if not rest:
            return src
        for b in self.bindings_of(module, rest[0]):
            target = self.absolute(b.scope, b.path, depth + 1)
            return None if target is None else self.resolve(target + rest[1:], depth + 1)
        if not re.search(rf"\b(fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+"
                         rf"{re.escape(rest[0])}\b", src.code):
            for b in self.bindings_of(module, "*"):
                target = self.absolute(b.scope, b.path, depth + 1)
                if target is not None and self.is_module(tuple(target)):
                    found = self.resolve(target + rest, depth + 1)
                    if found is not None and found is not src:
                        return found
        return src

    def edges(self) -> dict[Path, dict[Path, tuple[int, str]]]:
        graph: dict[Path, dict[Path, tuple[int, str]]] = {s.path: {} for s in self.files.values()}

        def add(src: Source, target: Source | None, line: int, why: str) -> None:
            if target is not None and target is not src and target.path not in graph[src.path]:
                graph[src.path][target.path] = (line, why)

        for src in self.files.values():
            body = src.code
            for a, b in reversed(src.use_spans):
                body = body[:a] + " " * (b - a) + body[b:]
            body = MOD_RE.sub(" ", body)
            for b in src.bindings:
                target = self.absolute(b.scope, b.path)
                if target is None:
                    continue
                if b.name == "*":
                    if not b.reexport:
                        add(src, self.resolve(target), b.line, b.text)
                    continue
                if self.is_module(tuple(target)):
                    continue  # a module name: the paths through it are the edges
                if b.reexport and not re.search(rf"\b{re.escape(b.name)}\b", body):
                    continue  # only re-exported
                add(src, self.resolve(target), b.line, b.text)
            for scope, segs, line in src.paths:
                if segs[0] == "Self":
                    continue
                target = self.absolute(scope, segs)
                if target is not None:
                    add(src, self.resolve(target), line, src.lines[line - 1].strip())
        return graph


def components(graph: dict[Path, dict[Path, tuple[int, str]]]) -> list[list[Path]]:
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on: set[Path] = set()
    found: list[list[Path]] = []

    def visit(v: Path) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def crate_roots(crate_dir: Path) -> list[Path]:
    src = crate_dir / "src"
    roots = [src / "lib.rs", src / "main.rs"]
    roots += sorted((src / "bin").glob("*.rs")) + sorted((src / "bin").glob("*/main.rs"))
    return [r for r in roots if r.exists()]


def main(argv: list[str]) -> int:
    show_edges = "--edges" in argv
    args = [a for a in argv if a != "--edges"]
    if any(a.startswith("-") for a in args):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    dirs = [Path(a) for a in args] or sorted(Path("crates").glob("*")) + [Path(".")]
    total = 0
    for d in dirs:
        roots = crate_roots(d)
        if not roots:
            if args:
                print(f"{d}: no src/lib.rs or src/main.rs", file=sys.stderr)
                return 2
            continue
        for root in roots:
            crate = Crate(str(d), root)
            crate.load(root)
            graph = crate.edges()
            label = f"{root.parent}" if len(roots) == 1 else f"{root}"
            base = root.parent
            if show_edges:
                for v in sorted(graph):
                    for w, (line, why) in sorted(graph[v].items()):
                        print(f"  {v.relative_to(base)}:{line} -> {w.relative_to(base)}    {why}")
            cycles = components(graph)
            total += len(cycles)
            print(f"{label}: {len(graph)} files, "
                  f"{'no cycle' if not cycles else f'{len(cycles)} cycle(s)'}")
            for comp in cycles:
                members = set(comp)
                print(f"  cycle: {', '.join(str(p.relative_to(base)) for p in comp)}")
                for v in comp:
                    for w, (line, why) in sorted(graph[v].items()):
                        if w in members:
                            print(f"    {v.relative_to(base)}:{line} -> "
                                  f"{w.relative_to(base)}    {why}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
