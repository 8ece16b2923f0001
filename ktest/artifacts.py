"""What every build leaves behind, as tuxmake does: a directory with the
full log, a ``metadata.json`` and a ``reproducer.sh``.

Ground floor: the module, tools and kernel builds all use it, and it
imports none of them.
"""
from __future__ import annotations

import filecmp
import json
import os
import platform
import re
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BuildError
from .run import run

# gcc's and clang's diagnostics: "file:line[:col]: warning: text".
WARNING_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? warning: (?P<msg>.*)$", re.M)
ERROR_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$", re.M)
# The linker's "collect2: error" comes after the references it could not
# resolve, each named by the source line that made it (with -flto, ld's).
LINK_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+): (?P<msg>undefined reference to .*)$", re.M)


@dataclass
class BuildResult:
    kind: str                      # "kmod" or "tools"
    directory: Path
    artifacts: list[Path]
    log: Path
    warnings: list[str] = field(default_factory=list)
    metadata: Path | None = None
    seconds: float = 0.0
    release: str = ""              # kernel release the modules are for

    def to_json(self) -> dict:
        d = asdict(self)
        d["directory"] = str(self.directory)
        d["artifacts"] = [str(a) for a in self.artifacts]
        d["log"] = str(self.log)
        d["metadata"] = str(self.metadata) if self.metadata else None
        return d


def copy_if_changed(src: Path, dst: Path) -> bool:
    """Copy keeping dst's mtime when the content is the same, so make stays incremental."""
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def write_record(directory: Path, argv: list[str], env: dict[str, str], meta: dict) -> Path:
    """Write ``reproducer.sh`` (argv with env, from directory) and ``metadata.json``; return the latter."""
    repro = directory / "reproducer.sh"
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    repro.write_text("#!/bin/sh\n# Reruns this build by hand.\nset -e\n"
                     f"cd {shlex.quote(str(directory))}\n"
                     f"{envs + ' ' if envs else ''}{shlex.join(argv)}\n")
    repro.chmod(0o755)
    meta_path = directory / "metadata.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta_path


def toolchain() -> dict[str, str]:
    """First lines of ``gcc --version`` and ``make --version``, and the host, for metadata.json."""
    cc = run(["gcc", "--version"], timeout=30, check=False).stdout.splitlines()
    mk = run(["make", "--version"], timeout=30, check=False).stdout.splitlines()
    return {"gcc": cc[0] if cc else "", "make": mk[0] if mk else "", "host": platform.platform()}


def summarise_failure(log: Path, what: str, staged: tuple[Path, str] | None = None) -> BuildError:
    """A BuildError naming the log's first compiler error as file:line (else its first error line).

    ``staged``: (the staging directory, what stands for it in the message:
    the tree's path, or "REV:"), so the error names the tree's file, not
    ktest's copy.
    """
    text = log.read_text(errors="replace")
    m = ERROR_RE.search(text)
    kind = "error: "
    if m is None:
        m, kind = LINK_RE.search(text), ""
    file = os.path.normpath(m.group("file")) if m else ""
    if staged is not None and file.startswith(f"{staged[0]}/"):
        file = staged[1] + file[len(str(staged[0])) + 1:]
    first = f"{file}:{m.group('line')}: {kind}{m.group('msg')}" if m else ""
    if not first:
        errs = [ln for ln in text.splitlines() if "error" in ln.lower()]
        first = errs[0] if errs else text.strip().splitlines()[-1] if text.strip() else ""
    return BuildError(f"{what} failed: {first}", log=log)
