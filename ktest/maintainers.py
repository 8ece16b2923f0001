"""Who a patch goes to: the tree's own scripts/get_maintainer.pl, run offline.

Maintainers (``M:``) go in To; reviewers (``R:``) and mailing lists
(``L:``) go in Cc, as most kernel submitters do: the people who merge are
addressed, the people and lists who review are copied.  get_maintainer.pl
is run twice, once per role set, rather than parsing its role annotations,
whose wording changes between kernel versions.

The git-history options stay off: a Debian source tree has one commit, so
"recent authors" would be noise, and ``--nofixes`` keeps the answer from
depending on which commits happen to be in the tree.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import addresses
from .errors import KtestError
from .patchfile import shell_unsafe
from .run import run
from .tree import Tree

SCRIPT = "scripts/get_maintainer.pl"
OFFLINE = ["--no-git", "--no-git-fallback", "--nofixes", "--no-rolestats"]
TO_ROLES = ["--m", "--nor", "--nol"]
CC_ROLES = ["--nom", "--r", "--l"]


class MaintainersError(KtestError):
    """get_maintainer.pl is missing or failed."""


@dataclass
class Recipients:
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.to or self.cc)

    def count(self) -> int:
        return len(self.to) + len(self.cc)


# One readable, unencoded spelling per address; headers encode it once.
normalise = addresses.normalise
key = addresses.key


def dedupe(addrs: list[str], *, exclude: list[str] = ()) -> list[str]:
    """Keep the first spelling of each address, in order, minus ``exclude``."""
    seen = {key(a) for a in exclude}
    out = []
    for a in addrs:
        k = key(a)
        if k and k not in seen:
            seen.add(k)
            out.append(normalise(a))
    return out


def get_maintainer(tree: Tree, patches: list[Path], roles: list[str]) -> list[str]:
    script = tree.path / SCRIPT
    if not script.is_file():
        raise MaintainersError(f"{script} does not exist; cannot find the maintainers of the series")
    # The patches go in on stdin: get_maintainer.pl opens a named file with
    # perl's two-argument open and asks git about it through a shell.
    data = b""
    for p in patches:
        text = p.read_bytes()
        unsafe = shell_unsafe(text.decode("utf-8", "surrogateescape"))
        if unsafe:
            raise MaintainersError(f"{p.name}: {', '.join(repr(u) for u in unsafe)} in the diff could "
                                   f"reach a shell inside {SCRIPT}; not run")
        data += text if text.endswith(b"\n") else text + b"\n"
    r = run(["perl", SCRIPT, *OFFLINE, *roles], input=data, cwd=tree.path, timeout=300,
            check=False, what="get_maintainer.pl")
    if r.returncode != 0:
        raise MaintainersError(f"{SCRIPT} failed (exit {r.returncode}) on "
                               f"{', '.join(p.name for p in patches)}: {r.stderr.strip()}")
    return [ln.strip() for ln in r.stdout.splitlines() if "@" in ln]


def recipients(tree: Tree, patches: list[Path], *, to: list[str] = (), cc: list[str] = ()) -> Recipients:
    """To and Cc for a series: get_maintainer.pl's answer plus the user's own.

    An address asked for with ``to`` moves out of Cc; Cc moves to To when
    no maintainer was found, so a message always has a To.
    """
    found_to = get_maintainer(tree, patches, TO_ROLES) if patches else []
    found_cc = get_maintainer(tree, patches, CC_ROLES) if patches else []
    all_to = dedupe([*found_to, *to])
    all_cc = dedupe([*found_cc, *cc], exclude=all_to)
    if not all_to:
        all_to, all_cc = all_cc, []
    return Recipients(all_to, all_cc)


def sections_covering(tree: Tree, file: str) -> list[str]:
    """The MAINTAINERS sections whose ``F:`` patterns cover ``file`` (a path in
    the tree), other than THE REST, which covers everything.

    The pattern rules are get_maintainer.pl's: a trailing "/" takes the
    directory and all below it, "*" and "?" stay within one path component,
    and a plain path that names a directory takes what is below it.
    """
    try:
        text = (tree.path / "MAINTAINERS").read_text(errors="replace")
    except OSError:
        return []
    found, section = [], ""
    for line in text.splitlines():
        if line and not re.match(r"^[A-Z]:\s", line):
            section = line.strip()
            continue
        if not line.startswith("F:") or section == "THE REST":
            continue
        pat = line[2:].strip()
        if pat.endswith("/") or (tree.path / pat).is_dir():
            hit = file.startswith(pat.rstrip("/") + "/")
        else:
            rx = re.escape(pat).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            hit = re.fullmatch(rx, file) is not None
        if hit and section not in found:
            found.append(section)
    return found
