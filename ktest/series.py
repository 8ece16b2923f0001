"""The patch series: ``patches/series`` applied as git commits, atomically.

Each patch becomes one commit on the tree's series branch with the
patch's author, date and message, as ``git am`` makes it (patches are read
by :mod:`ktest.patchfile`, the series file by :mod:`ktest.seriesfile`).
Commits carry a fixed committer (ktest, at the author date), so applying
the same series to the same base gives the same commit ids every time.

The work tree is written once.  The commits are made in a scratch index
(``git apply --cached``, ``write-tree``, ``commit-tree``); only then does
one ``git checkout -B`` move the branch and the work tree.  That last step
is journalled (``<git-dir>/ktest-apply.json``) and runs with SIGINT,
SIGTERM and SIGHUP held until it is done, so an interrupt lets git finish;
if ktest is killed outright, the next ktest run that takes the tree finds
the journal, finishes the step and says so.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import seriesfile, ui
from .errors import CommandError, SeriesError
from .patchfile import Patch, load_patch
from .tree import KTEST_IDENT, Tree, git_dir, is_clean, state_file

# Part of the fingerprint: bump when the way a patch becomes a commit changes.
APPLY_VERSION = "2"
JOURNAL = "ktest-apply.json"
APPLIED = "ktest-applied.json"      # commit -> the patch file it was made from (for export)
SCRATCH = "ktest-apply-"
LOCK_GRACE = 10.0                   # seconds a git left running by a killed ktest gets to finish


@dataclass
class Series:
    directory: Path
    patches: list[Patch]

    def fingerprint(self, base: str, *, fuzz: bool = False) -> str:
        """Every input that changes what apply makes: base, names, options, bytes, --fuzz."""
        h = hashlib.sha256(f"ktest-apply {APPLY_VERSION}\0{base}\0fuzz={int(fuzz)}".encode())
        for p in self.patches:
            h.update(f"\0{p.name}\0-p{p.strip}\0-R={int(p.reverse)}\0{p.sha256}".encode())
        return h.hexdigest()


def parse_series_file(directory: Path) -> list[tuple[int, str, int]]:
    """(line number, patch name, strip level) for each entry of ``directory/series``."""
    return [(e.line, e.name, e.strip) for e in seriesfile.read(Path(directory)).entries]


def load(directory: Path) -> Series:
    directory = Path(directory)
    sf = seriesfile.read(directory)
    return Series(directory, [load_patch(directory, e.name, e.strip, e.line, e.reverse) for e in sf.entries])


def explain_apply_failure(patch: Patch, stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("Checking patch", "Hunk #"))]
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
    m = re.search(r"(corrupt patch|unrecognized input|patch fragment without header|recount: unexpected line)"
                  r" at line (\d+)", stderr)
    if m:
        return f"error: {m.group(1)} at line {m.group(2)} ({patch.file_line(int(m.group(2)))} of {patch.name})"
    if "No valid patches in input" in stderr:
        return "git apply finds no valid patch in it"
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


def apply_options(patch: Patch, fuzz: bool) -> list[str]:
    """git apply never fuzzes; ``fuzz`` lets hunks apply with one line of
    context, like patch's fuzz 2."""
    return [f"-p{patch.strip}"] + (["-R"] if patch.reverse else []) + (["-C1"] if fuzz else [])


def try_apply(tree: Tree, patch: Patch, mode: str, *, fuzz: bool = False, env: dict | None = None):
    """``git apply <mode> -v`` of the patch's diff: (result, offsets named)."""
    r = tree.git("apply", mode, "-v", *apply_options(patch, fuzz), "-", input=patch.diff, env=env, check=False)
    return r, (offsets(patch, r.stderr) if r.returncode == 0 else [])


def _refuse(tree: Tree, patch: Patch, r, moved: list[str], fuzz: bool, where: str) -> None:
    if r.returncode != 0:
        raise SeriesError(f"patch {patch.name} does not apply: {explain_apply_failure(patch, r.stderr)}",
                          hint=where)
    if moved and not fuzz:
        raise SeriesError(f"patch {patch.name} applies only with offsets: {'; '.join(moved)}",
                          hint=f"Refresh the patch, or pass --fuzz to accept it. {where}")
    for m in moved:
        ui.note(f"[yellow]{patch.name}[/]: {m}")


def commit_env(patch: Patch) -> dict[str, str]:
    env = dict(KTEST_IDENT)
    if patch.author_name or patch.author_email:
        env["GIT_AUTHOR_NAME"] = patch.author_name
        env["GIT_AUTHOR_EMAIL"] = patch.author_email
    if patch.date:
        env["GIT_AUTHOR_DATE"] = patch.date
        env["GIT_COMMITTER_DATE"] = patch.date
    return env


def commit_index(tree: Tree, patch: Patch, parent: str, env: dict | None = None) -> str:
    """Commit the index (``env``'s GIT_INDEX_FILE, or the tree's) on ``parent`` as the patch's author."""
    tree_id = tree.git("write-tree", env=env).stdout.strip()
    r = tree.git("commit-tree", tree_id, "-p", parent, "-F", "-", input=patch.message,
                 env={**(env or {}), **commit_env(patch)}, check=False)
    if r.returncode != 0:
        raise SeriesError(f"patch {patch.name}: git commit-tree refuses its header: {r.stderr.strip()}")
    return r.stdout.strip()


