"""Turn the series branch back into patches/: the other half of ``series apply``.

The round trip is byte-stable: applying and exporting an unchanged series
rewrites no file.  That needs fixed ``git format-patch`` flags (zero
commit ids, no version signature, full index lines, no "n/m" numbering
in subjects) and file names that stay with their patch: a commit keeps the
file name of the patch with the same subject, and only a new commit gets a
new number.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import ui
from .errors import SeriesError
from .series import parse_series_file
from .tree import Tree

FORMAT_PATCH = ["format-patch", "--zero-commit", "--no-signature", "--full-index", "--no-numbered"]


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    series_changed: bool = False


def _subject(text: str) -> str:
    m = re.search(r"^Subject: (.*(?:\n .*)*)", text, re.M)
    if not m:
        return ""
    subj = re.sub(r"\n ", " ", m.group(1))
    return re.sub(r"^\[[^]]*\]\s*", "", subj).strip()


def slug(subject: str) -> str:
    """The file-name part git format-patch derives from a subject."""
    s = re.sub(r"[^A-Za-z0-9._]+", "-", subject).strip("-.")
    s = re.sub(r"\.+", ".", s)
    return s[:52].rstrip("-.")


def format_patches(tree: Tree, rev_range: str) -> list[str]:
    """One text per commit, exactly as git format-patch writes its files."""
    with tempfile.TemporaryDirectory(prefix="ktest-export-") as tmp:
        tree.git(*FORMAT_PATCH, "-o", tmp, rev_range, timeout=600)
        return [p.read_text(errors="replace") for p in sorted(Path(tmp).glob("*.patch"))]


def export(tree: Tree, directory: Path, *, branch: str | None = None) -> ExportResult:
    branch = branch or tree.branch
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    if r.returncode != 0:
        raise SeriesError(f"no branch {branch} in {tree.path}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    texts = format_patches(tree, f"{tree.base}..{tip}")
    old_entries = parse_series_file(directory) if (directory / "series").exists() else []
    by_subject: dict[str, str] = {}
    for _, name, _ in old_entries:
        by_subject.setdefault(_subject((directory / name).read_text(errors="replace")), name)
    numbers = [int(m.group(1)) for _, n, _ in old_entries if (m := re.match(r"(\d{4})-", n))]
    next_no = max(numbers, default=0) + 1
    result = ExportResult()
    names: list[str] = []
    for text in texts:
        subj = _subject(text)
        name = by_subject.pop(subj, None)
        if name is None:
            name = f"{next_no:04d}-{slug(subj) or 'patch'}.patch"
            next_no += 1
        if name in names:
            raise SeriesError(f"two commits on {branch} have the subject '{subj}'")
        names.append(name)
        path = directory / name
        if path.exists() and path.read_text(errors="replace") == text:
            result.unchanged.append(name)
        else:
            path.write_text(text)
            result.written.append(name)
    series = directory / "series"
    header = []
    if series.exists():
        for line in series.read_text().splitlines():
            if line.startswith("#") or not line.strip():
                header.append(line)
            else:
                break
    new_series = "\n".join(header + names) + "\n"
    if not series.exists() or series.read_text() != new_series:
        series.write_text(new_series)
        result.series_changed = True
    for _, name, _ in old_entries:
        if name not in names and (directory / name).exists():
            (directory / name).unlink()
            result.removed.append(name)
    ui.note(f"exported {len(names)} patches to {directory}: {len(result.written)} written, "
            f"{len(result.unchanged)} unchanged, {len(result.removed)} removed")
    return result
