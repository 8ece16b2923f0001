"""b4 interop: have b4 make the same series and compare it with ktest's.

A maintainer or a reviewer may use b4 on the series; ``--via b4`` shows
that b4 prep + b4 send -o give the same patches and subjects as ktest's
messages, in a scratch clone so b4's branches and config never touch the
tree.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import addresses
from ..check import mailinfo
from ..run import run
from ..tree import Tree
from .common import MailError, MailSet, read_message


def b4_version() -> str:
    if shutil.which("b4") is None:
        raise MailError("--via b4 needs the b4 command, from the PyPI package 'b4', and it is not installed",
                        hint="pip install b4")
    return run(["b4", "--version"], timeout=60, what="b4 --version").stdout.strip()



@dataclass
class B4Comparison:
    directory: Path
    files: list[Path]
    differences: list[str]
    version: str

    def report(self) -> str:
        head = f"b4 {self.version} wrote {len(self.files)} messages to {self.directory}: "
        if not self.differences:
            return head + "same patches and subjects as ktest's"
        return head + f"{len(self.differences)} difference(s):\n" + "\n".join(f"  {d}" for d in self.differences)


def _subject_key(subject: str) -> tuple[frozenset, str]:
    """The bracket tags as a set (b4 writes "PATCH RFC", git "RFC PATCH") and the summary."""
    m = re.match(r"^\[([^\]]*)\]\s*(.*)$", subject)
    return (frozenset(m.group(1).split()), m.group(2)) if m else (frozenset(), subject)


def _content(path: Path) -> tuple[str, str]:
    """Commit message and patch-id: what a maintainer's git am would apply."""
    _info, body, diff = mailinfo(path.read_text(errors="replace"), path.name)
    pid = run(["git", "patch-id", "--stable"], input=diff, timeout=60).stdout.split(" ")[0] if diff else ""
    return body.strip(), pid


def compare(ours: list[Path], theirs: list[Path]) -> list[str]:
    diffs = []
    if len(ours) != len(theirs):
        diffs.append(f"ktest wrote {len(ours)} messages, b4 {len(theirs)}")
    for a, b in zip(ours, theirs):
        sa, sb = read_message(a).subject, read_message(b).subject
        if _subject_key(sa) != _subject_key(sb):
            diffs.append(f"{a.name}: subject '{sa}', b4 {b.name}: '{sb}'")
    for a, b in list(zip(ours, theirs))[1:]:
        (ma, pa), (mb, pb) = _content(a), _content(b)
        if pa != pb:
            diffs.append(f"{a.name}: the diff differs from b4's {b.name}")
        if ma != mb:
            diffs.append(f"{a.name}: the commit message differs from b4's {b.name}")
    return diffs


def via_b4(tree: Tree, ms: MailSet) -> B4Comparison:
    """Have b4 make the same series (``b4 prep`` + ``b4 send -o``) and compare.

    b4 works in a scratch clone, so its prep branch, cover letter and
    tracking config never touch ktest's tree.  The clone is sparse with
    nothing checked out: b4 needs a clean status, and a kernel tree's
    Kconfig at the top would make it choose its web endpoint.
    """
    version = b4_version()
    out = ms.directory / "b4"
    shutil.rmtree(out, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix="ktest-b4-"))
    try:
        clone = scratch / "repo"
        run(["git", "clone", "-q", "--shared", "--no-checkout", "--single-branch", "--branch", tree.branch,
             str(tree.path), str(clone)], timeout=600, what="git clone for b4")

        def git(*args: str) -> None:
            run(["git", "-C", str(clone), *args], timeout=600)

        name, addr = addresses.split(ms.sender)
        git("branch", "ktest-base", ms.base)
        for k, v in (("user.name", name), ("user.email", addr), ("b4.prep-cover-strategy", "branch-description")):
            git("config", k, v)
        git("sparse-checkout", "set", "--no-cone", "/.ktest-b4-nothing")
        git("checkout", "-q", tree.branch)
        # b4 asks with input() when it wants something; with stdin closed and
        # an editor that changes nothing it can only fail, never hang.
        env = {"GIT_EDITOR": "true", "EDITOR": "true", "VISUAL": "true",
               "XDG_CACHE_HOME": str(scratch / "cache"), "XDG_DATA_HOME": str(scratch / "data")}

        def b4(*args: str) -> None:
            run(["b4", *args], cwd=clone, env=env, timeout=600, what=f"b4 {args[0]}")

        b4("prep", "-e", "ktest-base")
        if ms.version > 1:
            b4("prep", "--force-revision", str(ms.version))
        if ms.rfc:
            b4("prep", "--set-prefixes", "RFC")
        git("config", f"branch.{tree.branch}.description", f"{ms.title}\n\n{ms.blurb}\n")
        args = ["send", "-o", str(out), "--no-sign", "--no-trailer-to-cc", "--to", *ms.to]
        if ms.cc:
            args += ["--cc", *ms.cc]
        b4(*args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    files = sorted(out.glob("*.eml"))
    return B4Comparison(out, files, compare([m.path for m in ms.messages], files), version)
