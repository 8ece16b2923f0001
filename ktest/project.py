"""The series project: where the patch series ktest works on lives.

Found the way quilt finds ``patches/`` and git finds ``.git``: from the
current directory upward, the first directory holding ``patches/series``.
``--patches DIR``, then ``KTEST_PATCHES``, then ``QUILT_PATCHES`` override
that, in this order.  The project may also hold its own kconfig fragments
(``configs/*.config``, looked up before ktest's own) and the modules it
needs built (``kmod/Kbuild`` + ``kmod/sources``; without them ktest derives
both from the files the series changes).

Nothing here depends on where ktest itself was installed: ktest's own
files (guest programs, default fragments, the Kbuild head) are package
data, found through ``paths.data()``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import ui
from .errors import ProjectError


@dataclass(frozen=True)
class SeriesProject:
    root: Path              # the directory holding patches/ (the patches dir's parent)
    patches_dir: Path       # holds the quilt ``series`` file and the patches
    how: str                # "cwd" (found upward), "--patches", "KTEST_PATCHES", "QUILT_PATCHES"

    @property
    def series_file(self) -> Path:
        return self.patches_dir / "series"

    @property
    def fragments_dir(self) -> Path | None:
        """The project's own kconfig fragments (``configs/``), if it has any."""
        d = self.root / "configs"
        return d if d.is_dir() else None

    @property
    def kmod_dir(self) -> Path | None:
        """``kmod/`` with ``Kbuild`` (obj-m lines) and ``sources``, if the project lists its modules."""
        d = self.root / "kmod"
        return d if (d / "Kbuild").is_file() and (d / "sources").is_file() else None


_override: Path | None = None
_found: tuple[tuple, SeriesProject] | None = None     # (what it was found from, the project)
_named: set[Path] = set()                             # projects already named on stderr


def select(patches: Path | None) -> None:
    """The ``--patches DIR`` given on the command line (None: not given)."""
    global _override
    _override = patches


def _from_dir(d: Path, how: str) -> SeriesProject:
    d = d.expanduser()
    if not d.is_absolute():
        d = Path.cwd() / d
    d = Path(os.path.normpath(d))
    return SeriesProject(d.parent, d, how)


def _quilt_patches(name: str, start: Path) -> SeriesProject | None:
    """quilt's rule: a relative QUILT_PATCHES names a directory in the project root,
    the first directory upward that holds it (None: no directory does)."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return _from_dir(p, "QUILT_PATCHES")
    for d in (start, *start.parents):
        if (d / p).is_dir():
            # The project root is where quilt found it (QUILT_PATCHES=debian/patches: the package's top).
            return SeriesProject(d, d / p, "QUILT_PATCHES")
    return None


def find(start: Path | None = None, *, patches: Path | None = None, env=None) -> SeriesProject:
    """The series project for ``start`` (default: the current directory).

    Raises ProjectError (exit 2) naming where ktest looked when none is found.
    """
    env = os.environ if env is None else env
    start = Path(os.path.abspath(start or Path.cwd()))
    if patches is not None:
        return _from_dir(patches, "--patches")
    if env.get("KTEST_PATCHES"):
        return _from_dir(Path(env["KTEST_PATCHES"]), "KTEST_PATCHES")
    if env.get("QUILT_PATCHES"):
        found = _quilt_patches(env["QUILT_PATCHES"], start)
        if found is not None:
            return found
    for d in (start, *start.parents):
        if (d / "patches" / "series").is_file():
            return SeriesProject(d, d / "patches", "cwd")
    raise ProjectError(
        f"no series found: no patches/series in {start} or any directory above it",
        hint="Start one with: ktest init [DIR]; or name one with --patches DIR or KTEST_PATCHES=DIR")


def current() -> SeriesProject:
    """The project this ktest process works on, found once; says which when it is not under the cwd."""
    global _found
    key = (_override, os.environ.get("KTEST_PATCHES"), os.environ.get("QUILT_PATCHES"), os.getcwd())
    if _found is None or _found[0] != key:
        _found = (key, find(patches=_override))
    p = _found[1]
    cwd = Path.cwd().resolve()
    pd = p.patches_dir.resolve()
    if cwd != pd and cwd not in pd.parents and pd not in _named:
        _named.add(pd)
        ui.note(f"ktest: series {p.patches_dir} (from {p.how})")
    return p


SERIES_TEMPLATE = """\
# quilt series file: one patch per line, applied in order; '#' starts a comment.
# Options after a name (-p1, -p0) are quilt's.  ktest series apply reads it.
"""

COVER_TEMPLATE = """\
SUBJECT: what the series does, in one line

Why this series: the problem, who sees it, and what changes.

What each patch does, in order, and the figures that show it, each from
the ktest command that measured it (ktest bench ..., results.json).
"""


def init(directory: Path) -> SeriesProject:
    """Start an empty series project: ``patches/series`` and ``patches/cover-letter.txt``.

    Raises ProjectError when ``directory`` already holds a series file; files
    that exist are never overwritten.
    """
    d = Path(os.path.abspath(directory))
    pd = d / "patches"
    if (pd / "series").exists():
        raise ProjectError(f"{pd / 'series'} already exists: {d} is a series project")
    pd.mkdir(parents=True, exist_ok=True)
    (pd / "series").write_text(SERIES_TEMPLATE)
    cover = pd / "cover-letter.txt"
    if not cover.exists():
        cover.write_text(COVER_TEMPLATE)
    return SeriesProject(d, pd, "init")
