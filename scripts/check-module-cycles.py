#!/usr/bin/env python3
"""Fails when modules of a Rust crate import each other in a loop.

Usage: scripts/check-module-cycles.py [--graph] [--deny-root-reexports] CRATE_DIR...

The module tree is read from CRATE_DIR/src/lib.rs (else src/main.rs),
following `mod x;` to its file and `mod x { ... }` inline; a
`#[cfg(test)] mod tests` is a module of its own, so a test's imports never
count against the code it tests.

An edge A -> B means code in A names an item B defines: a `use`, or a path
(`crate::`, `super::`, `self::`, a child module's name, or a name a `use`
brought in). Paths are followed through `use` declarations, re-exports
included, to the module that defines the item, so the graph is the one of
definitions: `crate::SyncError` leads to `error`, not to `lib.rs`. A
re-export (`pub use`) is no edge by itself, only when its module's own code
names the item too. Declaring a module (`mod x;`) is no edge either.

Exit status 1 when a crate has a loop (a strongly connected set of modules;
one concrete loop is printed with the line of each edge), 2 on usage errors.
  --graph                 also print every edge
  --deny-root-reexports   also fail when a module names an item through a
                          re-export of the crate root instead of its module
Comments and string literals are ignored. Needs only python3.
"""

import os
import re
import sys
from collections import defaultdict

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip(text):
    """Replaces comments, string and char literals by spaces (keeping newlines)."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join(c if c == "\n" else " " for c in s)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
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
            out.append(blank(text[i:j]))
            i = j
        elif c in "rbc" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            # Raw strings (r"..", r#".."#, br#".."#, cr".."), byte/C strings (b"..", c"..").
            m = re.compile(r'(?:br|cr|r)(#*)"').match(text, i)
            if m:
                end = '"' + m.group(1)
                j = text.find(end, m.end())
                j = n if j < 0 else j + len(end)
                out.append(blank(text[i:j]))
                i = j
                continue
            if text.startswith(('b"', 'c"'), i):
                j = skip_string(text, i + 1)
                out.append(blank(text[i:j]))
                i = j
                continue
            if text.startswith("b'", i):
                j = skip_char(text, i + 1)
                out.append(blank(text[i:j]))
                i = j
                continue
            out.append(c)
            i += 1
        elif c == '"':
            j = skip_string(text, i)
            out.append(blank(text[i:j]))
            i = j
        elif c == "'":
            j = skip_char(text, i)
            out.append(blank(text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_string(text, i):
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == '"':
            return j + 1
        else:
            j += 1
    return j


def skip_char(text, i):
    """A char literal from its opening quote, or a lifetime/label (left alone)."""
    if i + 1 < len(text) and text[i + 1] == "\\":
        j = text.find("'", i + 2)
        return len(text) if j < 0 else j + 1
    if i + 2 < len(text) and text[i + 2] == "'":
        return i + 3
    return i + 1  # a lifetime: keep scanning after the quote


TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|::|[{};,*#\[\]()]|\S")


def tokens(text):
    line = 1
    pos = 0
    for m in TOKEN.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        yield m.group(0), line


class Module:
    def __init__(self, name, parent, file, dir_for_children):
        self.name = name  # full path, "crate" for the root
        self.parent = parent
        self.file = file
        self.dir = dir_for_children  # where `mod x;` files of this module live
        self.children = {}
        # `use` declarations: alias name -> (path segments, is_pub); globs apart.
        self.aliases = {}
        self.globs = []
        # Identifiers in this module's own code (outside `use` declarations).
        self.idents = defaultdict(int)


class Crate:
    def __init__(self, root_dir):
        self.root_dir = root_dir
        self.modules = {}
        self.refs = []  # (module, path segments, file, line)
        self.uses = []  # (module, alias or None for a glob, segments, is_pub, file, line)
        self.problems = []

    def add(self, name, parent, file, child_dir):
        m = Module(name, parent, file, child_dir)
        self.modules[name] = m
        if parent is not None:
            parent.children[name.rsplit("::", 1)[-1]] = m
        return m

    def load_file(self, module, path):
        with open(path, encoding="utf-8") as f:
            src = strip(f.read())
        toks = list(tokens(src))
        self.parse(module, toks, 0, len(toks), path)

    def parse(self, module, toks, start, end, path):
        i = start
        path_attr = False
        while i < end:
            t, line = toks[i]
            if t == "#" and i + 1 < end and toks[i + 1][0] == "[":
                # Attribute: note `#[path = ...]`, which this script does not follow.
                j, depth = i + 1, 0
                while j < end:
                    if toks[j][0] == "[":
                        depth += 1
                    elif toks[j][0] == "]":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                if i + 2 < end and toks[i + 2][0] == "path":
                    path_attr = True
                i = j + 1
                continue
            if t == "mod" and i + 2 < end and IDENT.fullmatch(toks[i + 1][0]):
                name = toks[i + 1][0]
                full = name if module.name == "crate" else f"{module.name}::{name}"
                if toks[i + 2][0] == ";":
                    if path_attr:
                        self.problems.append(f"{path}:{line}: #[path] on `mod {name}` is not followed")
                    else:
                        self.load_child(module, name, full, path, line)
                    i += 3
                    path_attr = False
                    continue
                if toks[i + 2][0] == "{":
                    close = matching(toks, i + 2, end)
                    child = self.add(full, module, path, os.path.join(module.dir, name))
                    self.parse(child, toks, i + 3, close, path)
                    i = close + 1
                    path_attr = False
                    continue
            path_attr = False
            if t == "use":
                # `pub use`, `pub(crate) use`, `pub(super) use`: a re-export.
                k = i - 1
                if k >= start and toks[k][0] == ")":
                    while k >= start and toks[k][0] != "(":
                        k -= 1
                    k -= 1
                is_pub = k >= start and toks[k][0] == "pub"
                semi = i + 1
                while semi < end and toks[semi][0] != ";":
                    semi += 1
                for alias, segs in use_paths([x[0] for x in toks[i + 1 : semi]]):
                    self.uses.append((module, alias, segs, is_pub, path, line))
                    if alias is None:
                        module.globs.append(segs)
                    elif alias != "_":
                        module.aliases[alias] = (segs, is_pub)
                i = semi + 1
                continue
            if IDENT.fullmatch(t):
                module.idents[t] += 1
            if IDENT.fullmatch(t) and i + 1 < end and toks[i + 1][0] == "::" and (i == start or toks[i - 1][0] != "::"):
                segs = [t]
                j = i + 1
                while j + 1 < end and toks[j][0] == "::" and IDENT.fullmatch(toks[j + 1][0]):
                    segs.append(toks[j + 1][0])
                    j += 2
                self.refs.append((module, segs, path, line))
                i = j
                continue
            i += 1

    def load_child(self, module, name, full, path, line):
        for cand, child_dir in (
            (os.path.join(module.dir, name + ".rs"), os.path.join(module.dir, name)),
            (os.path.join(module.dir, name, "mod.rs"), os.path.join(module.dir, name)),
        ):
            if os.path.isfile(cand):
                child = self.add(full, module, cand, child_dir)
                self.load_file(child, cand)
                return
        self.problems.append(f"{path}:{line}: no file for `mod {name};`")

    def resolve(self, module, segs, depth=0):
        """Where a path leads: (module defining the item, whether every
        segment was a module, whether it went through a re-export of the
        crate root), or None for a path outside the crate."""
        if depth > 32:
            return None
        cur, k, via_root = module, 0, False
        first = segs[0]
        if first == "crate":
            cur, k = self.modules["crate"], 1
        elif first in ("super", "self"):
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    cur = cur.parent
                    if cur is None:
                        return None
                k += 1
        elif first not in module.children and first not in module.aliases:
            return None
        while k < len(segs):
            seg = segs[k]
            if seg in cur.children:
                cur = cur.children[seg]
                k += 1
                continue
            alias = cur.aliases.get(seg)
            if alias is None:
                break
            target_segs, is_pub = alias
            if target_segs == segs[: k + 1] and cur is module:
                break
            r = self.resolve(cur, target_segs, depth + 1)
            if r is None:
                return None
            if cur.name == "crate" and is_pub:
                via_root = True
            target, whole, through = r
            via_root = via_root or through
            cur, k = target, k + 1
            if not whole:
                # The alias names an item: what follows are its members.
                return cur, False, via_root
        return cur, k == len(segs), via_root

    def graph(self):
        """Edges between modules (from -> to -> (file, line)), and the
        places that import through a re-export of the crate root."""
        edges = defaultdict(dict)
        via_root = []

        def add(module, segs, path, line):
            r = self.resolve(module, segs)
            if r is None:
                return
            target, _, through = r
            if through and module.name != "crate":
                via_root.append((module.name, "::".join(segs), path, line))
            if target is not module:
                edges[module.name].setdefault(target.name, (path, line))

        for module, segs, path, line in self.refs:
            add(module, segs, path, line)
        for module, alias, segs, is_pub, path, line in self.uses:
            # A re-export is an alias, not a use: whoever names the item
            # through it depends on where it is defined. It is a use too
            # when the module's own code names the item.
            if is_pub and (alias is None or module.idents.get(alias, 0) == 0):
                continue
            add(module, segs, path, line)
        return edges, via_root


def matching(toks, open_idx, end):
    depth = 0
    for j in range(open_idx, end):
        if toks[j][0] == "{":
            depth += 1
        elif toks[j][0] == "}":
            depth -= 1
            if depth == 0:
                return j
    return end


def use_paths(toks):
    """Expands a use tree (tokens after `use`, before `;`) into
    (alias, path) pairs; the alias is None for a glob (`*`)."""
    out = []

    def leaf(segs, alias):
        if segs:
            out.append((alias if alias is not None or not segs else segs[-1], segs))

    def tree(i, prefix):
        segs = list(prefix)
        while i < len(toks):
            t = toks[i]
            if t == "{":
                i += 1
                while i < len(toks) and toks[i] != "}":
                    i = tree(i, segs)
                    if i < len(toks) and toks[i] == ",":
                        i += 1
                return i + 1
            if t == "*":
                if segs:
                    out.append((None, segs))
                return i + 1
            if t in (",", "}"):
                leaf(segs, None)
                return i
            if t == "as":
                leaf(segs, toks[i + 1] if i + 1 < len(toks) else None)
                return i + 2
            if t == "::":
                i += 1
                continue
            if t == "self" and segs and toks[i - 1] in ("{", ","):
                i += 1
                continue
            segs.append(t)
            i += 1
        leaf(segs, None)
        return i

    if toks:
        tree(0, [])
    return out


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    nodes = set(edges) | {t for ts in edges.values() for t in ts}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def shortest_loop(edges, comp):
    """One concrete loop inside a component, for the message."""
    members = set(comp)
    start = comp[0]
    # BFS from start back to start within the component.
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, {})):
            if w not in members:
                continue
            if w == start:
                loop = [v]
                while prev[loop[-1]] is not None:
                    loop.append(prev[loop[-1]])
                loop.reverse()
                return loop + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def check(crate_dir, show_graph, deny_root):
    src = os.path.join(crate_dir, "src")
    roots = [p for p in ("lib.rs", "main.rs") if os.path.isfile(os.path.join(src, p))]
    if not roots:
        print(f"{crate_dir}: no src/lib.rs or src/main.rs", file=sys.stderr)
        return 2
    crate = Crate(crate_dir)
    root_file = os.path.join(src, roots[0])
    root = crate.add("crate", None, root_file, src)
    crate.load_file(root, root_file)
    edges, via_root = crate.graph()
    for p in crate.problems:
        print(f"warning: {p}", file=sys.stderr)
    if show_graph:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f"  {a} -> {b}")
    found = cycles(edges)
    name = os.path.basename(os.path.normpath(crate_dir))
    status = 0
    if deny_root and via_root:
        status = 1
        print(f"{name}: {len(via_root)} import(s) through the crate root's re-exports (name the defining module):")
        for m, p, f, line in via_root:
            print(f"  {m}: {p}  ({os.path.relpath(f)}:{line})")
    if not found:
        imports = sum(len(v) for v in edges.values())
        print(f"{name}: {len(crate.modules)} modules, {imports} module dependencies, no import loop")
        return status
    print(f"{name}: {len(found)} import loop(s) between modules:")
    for comp in found:
        loop = shortest_loop(edges, comp)
        print(f"  {len(comp)} modules: {', '.join(comp)}")
        print(f"    e.g. {' -> '.join(loop)}")
        for a, b in zip(loop, loop[1:]):
            f, line = edges[a][b]
            print(f"      {a} -> {b}  ({os.path.relpath(f)}:{line})")
    return 1


def main(argv):
    flags = {"--graph", "--deny-root-reexports"}
    dirs = [a for a in argv if a not in flags]
    if not dirs or any(a.startswith("-") for a in dirs):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    status = 0
    for d in dirs:
        status = max(status, check(d, "--graph" in argv, "--deny-root-reexports" in argv))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
