#!/usr/bin/env python3
"""The structure checks of docs/guide/development.md, over every crate's src/:

- no module cycle inside a crate: among the top-level modules of a crate, and among the
  siblings inside a folder module, read from `crate::a::…` and `super::b::…` paths;
- no source file over MAX_LINES lines, not counting `#[cfg(test)]` modules.

Exits 1 naming each problem on one line; 0 when the house is in order.
"""
import pathlib
import re
import sys

MAX_LINES = 800
ROOT = pathlib.Path(__file__).resolve().parent.parent

USE_CRATE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_SUPER = re.compile(r"\bsuper::([a-z_][a-z0-9_]*)")
GROUP = re.compile(r"\b(crate|super)::\{")


def expand_groups(body):
    """Rewrites `crate::{a::x, b}` as `crate::a::x crate::b` (nesting kept one level down) so
    that the plain path patterns see every module a grouped `use` names."""
    out, i = [], 0
    for m in GROUP.finditer(body):
        start = m.end()
        depth, j, item, items = 1, start, "", []
        while j < len(body) and depth > 0:
            c = body[j]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if depth == 1 and c == ",":
                items.append(item)
                item = ""
            elif depth > 0:
                item += c
            j += 1
        items.append(item)
        out.extend(f"{m.group(1)}::{it.strip()}" for it in items if it.strip())
    return body + "\n" + "\n".join(out)
CFG_TEST = re.compile(r"^\s*#\[cfg\(test\)\]\s*$")


def strip_tests(lines):
    """Lines outside `#[cfg(test)] mod … { … }` blocks (brace-counted)."""
    out, i = [], 0
    while i < len(lines):
        if CFG_TEST.match(lines[i]) and i + 1 < len(lines) and re.match(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*(\{|;)", lines[i + 1]):
            if lines[i + 1].rstrip().endswith(";"):
                i += 2
                continue
            depth, j = 0, i + 1
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                j += 1
                if depth <= 0:
                    break
            i = j
            continue
        out.append(lines[i])
        i += 1
    return out


def module_of(src, path):
    """(parent folder module path, top module name) of a file under src/."""
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        return None
    return parts


def cycles(graph):
    found, seen = [], set()
    for a in sorted(graph):
        for b in sorted(graph[a]):
            if a in graph.get(b, ()) and (b, a) not in seen:
                seen.add((a, b))
                found.append((a, b))
    # longer cycles: DFS
    index, stack, onstack, low, comps, counter = {}, [], set(), {}, [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        onstack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in onstack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                onstack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 2:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found, comps


def main():
    problems = []
    for src in sorted(ROOT.glob("crates/*/src")):
        crate = src.parent.name
        files = sorted(src.rglob("*.rs"))
        graphs = {}  # folder path tuple -> {module: set(modules)}
        for f in files:
            text = f.read_text(encoding="utf-8")
            lines = text.splitlines()
            code = strip_tests(lines)
            relname = f.relative_to(ROOT)
            in_tests = f.name == "tests.rs" or "tests" in f.relative_to(src).parts[:-1]
            if not in_tests and len(code) > MAX_LINES:
                problems.append(f"{relname}: {len(code)} lines outside tests (the limit is {MAX_LINES}); split it by concern")
            parts = module_of(src, f)
            if parts is None or in_tests:
                continue
            body = expand_groups("\n".join(l for l in code if not l.lstrip().startswith("//")))
            # crate:: paths: edges between top-level modules
            top = parts[0]
            for m in USE_CRATE.findall(body):
                if m != top and ((src / f"{m}.rs").exists() or (src / m / "mod.rs").exists()):
                    graphs.setdefault((), {}).setdefault(top, set()).add(m)
            for full in re.findall(r"\bcrate::((?:[a-z_][a-z0-9_]*::)+[a-z_][a-z0-9_]*)", body):
                segs = full.split("::")
                for depth in range(1, len(parts)):
                    if segs[:depth] == parts[:depth] and len(segs) > depth and segs[depth] != parts[depth]:
                        folder = tuple(parts[:depth])
                        target = segs[depth]
                        base = src.joinpath(*folder)
                        if (base / f"{target}.rs").exists() or (base / target / "mod.rs").exists():
                            graphs.setdefault(folder, {}).setdefault(parts[depth], set()).add(target)
            # super:: paths from a file inside a folder: sibling edges
            if len(parts) >= 2:
                folder = tuple(parts[:-1])
                base = src.joinpath(*folder)
                for m in USE_SUPER.findall(body):
                    if m != parts[-1] and ((base / f"{m}.rs").exists() or (base / m / "mod.rs").exists()):
                        graphs.setdefault(folder, {}).setdefault(parts[-1], set()).add(m)
        for folder, graph in sorted(graphs.items()):
            where = crate + ("::" + "::".join(folder) if folder else "")
            pairs, comps = cycles(graph)
            for a, b in pairs:
                problems.append(f"{where}: modules `{a}` and `{b}` use each other; move what both need into one of them or a third module")
            for comp in comps:
                problems.append(f"{where}: module cycle {' -> '.join(comp)}; break it")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} structure problem(s)", file=sys.stderr)
        return 1
    print("structure: no module cycles inside a crate; no source file over", MAX_LINES, "lines outside tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
