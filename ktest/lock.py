"""The tree's lock: many readers or one writer.

Commands that change the tree (series apply, rebase, build-each) hold it
exclusively; commands that read it (build, bench, mail, series check and
export, the build behind boot) hold it shared, so the branch cannot move
under them.  It is an flock on a file in the tree's git directory, so the
kernel releases it when its holder dies, however it dies; the file also
says who holds it, for the message the second process prints.

Within one process the lock nests: a reader inside a writer changes
nothing, a writer inside a reader converts the process's lock to exclusive
for its block (flock locks belong to an open file, so a second open of the
same file would wait for the first).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import TreeError
from .run import run
from .tree import Tree

# Seconds to wait for a busy lock when the caller names none: `--wait SECONDS`.
default_wait = 0.0


@dataclass
class _Held:
    fd: int
    exclusive: bool
    depth: int


_held: dict[Path, _Held] = {}


def set_default_wait(seconds: float) -> None:
    global default_wait
    default_wait = max(0.0, seconds)


def _lock_path(tree: Tree) -> Path:
    common = run(["git", "-C", str(tree.path), "rev-parse", "--git-common-dir"], timeout=30).stdout.strip()
    p = Path(common)
    if not p.is_absolute():
        p = tree.path / p
    return p / "ktest.lock"


def _holders(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return "; ".join(text.splitlines()) or "another process"


def _take(fd: int, path: Path, tree: Tree, exclusive: bool, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                waited = f" (waited {wait:g} s)" if wait else ""
                raise TreeError(f"{tree.path} is locked by {_holders(path)}{waited}",
                                hint="Wait for it to finish, or pass --wait SECONDS to wait for it.")
            time.sleep(0.2)


def _note(fd: int, what: str, exclusive: bool) -> None:
    # Readers append a line each, a writer replaces them; a stale line from a
    # reader that died only makes the message longer, never wrong about the lock.
    line = (f"pid {os.getpid()} ({what}: {' '.join(sys.argv[:4])}, "
            f"{'writing' if exclusive else 'reading'}) since {time.strftime('%H:%M:%S')}\n").encode()
    if exclusive:
        os.ftruncate(fd, 0)
        os.pwrite(fd, line, 0)
    else:
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, line)


@contextlib.contextmanager
def held(tree: Tree, what: str, *, shared: bool = False, wait: float | None = None):
    """Hold the tree's lock for ``what``: exclusively, or ``shared`` with other readers.

    Waits up to ``wait`` seconds (default: set_default_wait's) for a busy
    lock, then raises TreeError naming the holder.
    """
    wait = default_wait if wait is None else wait
    path = _lock_path(tree)
    mine = _held.get(path)
    if mine is not None:
        if shared or mine.exclusive:
            mine.depth += 1
            try:
                yield
            finally:
                mine.depth -= 1
            return
        try:
            _take(mine.fd, path, tree, True, wait)
        except TreeError:
            # flock drops the old lock before it tries the new one: take it back.
            fcntl.flock(mine.fd, fcntl.LOCK_SH)
            raise
        mine.exclusive = True
        try:
            yield
        finally:
            mine.exclusive = False
            fcntl.flock(mine.fd, fcntl.LOCK_SH)
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _take(fd, path, tree, not shared, wait)
        _note(fd, what, not shared)
        _held[path] = _Held(fd, not shared, 1)
        try:
            yield
        finally:
            del _held[path]
            if not shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
