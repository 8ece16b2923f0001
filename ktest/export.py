"""Turn the series branch back into patches/: the other half of ``series apply``.

The round trip is byte-stable: applying and exporting an unchanged series
rewrites no file, whatever its patches look like (hand-written quilt
patches, -p0, -R, compressed): a commit that ``series apply`` made from a
file that has not changed since keeps that file, and its series line.
Other commits are written by ``git format-patch`` with fixed flags (zero
commit ids, no version signature, full index lines, no "n/m" numbering)
under the file name of the patch they came from (the same commit, or the
same subject); only a new commit gets a new number.

The series file is the user's: comments, blank lines, disabled entries,
options and trailing comments stay (see :func:`ktest.seriesfile.render`).
A commit that cannot be a patch (a merge, or one that changes nothing,
which format-patch would write as an empty file) is refused, by commit
and subject, before anything is written.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import seriesfile, ui
from .errors import SeriesError
from .series import applied_files
from .tree import Tree

FORMAT_PATCH = ["format-patch", "--zero-commit", "--no-signature", "--full-index", "--no-numbered"]
SUBJECT_RE = re.compile(rb"^Subject: (.*(?:\r?\n[ \t].*)*)", re.M)


@dataclass
class ExportResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    series_changed: bool = False


def _subject(text: bytes | str) -> str:
    """A patch mail's subject without its [PATCH ...] tag ("" for a plain quilt patch)."""
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    head = text.split(b"\n\n", 1)[0]
    m = SUBJECT_RE.search(head)
    if not m:
        return ""
    subj = re.sub(rb"\r?\n[ \t]", b" ", m.group(1)).decode("utf-8", "replace")
    return re.sub(r"^\[[^]]*\]\s*", "", subj).strip()


def format_patches(tree: Tree, rev_range: str) -> list[bytes]:
    """One text per commit, exactly as git format-patch writes its files."""
    return [text for _, text in _format(tree, rev_range)]


def _format(tree: Tree, rev_range: str) -> list[tuple[str, bytes]]:
    with tempfile.TemporaryDirectory(prefix="ktest-export-") as tmp:
        tree.git(*FORMAT_PATCH, "-o", tmp, rev_range, timeout=600)
        return [(p.name, p.read_bytes()) for p in sorted(Path(tmp).glob("*.patch"))]


