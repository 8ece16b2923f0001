"""Which kernel objects a patch touches, without building the kernel.

A changed ``.c``/``.S`` file is its own object.  A changed header touches
every ``.c`` file that includes it, directly or through other headers (up
to ``DEPTH`` levels; found with ``git grep`` in the tree's work tree), kept
only when its Kbuild Makefile builds it in the check config: ``obj-y``, or
``obj-$(CONFIG_X)`` with X set, directly or through a composite object
(``vhost_net-y := net.o``).  That is cheaper than a whole build just to read
its dependency files, and on a shared two-core machine it is the
difference between seconds and most of an hour.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..tree import Tree

DEPTH = 3
SKIP_PREFIXES = ("tools/", "scripts/", "Documentation/", "samples/", "usr/")
ARCH_RE = re.compile(r"^arch/(?!x86/)")
_ASSIGN_RE = re.compile(r"^([\w$()-]+)\s*[:+]?=\s*(.*)$")


def include_spellings(header: str) -> list[tuple[str, str | None]]:
    """How a header is named in ``#include``: (name, the directory it is quoted from, or None)."""
    for prefix in ("include/uapi/", "arch/x86/include/uapi/", "include/", "arch/x86/include/"):
        if header.startswith(prefix):
            name = header[len(prefix):]
            return [(name, None), (f"uapi/{name}", None)] if "uapi/" in prefix else [(name, None)]
    d, _, name = header.rpartition("/")
    return [(name, d)]


def header_users(tree: Tree, header: str) -> list[str]:
    """``.c`` files that include ``header``, through other headers too.

    Looked up in the tree's work tree (``git grep`` of the checked-out
    files: a second; grepping a commit reads every blob, minutes): who
    includes a header rarely changes within a series.
    """
    seen, cfiles, frontier = {header}, set(), [header]
    for _ in range(DEPTH):
        if not frontier:
            break
        found: list[str] = []
        names = [n for h in frontier for n, d in include_spellings(h) if d is None]
        if names:
            found += _grep(tree, names, ".")
        for h in frontier:
            for n, d in include_spellings(h):
                if d is not None:
                    # A header next to its users is quoted without a path.
                    found += _grep(tree, [n], d, quoted=True)
        frontier = []
        for f in found:
            if f.startswith(SKIP_PREFIXES) or ARCH_RE.match(f):
                continue
            if f.endswith((".c", ".S")):
                cfiles.add(f)
            elif f.endswith(".h") and f not in seen:
                seen.add(f)
                frontier.append(f)
    return sorted(cfiles)


def _grep(tree: Tree, names: list[str], where: str, quoted: bool = False) -> list[str]:
    """Files under ``where`` with an ``#include`` of one of ``names``.

    git grep -F finds the candidates (seconds); the include pattern is
    checked here, because git's own regex engine takes minutes on it.
    """
    args = [a for n in names for a in ("-e", n)]
    r = tree.git("grep", "-l", "-F", *args, "--", where, check=False, timeout=300)
    alt = "|".join(re.escape(n) for n in names)
    pat = re.compile(rf'^\s*#\s*include\s*(?:"(?:{alt})"' + ("" if quoted else rf'|<(?:{alt})>') + ")", re.M)
    out = []
    for f in r.stdout.splitlines():
        try:
            if pat.search((tree.path / f).read_text(errors="replace")):
                out.append(f)
        except OSError:
            continue
    return out


def _assignments(text: str) -> list[tuple[str, list[str]]]:
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        m = _ASSIGN_RE.match(line.split("#", 1)[0].strip())
        if m:
            out.append((m.group(1), m.group(2).split()))
    return out


def built(tree: Tree, commit: str, config: dict[str, str], source: str) -> bool:
    """Whether the Kbuild Makefile of ``source``'s directory builds it with ``config``."""
    d, _, fname = source.rpartition("/")
    text = ""
    for mk in ("Kbuild", "Makefile"):
        r = tree.git("show", f"{commit}:{d}/{mk}", check=False)
        if r.returncode == 0:
            text = r.stdout
            break
    rules = _assignments(text)

    def on(sym: str) -> bool:
        return config.get(f"CONFIG_{sym}") in ("y", "m")

    def enabled(obj: str, depth: int = 0) -> bool:
        if depth > 4:
            return False
        for lhs, rhs in rules:
            if obj not in rhs:
                continue
            if lhs in ("obj-y", "obj-m", "lib-y"):
                return True
            m = re.fullmatch(r"(?:obj|lib)-\$\(CONFIG_(\w+)\)", lhs)
            if m and on(m.group(1)):
                return True
            m = re.fullmatch(r"([\w-]+?)-(?:y|m|objs)", lhs)
            if m and m.group(1) not in ("obj", "lib") and enabled(f"{m.group(1)}.o", depth + 1):
                return True
            m = re.fullmatch(r"([\w-]+?)-\$\(CONFIG_(\w+)\)", lhs)
            if m and m.group(1) not in ("obj", "lib") and on(m.group(2)) and enabled(f"{m.group(1)}.o", depth + 1):
                return True
        return False

    return enabled(Path(fname).stem + ".o")


def objects(tree: Tree, commit: str, files: list[str], config: dict[str, str]) -> tuple[list[str], list[str]]:
    """(objects to build, notes) for the files a patch changes at ``commit``."""
    objs, notes = [], []
    for f in files:
        if f.startswith(SKIP_PREFIXES) or ARCH_RE.match(f):
            continue
        if f.endswith((".c", ".S")):
            # A changed source is built even where the config leaves it out
            # (Kbuild compiles any single target): its warnings are the patch's.
            objs.append(f[:-2] + ".o")
            if not built(tree, commit, config, f):
                notes.append(f"{f}: not built by the check config's Makefiles; compiled on its own")
        elif f.endswith(".h"):
            users = [c for c in header_users(tree, f) if built(tree, commit, config, c)]
            objs += [c[:-2] + ".o" for c in users]
            if not users:
                notes.append(f"{f}: no object of the check config includes it")
    return sorted(dict.fromkeys(objs)), notes
