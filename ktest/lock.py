"""One ktest process at a time may change a tree.

The lock is an flock on a file in the tree's git directory, so it is
released by the kernel when its holder dies, however it dies; the file
also says who holds it, for the message the second process prints.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from .errors import TreeError
from .run import run
from .tree import Tree


def _lock_path(tree: Tree) -> Path:
    common = run(["git", "-C", str(tree.path), "rev-parse", "--git-common-dir"], timeout=30).stdout.strip()
    p = Path(common)
    if not p.is_absolute():
        p = tree.path / p
    return p / "ktest.lock"


@contextlib.contextmanager
def held(tree: Tree, what: str, *, wait: float = 0.0):
    """Hold the tree's lock for ``what``; wait up to ``wait`` seconds for it."""
    path = _lock_path(tree)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text(errors="replace").strip() or "another process"
                    raise TreeError(f"{tree.path} is locked by {holder}",
                                    hint="Wait for it to finish (or pass --wait SECONDS).")
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({what}: {' '.join(sys.argv[:4])}) since "
                     f"{time.strftime('%H:%M:%S')}\n".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
