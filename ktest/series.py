"""The patch series: parse ``patches/series`` (quilt syntax) and apply it as git commits.

Each patch becomes one commit on the tree's series branch, keeping the
patch's author, date and message the way ``git am`` does.  Commits carry a
fixed committer (ktest, at the author date), so applying the same series
to the same base gives the same commit ids every time.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import ui
from .errors import SeriesError
from .run import run
from .tree import KTEST_IDENT, Tree, is_clean

HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    file: str
    index: int          # 1-based within its file
    old_start: int
    header: str


@dataclass
class Patch:
    name: str
    path: Path
    strip: int = 1
    line: int = 0       # line in patches/series
    subject: str = ""
    author_name: str = ""
    author_email: str = ""
    date: str = ""
    body: str = ""
    files: list[str] = field(default_factory=list)
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def message(self) -> str:
        return f"{self.subject}\n\n{self.body}".rstrip() + "\n" if self.body else self.subject + "\n"


@dataclass
class Series:
    directory: Path
    patches: list[Patch]

    def fingerprint(self, base: str) -> str:
        h = hashlib.sha256(base.encode())
        for p in self.patches:
            h.update(f"\0{p.name}\0{p.strip}\0".encode())
            h.update(p.path.read_bytes())
        return h.hexdigest()


def parse_series_file(directory: Path) -> list[tuple[int, str, int]]:
    """Return (line number, patch name, strip level) for each entry.

    Quilt syntax: one patch per line, optional ``-pN``, ``#`` comments and
    blank lines.  Anything else is an error naming the line.
    """
    series = directory / "series"
    if not series.exists():
        raise SeriesError(f"{series}: no series file")
    entries: list[tuple[int, str, int]] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(series.read_text().splitlines(), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        words = text.split()
        name, opts = words[0], words[1:]
        strip = 1
        for opt in opts:
            m = re.fullmatch(r"-p(\d+)", opt)
            if m is None:
                raise SeriesError(f"{series}:{lineno}: unsupported option '{opt}' for {name} "
                                  "(only -pN is understood)")
            strip = int(m.group(1))
        where = f"{series}:{lineno}"
        if os.path.isabs(name) or ".." in Path(name).parts:
            raise SeriesError(f"{where}: '{name}' leaves the patches directory")
        if name in seen:
            raise SeriesError(f"{where}: '{name}' is listed twice (first on line {seen[name]})")
        seen[name] = lineno
        if not (directory / name).is_file():
            raise SeriesError(f"{where}: patch file '{name}' does not exist in {directory}")
        entries.append((lineno, name, strip))
    return entries


def _diff_start(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if line.startswith(("diff --git ", "--- ", "Index: ")):
            if line.startswith("--- ") and not (i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
                continue
            return i
    return -1


def scan_diff(text: str, strip: int, name: str) -> tuple[list[str], list[Hunk]]:
    """Files and hunks of a unified diff, with paths stripped like ``patch -pN``."""
    files: list[str] = []
    hunks: list[Hunk] = []
    current = None
    count = 0
    for line in text.splitlines():
        if line.startswith("+++ "):
            path = line[4:].split("\t", 1)[0].strip()
            if path == "/dev/null":
                continue
            parts = path.split("/")
            if strip > len(parts) - 1:
                raise SeriesError(f"patch {name}: -p{strip} strips all of '{path}'")
            current = "/".join(parts[strip:])
            files.append(current)
            count = 0
        elif line.startswith("--- ") and current is None:
            # A deletion: the path is only on the --- line.
            path = line[4:].split("\t", 1)[0].strip()
            if path != "/dev/null":
                parts = path.split("/")
                current = "/".join(parts[strip:]) if strip < len(parts) else path
        elif line.startswith("diff --git "):
            current = None
        else:
            m = HUNK_RE.match(line)
            if m and current is not None:
                count += 1
                hunks.append(Hunk(current, count, int(m.group(1)), line.split(" @@")[0] + " @@"))
    return files, hunks


def load_patch(directory: Path, name: str, strip: int = 1, line: int = 0) -> Patch:
    path = directory / name
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if _diff_start(lines) < 0:
        raise SeriesError(f"patch {name}: contains no diff")
    files, hunks = scan_diff(text, strip, name)
    if not files:
        raise SeriesError(f"patch {name}: contains no diff")
    patch = Patch(name=name, path=path, strip=strip, line=line, files=files, hunks=hunks)
    with tempfile.TemporaryDirectory(prefix="ktest-mailinfo-") as tmp:
        msg, diff = Path(tmp, "msg"), Path(tmp, "patch")
        r = run(["git", "mailinfo", str(msg), str(diff)], input=text, timeout=60,
                check=False, what=f"git mailinfo {name}")
        if r.returncode != 0:
            raise SeriesError(f"patch {name}: cannot read its header: {r.stderr.strip()}")
        info = {}
        for row in r.stdout.splitlines():
            if ": " in row:
                k, v = row.split(": ", 1)
                info[k] = v
        patch.author_name = info.get("Author", "")
        patch.author_email = info.get("Email", "")
        patch.date = info.get("Date", "")
        patch.subject = info.get("Subject", "")
        patch.body = msg.read_text().strip("\n")
    if not patch.subject:
        # A plain quilt patch: its description is the text before the diff.
        desc = [ln for ln in lines[: _diff_start(lines)] if ln.strip()]
        patch.subject = desc[0].strip() if desc else name
        patch.body = "\n".join(desc[1:])
    return patch


def load(directory: Path) -> Series:
    directory = Path(directory)
    return Series(directory, [load_patch(directory, n, s, ln) for ln, n, s in parse_series_file(directory)])


def explain_apply_failure(patch: Patch, stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    m = re.search(r"patch failed: (.+):(\d+)", stderr)
    if m:
        file, start = m.group(1), int(m.group(2))
        for h in patch.hunks:
            if h.file == file and h.old_start == start:
                return f"{file}: hunk #{h.index} ({h.header}) does not apply"
        return f"{file}: hunk at line {start} does not apply"
    m = re.search(r"error: (.+?): (does not exist in index|No such file or directory|already exists in index)", stderr)
    if m:
        return f"{m.group(1)}: {m.group(2)}"
    return lines[-1] if lines else "git apply failed"


OFFSET_RE = re.compile(r"Hunk #(\d+) succeeded at (\d+) \((?:offset (-?\d+) lines?)?(?:, )?(?:fuzz (\d+))?")


def offsets(patch: Patch, verbose_stderr: str) -> list[str]:
    """Hunks that git apply placed away from their stated line, named."""
    out, current = [], None
    for line in verbose_stderr.splitlines():
        if line.startswith("Checking patch "):
            current = line[len("Checking patch "):].rstrip(".").split(" => ")[-1]
            continue
        m = OFFSET_RE.search(line)
        if m:
            out.append(f"{current}: hunk #{m.group(1)} {line.split('(', 1)[1].rstrip(').')}")
    return out


def apply(tree: Tree, series: Series, *, force: bool = False, fuzz: bool = False) -> str:
    """Make the tree's series branch the base plus one commit per patch.

    Returns the tip commit.  Refuses a dirty work tree.  The previous
    branch tip, if ktest did not make it, is kept under refs/ktest/backup/.
    On a patch that does not apply, the branch stays at the last good commit
    with a clean work tree, and the error names the patch, file and hunk.
    """
    from .lock import held

    with held(tree, "series apply"):
        return _apply(tree, series, force=force, fuzz=fuzz)


def require_clean(tree: Tree) -> None:
    if not is_clean(tree):
        dirty = tree.git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        raise SeriesError(f"{tree.path} has uncommitted changes; commit or stash them first:\n{dirty}")


def _apply(tree: Tree, series: Series, *, force: bool, fuzz: bool) -> str:
    require_clean(tree)
    fp = series.fingerprint(tree.base)
    r = tree.state("--get-regexp", r"^ktest\.series", check=False)
    state = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
    tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
    head = tree.git("symbolic-ref", "--quiet", "HEAD", check=False).stdout.strip()
    if (not force and tip and state.get("ktest.seriesfingerprint") == fp
            and state.get("ktest.seriestip") == tip and head == f"refs/heads/{tree.branch}"):
        ui.note(f"series already applied: {tree.branch} at {tip[:12]} ({len(series.patches)} patches)")
        return tip
    if tip and tip != state.get("ktest.seriestip") and tip != tree.base:
        backup = f"{tree.refs}/backup/{time.strftime('%Y%m%d-%H%M%S')}"
        tree.git("update-ref", backup, tip)
        ui.note(f"kept the previous {tree.branch} ({tip[:12]}) as {backup}")
    tree.state("--unset", "ktest.seriestip", check=False)
    tree.git("checkout", "-q", "-B", tree.branch, tree.base, timeout=600)
    with ui.step(f"applying {len(series.patches)} patches from {series.directory}"):
        for patch in series.patches:
            apply_one(tree, patch, fuzz=fuzz)
    tip = tree.git("rev-parse", "HEAD").stdout.strip()
    tree.state("ktest.seriesfingerprint", fp)
    tree.state("ktest.seriestip", tip)
    return tip


def apply_one(tree: Tree, patch: Patch, *, fuzz: bool = False) -> str:
    """Apply one patch to the index and work tree and commit it as its author.

    git apply never fuzzes; an offset hunk is refused too unless ``fuzz``
    (which also lets hunks apply with one line of context, like patch's
    fuzz 2), because a hunk that moved may have landed in the wrong place.
    """
    opts = [f"-p{patch.strip}"] + (["-C1"] if fuzz else [])
    r = tree.git("apply", "--check", "-v", *opts, str(patch.path), check=False)
    if r.returncode != 0:
        raise SeriesError(f"patch {patch.name} does not apply: {explain_apply_failure(patch, r.stderr)}",
                          hint=f"{tree.branch} is left at the last patch that applied, work tree clean.")
    moved = offsets(patch, r.stderr)
    if moved and not fuzz:
        raise SeriesError(f"patch {patch.name} applies only with offsets: {'; '.join(moved)}",
                          hint="Refresh the patch, or pass --fuzz to accept it. "
                               f"{tree.branch} is left at the last patch that applied.")
    for m in moved:
        ui.note(f"[yellow]{patch.name}[/]: {m}")
    tree.git("apply", "--index", *opts, str(patch.path))
    return commit_as_author(tree, patch)


def commit_as_author(tree: Tree, patch: Patch) -> str:
    env = dict(KTEST_IDENT)
    if patch.author_name:
        env["GIT_AUTHOR_NAME"] = patch.author_name
        env["GIT_AUTHOR_EMAIL"] = patch.author_email
    if patch.date:
        env["GIT_AUTHOR_DATE"] = patch.date
        env["GIT_COMMITTER_DATE"] = patch.date
    with tempfile.NamedTemporaryFile("w", prefix="ktest-msg-", delete=False) as f:
        f.write(patch.message)
    try:
        tree.git("commit", "-q", "--no-verify", "--allow-empty-message", "-F", f.name, env=env)
    finally:
        os.unlink(f.name)
    return tree.git("rev-parse", "HEAD").stdout.strip()
