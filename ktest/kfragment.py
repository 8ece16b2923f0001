"""Kconfig fragments: ``.config`` lines read strictly, each request with its file:line.

Fragments are kernel ``.config`` syntax: ``CONFIG_X=y``, ``CONFIG_X="s"``,
``# CONFIG_X is not set``, comments and blank lines.  A fragment named
without a path is looked up in the series project's ``configs/``, then in
ktest's own (package data).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import paths, project
from .errors import KtestError, ProjectError


class ConfigError(KtestError):
    """A fragment is bad, or the kernel's Kconfig could not be loaded."""


def fragment_dirs() -> list[Path]:
    """Where a fragment named without a path is looked up: the series project's
    ``configs/`` (when ktest stands in a project that has one), then ktest's own."""
    dirs = []
    try:
        own = project.current().fragments_dir
        if own:
            dirs.append(own)
    except ProjectError:
        pass
    return dirs + [paths.configs_dir()]


# --- fragments ---------------------------------------------------------------

_SET_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_VALUE_RE = re.compile(r'^(y|m|n|-?[0-9]+|0[xX][0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$')


@dataclass
class Request:
    symbol: str         # without CONFIG_
    value: str          # y/m/n, a number, or the unquoted string
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Fragment:
    path: Path
    requests: list[Request]


def fragment_path(name: str | Path) -> Path:
    """``guest`` means configs/guest.config; anything with a slash or suffix is a path."""
    s = str(name)
    if "/" not in s and not s.endswith(".config"):
        dirs = fragment_dirs()
        for d in dirs:
            if (d / f"{s}.config").exists():
                return d / f"{s}.config"
        known = sorted({q.stem for d in dirs for q in d.glob("*.config")})
        raise ConfigError(f"no fragment '{s}' in {' or '.join(map(str, dirs))} (known: {', '.join(known)})")
    # Resolved now: kconfiglib opens files after changing into the tree.
    p = Path(s).expanduser().absolute()
    if not p.exists():
        raise ConfigError(f"fragment {s} does not exist")
    return p


def _display(path: Path) -> str:
    """ktest's own fragments as configs/NAME.config; others as given."""
    try:
        return str(Path("configs") / path.resolve().relative_to(paths.configs_dir()))
    except ValueError:
        return str(path)


def parse_fragment(path: Path) -> Fragment:
    """Read a fragment strictly: anything that is not config syntax is an error at file:line."""
    name = _display(path)
    reqs: list[Request] = []
    for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = _UNSET_RE.match(line)
        if m:
            reqs.append(Request(m.group(1)[7:], "n", name, n))
            continue
        if line.startswith("#"):
            continue
        m = _SET_RE.match(line)
        if m is None:
            raise ConfigError(f"{name}:{n}: not kernel config syntax: {raw.strip()!r}",
                              hint="Use CONFIG_X=y|m|<number>|\"string\", '# CONFIG_X is not set', "
                                   "or a # comment.")
        value = m.group(2)
        if not _VALUE_RE.match(value):
            raise ConfigError(f"{name}:{n}: {m.group(1)}: bad value {value!r} "
                              "(y, m, n, a number, or a \"quoted string\")")
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        reqs.append(Request(m.group(1)[7:], value, name, n))
    return Fragment(path, reqs)


def read_config(path: Path) -> dict[str, str]:
    """CONFIG_X -> value (strings unquoted) from a .config; 'is not set' lines are left out."""
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _SET_RE.match(line)
        if m:
            v = m.group(2)
            values[m.group(1)] = re.sub(r"\\(.)", r"\1", v[1:-1]) if v.startswith('"') else v
    return values
