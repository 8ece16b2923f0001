"""``series status``: where the series branch and patches/ agree and differ."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .export import _subject, format_patches
from .series import parse_series_file
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
    commits = {}
    if tip:
        for text in format_patches(tree, f"{tree.base}..{tip}"):
            commits[_subject(text)] = text
    for _, name, _ in parse_series_file(directory):
        text = (directory / name).read_text(errors="replace")
        subj = _subject(text)
        mine = commits.pop(subj, None)
        st.patches.append(PatchState(name, subj, mine is not None, mine == text))
    for subj in commits:
        st.patches.append(PatchState(None, subj, True, False))
    return st