def _commits(tree: Tree, branch: str) -> tuple[str, list[str], list[tuple[str, bytes]]]:
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    if r.returncode != 0:
        raise SeriesError(f"no branch {branch} in {tree.path}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    rows = tree.git("rev-list", "--reverse", "--parents", f"{tree.base}..{tip}").stdout.splitlines()
    commits = [row.split()[0] for row in rows]

    def subject(c: str) -> str:
        return tree.git("log", "-1", "--format=%s", c).stdout.strip()

    for row in rows:
        if len(row.split()) > 2:
            c = row.split()[0]
            raise SeriesError(f"commit {c[:12]} ('{subject(c)}') on {branch} is a merge; "
                              "a series is a line of patches, and git format-patch skips merges",
                              hint="Linearise the branch (git rebase) and export again; nothing was written.")
    texts = _format(tree, f"{tree.base}..{tip}")
    if len(texts) != len(commits):
        raise SeriesError(f"git format-patch wrote {len(texts)} patches for the {len(commits)} commits "
                          f"on {branch}; nothing was written")
    for c, (_, text) in zip(commits, texts):
        if not text.strip():
            raise SeriesError(f"commit {c[:12]} ('{subject(c)}') on {branch} changes nothing, so it "
                              "cannot be written as a patch (git am would refuse it too)",
                              hint="Drop it or give it a change, then export again; nothing was written.")
    return tip, commits, texts


def _old_file(directory: Path, name: str) -> bytes | None:
    try:
        return seriesfile.read_patch(directory / name)
    except SeriesError:
        return None


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a full disk or a signal never leaves it cut."""
    tmp = path.with_name(f".{path.name}.ktest-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _same_series(tree: Tree, directory: Path) -> bool:
    """Whether ``directory`` holds the very patches the last apply read (a copy of them)."""
    if not (directory / "series").exists():
        return False
    names = [e.name for e in seriesfile.read(directory, check_files=False).entries]
    have = {(n, hashlib.sha256((directory / n).read_bytes()).hexdigest()) for n in names if (directory / n).is_file()}
    return len(have) == len(names) and have == {(v["name"], v["sha256"]) for v in applied_files(tree).values()}


def refuse_unsafe(tree: Tree, directory: Path) -> None:
    """Refuse an export that would lose patches: the last apply stopped half way (the
    patches after it would count as dropped), a rebase is in progress, or the branch
    was applied from another series directory (another project's patches would be
    written over this one's)."""
    st = dict(ln.split(" ", 1) for ln in tree.state("--get-regexp", r"^ktest\.", check=False).stdout.splitlines()
              if " " in ln)
    force = "Pass --force to export the branch as it is anyway."
    if any(k.startswith("ktest.rebase.") for k in st):
        raise SeriesError(f"a series rebase is in progress in {tree.path}: exporting now would write a series "
                          "cut at the stopped patch", hint="Finish it (ktest series rebase --continue) or "
                                                            "--abort it first. " + force)
    if st.get("ktest.seriestip") and "ktest.seriesfingerprint" not in st:
        raise SeriesError(f"the last series apply in {tree.path} stopped before the end: exporting "
                          f"{tree.branch} would drop the patches it did not apply from {directory}",
                          hint="Fix the patch it stopped at and apply again. " + force)
    came_from = st.get("ktest.seriesdir")
    if came_from and Path(came_from) != directory.resolve() and not _same_series(tree, directory):
        raise SeriesError(f"{tree.branch} was applied from {came_from}, not {directory}: exporting it would "
                          "write that series over this one",
                          hint=f"Apply this series first (ktest series apply), or export with --patches "
                               f"{came_from}. " + force)


def export(tree: Tree, directory: Path, *, branch: str | None = None, force: bool = False) -> ExportResult:
    """Write ``branch`` (default the series branch) into ``directory``.

    Raises SeriesError naming the directory, commit or series line when
    nothing can be written, or (without ``force``) when writing would lose
    patches (``refuse_unsafe``); in that case nothing is.
    """
    branch = branch or tree.branch
    directory = Path(directory)
    if not directory.is_dir():
        raise SeriesError(f"{directory}: no such directory to export the series into",
                          hint="Create it, or pass the series directory with --patches.")
    if not force and branch == tree.branch:
        refuse_unsafe(tree, directory)
    _, commits, texts = _commits(tree, branch)
    has_series = (directory / "series").exists()
    sf = seriesfile.read(directory, check_files=False) if has_series else \
        seriesfile.SeriesFile(directory / "series", [])
    old = {e.name: e for e in sf.entries}
    applied = applied_files(tree)
    old_text = {n: _old_file(directory, n) for n in old}
    by_subject: dict[str, str] = {}
    for n, text in old_text.items():
        if text is not None and (s := _subject(text)):
            by_subject.setdefault(s, n)
    taken = {p.name for p in directory.iterdir()}
    numbers = [int(m.group(1)) for n in (*old, *taken) if (m := re.match(r"(\d{4})-", n))]
    next_no = max(numbers, default=0) + 1
    result = ExportResult()
    outs: list[seriesfile.Out] = []
    for c, (git_name, text) in zip(commits, texts):
        made = applied.get(c, {}).get("name")
        name = made if made in old and made not in {o.name for o in outs} else by_subject.get(_subject(text))
        if name is not None and name in {o.name for o in outs}:
            name = None
        if name is not None:
            by_subject.pop(_subject(text), None)
        if name is None:
            while True:
                name = f"{next_no:04d}-{git_name[5:]}"
                next_no += 1
                if name not in taken:
                    break
        path = directory / name
        entry = old.get(name)
        stored = path.read_bytes() if path.exists() else None
        same_commit = stored is not None and applied.get(c) == {
            "name": name, "sha256": hashlib.sha256(stored).hexdigest()}
        if same_commit or (stored is not None and old_text.get(name) == text):
            result.unchanged.append(name)
            outs.append(seriesfile.Out(name, entry))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, seriesfile.encode_patch(path, text))
        result.written.append(name)
        outs.append(seriesfile.Out(name, entry, plain=True))
    new_series = seriesfile.render(sf, outs)
    series = directory / "series"
    if not has_series or series.read_bytes() != new_series:
        _replace(series, new_series)
        result.series_changed = True
    names = {o.name for o in outs}
    for name in old:
        if name not in names and (directory / name).exists():
            (directory / name).unlink()
            result.removed.append(name)
    ui.note(f"exported {len(outs)} patches to {directory}: {len(result.written)} written, "
            f"{len(result.unchanged)} unchanged, {len(result.removed)} removed")
    return result
