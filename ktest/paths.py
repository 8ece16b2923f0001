"""Where ktest keeps things.

Everything ktest makes lives under one cache directory (``$KTEST_HOME``,
default ``~/.cache/ktest``).  Settings are kept in git-config syntax in
``$KTEST_HOME/config`` and read with ``git config --file``, so there is no
new format to learn and ``git config --file ~/.cache/ktest/config -l``
shows them.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import project
from . import run as _run

# ktest's own files (guest programs, default fragments, the Kbuild head):
# package data, so a wheel, a non-editable install and a checkout all work.
DATA = Path(__file__).resolve().parent / "data"


def home() -> Path:
    p = Path(os.environ.get("KTEST_HOME") or Path.home() / ".cache" / "ktest")
    p.mkdir(parents=True, exist_ok=True)
    return p


def space_free(path: Path, what: str) -> Path:
    """``path``, or an error naming it: Kbuild and the tools' Makefiles cannot
    build in a directory whose path has a space (``what`` says which build)."""
    from .errors import KtestError

    if any(c.isspace() for c in str(path)):
        raise KtestError(f"{what} cannot build in {str(path)!r}: the path has a space, which "
                         "Kbuild and make do not allow",
                         hint="Point KTEST_HOME (and the tree) at a path without spaces.")
    return path


def trees() -> Path:
    return home() / "trees"


def builds() -> Path:
    return home() / "builds"


def logs() -> Path:
    p = home() / "logs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def results() -> Path:
    return home() / "results"


def patches_dir() -> Path:
    """The current series project's patch directory (see project.py for how it is found)."""
    return project.current().patches_dir


def kmod_dir() -> Path | None:
    """The project's ``kmod/`` (module list and sources), or None: derive them from the series."""
    return project.current().kmod_dir


def tools_dir() -> Path:
    """ktest's own guest programs (sources and Makefile)."""
    return DATA / "tools_virtio"


def configs_dir() -> Path:
    """ktest's default kconfig fragments."""
    return DATA / "configs"


def kbuild_head() -> Path:
    """The head of every out-of-tree Kbuild ktest writes (staged headers first)."""
    return DATA / "Kbuild.head"


def config_file() -> Path:
    return home() / "config"


_CONFIGS: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}


def read_config(f: Path) -> dict[str, str]:
    """Every ``key -> value`` of a git-config file (``git config --list``: keys
    in git's canonical form, the last value of a repeated key); {} if there is
    no file.  One ``git config`` per file and version of it in a process: a
    boot asks for the tree's settings a dozen times (0.15 s of processes).
    ``git config`` writes through a lock file renamed into place, so a write
    changes the inode and the next read runs git again."""
    try:
        st = os.stat(f)
    except FileNotFoundError:
        return {}
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _CONFIGS.get(str(f))
    if cached and cached[0] == stamp:
        return cached[1]
    r = _run.run(["git", "config", "--file", str(f), "--null", "--list"], check=False, timeout=30)
    values: dict[str, str] = {}
    for item in r.stdout.split("\0"):
        if item:
            key, _, value = item.partition("\n")
            values[key] = value
    _CONFIGS[str(f)] = (stamp, values)
    return values


def get_setting(key: str) -> str | None:
    return read_config(config_file()).get(key)


def set_setting(key: str, value: str) -> None:
    _run.run(["git", "config", "--file", config_file(), key, value], timeout=30)