def apply_one(tree: Tree, patch: Patch, *, fuzz: bool = False) -> str:
    """Apply one patch to the index and work tree on HEAD and commit it (series rebase)."""
    r, moved = try_apply(tree, patch, "--check", fuzz=fuzz)
    _refuse(tree, patch, r, moved, fuzz, "The work tree is left at the last patch that applied.")
    tree.git("apply", "--index", *apply_options(patch, fuzz), "-", input=patch.diff)
    head = tree.git("rev-parse", "HEAD").stdout.strip()
    new = commit_index(tree, patch, head)
    tree.git("update-ref", "HEAD", new, head)
    return new


def require_clean(tree: Tree) -> None:
    recover(tree)
    if not is_clean(tree):
        dirty = tree.git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        raise SeriesError(f"{tree.path} has uncommitted changes; commit or stash them first:\n{dirty}")


@contextlib.contextmanager
def held_signals():
    """Hold SIGINT/SIGTERM/SIGHUP/SIGQUIT until the block is done, then deliver the first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    # Every signal ktest stops on (run.STOP_SIGNALS), Ctrl-backslash too.
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    old = {s: signal.signal(s, lambda n, _f: got.append(n)) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if got:
            signal.raise_signal(got[0])


def keep_backup(tree: Tree, commit: str, label: str = "") -> tuple[str, bool]:
    """Keep ``commit`` under refs/ktest/backup/: (the ref holding it, whether it is new).

    A commit already held by a backup ref is not kept twice.
    """
    r = tree.git("for-each-ref", "--format=%(objectname) %(refname)", f"{tree.refs}/backup/")
    held = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
    if commit in held:
        return held[commit], False
    base = f"{tree.refs}/backup/{label}{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while name in held.values():
        n += 1
        name = f"{base}-{n}"
    tree.git("update-ref", name, commit)
    return name, True


def applied_files(tree: Tree) -> dict[str, dict]:
    """commit -> {"name", "sha256"} of the patch file ktest made it from, for the last apply."""
    try:
        return json.loads((git_dir(tree.path) / APPLIED).read_text())
    except (OSError, ValueError):
        return {}


def _write_atomic(path: Path, data: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


def _record(tree: Tree, j: dict) -> None:
    """The state a finished apply leaves (journal ``j``)."""
    tree.state("ktest.seriestip", j["tip"])
    if j.get("patches_dir"):
        tree.state("ktest.seriesdir", j["patches_dir"])
    if j["complete"]:
        tree.state("ktest.seriesfingerprint", j["fingerprint"])
    else:
        tree.state("--unset", "ktest.seriesfingerprint", check=False)
    _write_atomic(git_dir(tree.path) / APPLIED, json.dumps(j["applied"], indent=1) + "\n")


def _move(tree: Tree, j: dict, *, force: bool = False) -> None:
    """The one step that writes the work tree: journal, checkout -B, state."""
    journal = git_dir(tree.path) / JOURNAL
    with held_signals():
        _write_atomic(journal, json.dumps(j, indent=1) + "\n")
        r = tree.git("checkout", "-q", *(["-f"] if force else []), "-B", j["branch"], j["tip"], timeout=900,
                     check=False)
        if r.returncode != 0 and not force and not _LOCK_RE.search(r.stderr):
            # git refused before writing anything (an untracked file in the
            # way): not an interruption, nothing to finish later.
            journal.unlink()
            raise SeriesError(f"git checkout of the new series tip {j['tip'][:12]} refused: {r.stderr.strip()}",
                              hint=f"{j['branch']} and the work tree are unchanged.")
        if r.returncode != 0:
            raise CommandError(f"git checkout -B {j['branch']} {j['tip'][:12]} failed: {r.stderr.strip()}")
        _record(tree, j)
        journal.unlink()


# git's own words for a lock another git holds ("Unable to create '.../index.lock':
# File exists"), not any path with "lock" in it (drivers/block, kernel/locking).
_LOCK_RE = re.compile(r"Unable to create '[^']*\.lock'|\.lock': File exists")


def _in_the_way(tree: Tree, tip: str) -> list[str]:
    """Untracked files of the work tree that the checkout of ``tip`` would overwrite."""
    untracked = set(tree.git("ls-files", "--others", "--exclude-standard", "-z").stdout.split("\0")) - {""}
    if not untracked:
        return []
    wanted = set(tree.git("ls-tree", "-r", "-z", "--name-only", tip, timeout=300).stdout.split("\0"))
    return sorted(untracked & wanted)


def _stale_locks(tree: Tree, branch: str) -> list[Path]:
    common = Path(tree.git("rev-parse", "--git-common-dir").stdout.strip())
    common = common if common.is_absolute() else tree.path / common
    own = git_dir(tree.path)
    return [own / "index.lock", own / "HEAD.lock", common / "refs" / "heads" / f"{branch}.lock",
            state_file(tree.path).with_name(state_file(tree.path).name + ".lock")]


def unfinished(tree: Tree) -> bool:
    """Whether an apply was cut off in its last step (its journal is still there)."""
    return (git_dir(tree.path) / JOURNAL).exists()


def recover(tree: Tree) -> bool:
    """Finish an apply that was cut off in its last step.  Returns whether there was one.

    Called with the tree's lock held.  A git still finishing that step (its
    ktest was SIGKILLed under it) gets 10 s to let go of its lock files;
    after that they are stale, and removed.
    """
    own = git_dir(tree.path)
    for d in own.glob(f"{SCRATCH}*"):
        shutil.rmtree(d, ignore_errors=True)
    journal = own / JOURNAL
    if not journal.exists():
        return False
    try:
        j = json.loads(journal.read_text())
    except ValueError:
        journal.unlink()
        return False
    ui.note(f"ktest: an earlier `series apply` was interrupted while it moved {j['branch']} to "
            f"{j['tip'][:12]}; finishing that step now")
    locks = _stale_locks(tree, j["branch"])
    for attempt in range(3):
        # A git whose ktest was SIGKILLed may still be finishing the step.
        deadline = time.monotonic() + LOCK_GRACE
        while any(p.exists() for p in locks) and time.monotonic() < deadline:
            time.sleep(0.2)
        removed = [p for p in locks if p.exists()]
        for p in removed:
            p.unlink()
        if removed:
            ui.note(f"ktest: removed the stale lock file(s) {', '.join(str(p) for p in removed)}")
        blocked = _in_the_way(tree, j["tip"])
        if blocked:
            # The forced checkout that finishes the step would overwrite them.
            raise SeriesError(f"an interrupted series apply cannot be finished: untracked file(s) in "
                              f"{tree.path} are in the way of {j['tip'][:12]}: {', '.join(blocked[:5])}"
                              + (f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""),
                              hint="Move them out of the tree, then run ktest series apply again; nothing "
                                   "was overwritten.")
        try:
            _move(tree, j, force=True)
            return True
        except CommandError as e:
            if not _LOCK_RE.search(str(e)) or attempt == 2:
                raise
    return True


def apply(tree: Tree, series: Series, *, force: bool = False, fuzz: bool = False) -> str:
    """Make the tree's series branch the base plus one commit per patch.

    Returns the tip commit.  Refuses a dirty work tree.  The previous
    branch tip, if ktest did not make it, is kept under refs/ktest/backup/.
    On a patch that does not apply, the branch is left at the last good
    commit with a clean work tree, and the error names the patch, file and
    hunk.
    """
    from .lock import held

    with held(tree, "series apply"):
        return _apply(tree, series, force=force, fuzz=fuzz)


def _build(tree: Tree, series: Series, *, fuzz: bool) -> tuple[list[tuple[Patch, str]], SeriesError | None]:
    """Make the commits in a scratch index; the work tree is not touched."""
    made: list[tuple[Patch, str]] = []
    parent = tree.base
    with tempfile.TemporaryDirectory(prefix=SCRATCH, dir=git_dir(tree.path)) as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        tree.git("read-tree", tree.base, env=env, timeout=600)
        for patch in series.patches:
            r, moved = try_apply(tree, patch, "--cached", fuzz=fuzz, env=env)
            try:
                _refuse(tree, patch, r, moved, fuzz, f"{tree.branch} is left at the last patch that applied, "
                                                     "work tree clean.")
                parent = commit_index(tree, patch, parent, env)
            except SeriesError as e:
                return made, e
            made.append((patch, parent))
    return made, None


def _apply(tree: Tree, series: Series, *, force: bool, fuzz: bool) -> str:
    require_clean(tree)
    fp = series.fingerprint(tree.base, fuzz=fuzz)
    r = tree.state("--get-regexp", r"^ktest\.series", check=False)
    state = dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
    tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
    head = tree.git("symbolic-ref", "--quiet", "HEAD", check=False).stdout.strip()
    if (not force and tip and state.get("ktest.seriesfingerprint") == fp
            and state.get("ktest.seriestip") == tip and head == f"refs/heads/{tree.branch}"):
        ui.note(f"series already applied: {tree.branch} at {tip[:12]} ({len(series.patches)} patches)")
        return tip
    with ui.step(f"applying {len(series.patches)} patches from {series.directory}"):
        made, error = _build(tree, series, fuzz=fuzz)
        new_tip = made[-1][1] if made else tree.base
        ours = {tree.base, state.get("ktest.seriestip")} | set(applied_files(tree))
        if tip and tip not in ours and tip != new_tip:
            kept, new = keep_backup(tree, tip)
            if new:
                ui.note(f"kept the previous {tree.branch} ({tip[:12]}) as {kept}")
        _move(tree, {"op": "series apply", "branch": tree.branch, "tip": new_tip, "complete": error is None,
                     "fingerprint": fp, "patches_dir": str(Path(series.directory).resolve()),
                     "applied": {c: {"name": p.name, "sha256": p.sha256} for p, c in made}})
        if error is not None:
            raise error
    return new_tip
