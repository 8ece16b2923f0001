"""``series status``: where the series branch and patches/ agree and differ."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import hashlib

from . import seriesfile
from .errors import SeriesError
from .export import _subject, format_patches
from .series import applied_files, parse_series_file
from .tree import Tree


@dataclass
class PatchState:
    name: str | None         # file in patches/, or None for a commit not exported yet
    subject: str
    in_branch: bool
    same: bool               # the branch's commit exports to exactly this file


@dataclass
class Status:
    base: str
    base_ref: str
    branch: str
    tip: str | None
    checked_out: bool
    patches: list[PatchState] = field(default_factory=list)

    @property
    def differs(self) -> list[PatchState]:
        return [p for p in self.patches if not p.same]


def status(tree: Tree, directory: Path) -> Status:
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False)
    tip = r.stdout.strip() or None
    head = tree.git("symbolic-ref", "--quiet", "HEAD", check=False).stdout.strip()
    st = Status(tree.base, tree.base_ref, tree.branch, tip, head == f"refs/heads/{tree.branch}")
    remaining: dict[str, bytes] = {}
    applied = applied_files(tree)
    if tip:
        ids = tree.git("rev-list", "--reverse", f"{tree.base}..{tip}").stdout.split()
        remaining = dict(zip(ids, format_patches(tree, f"{tree.base}..{tip}")))
    # A file ktest applied and nobody changed since is the same as its
    # commit, whatever it looks like (a hand-written quilt patch).
    commit_of = {v["name"]: c for c, v in applied.items() if c in remaining}
    for _, name, _ in parse_series_file(directory):
        stored = (directory / name).read_bytes()
        try:
            text = seriesfile.read_patch(directory / name)
        except SeriesError:
            text = stored
        subj = _subject(text)
        c = commit_of.get(name) or next((c for c, t in remaining.items() if subj and _subject(t) == subj), None)
        mine = remaining.pop(c, None) if c else None
        same = mine is not None and (mine == text or applied.get(c) == {
            "name": name, "sha256": hashlib.sha256(stored).hexdigest()})
        st.patches.append(PatchState(name, _subject(mine) if mine else (subj or name), mine is not None, same))
    for text in remaining.values():
        st.patches.append(PatchState(None, _subject(text), True, False))
    return st
