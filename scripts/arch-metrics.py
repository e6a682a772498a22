#!/usr/bin/env python3
"""Architecture numbers for a crate's sources: lines, the longest
functions, and the module import graph (`use crate::X` between top-level
modules), with cycles. Used for the architecture notes (docs/ARCHITECTURE.md).

    scripts/arch-metrics.py src            # the service library
    scripts/arch-metrics.py crates/contract/src
"""
import os
import re
import sys
from collections import defaultdict

root = sys.argv[1] if len(sys.argv) > 1 else "src"
files = []
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs"):
            files.append(os.path.join(d, f))

def module_of(path):
    rel = os.path.relpath(path, root)
    top = rel.split(os.sep)[0]
    return top[:-3] if top.endswith(".rs") else top

lines = 0
code = 0
funcs = []
graph = defaultdict(set)
fn_re = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")
for p in sorted(files):
    text = open(p, encoding="utf-8").read()
    ls = text.split("\n")
    lines += len(ls)
    in_test = False
    m = module_of(p)
    for u in re.findall(r"crate::(\w+)", text):
        if u != m and u not in ("pb",):
            graph[m].add(u)
    # Longest functions by brace matching (tests excluded: a #[cfg(test)]
    # module or a file named tests.rs).
    if p.endswith("tests.rs") or "/tests/" in p:
        continue
    i = 0
    while i < len(ls):
        line = ls[i]
        if line.strip().startswith("#[cfg(test)]"):
            break
        mm = fn_re.match(line)
        if mm and not line.rstrip().endswith(";"):
            depth, start, j, opened = 0, i, i, False
            while j < len(ls):
                depth += ls[j].count("{") - ls[j].count("}")
                if "{" in ls[j]:
                    opened = True
                if opened and depth <= 0:
                    break
                j += 1
            funcs.append((j - start + 1, f"{os.path.relpath(p, root)}:{start + 1} {mm.group(6)}"))
            i = j + 1
            continue
        i += 1

print(f"files: {len(files)}, lines: {lines}")
print("longest functions:")
for n, name in sorted(funcs, reverse=True)[:5]:
    print(f"  {n:4d} {name}")
print("imports between top-level modules:")
for m in sorted(graph):
    print(f"  {m} -> {', '.join(sorted(graph[m]))}")
cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph.get(b, ())})
print("two-module cycles:", ", ".join(f"{a}<->{b}" for a, b in cycles) or "none")
