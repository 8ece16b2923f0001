"""Builds: the patched modules out of tree, and the guest-side test programs.

Like tuxmake, every build gets its own directory with the full log, a
``metadata.json`` (inputs, versions, duration, warnings, result) and a
``reproducer.sh`` that reruns the same build by hand.
"""
from __future__ import annotations

import filecmp
import glob
import json
import os
import platform
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import paths, ui
from .errors import BuildError, CommandError
from .run import run
from .tree import Tree

WARNING_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? warning: (?P<msg>.*)$", re.M)
ERROR_RE = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$", re.M)


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


def debian_release() -> str:
    """Release of the Debian kernel image that boots by default.

    The newest /boot/vmlinuz-* whose headers are installed, so that the
    modules built against those headers load into it.
    """
    candidates = []
    for vmlinuz in glob.glob("/boot/vmlinuz-*"):
        rel = vmlinuz.split("vmlinuz-", 1)[1]
        if Path(f"/lib/modules/{rel}/build/Makefile").exists():
            candidates.append(rel)
    if not candidates:
        raise BuildError(
            "no Debian kernel with matching headers (/boot/vmlinuz-* and /lib/modules/*/build)",
            hint="Install them with: apt-get install linux-image-amd64 linux-headers-amd64",
        )
    return sorted(candidates, key=_release_key)[-1]


def _release_key(rel: str):
    return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", rel)]


def _copy_if_changed(src: Path, dst: Path) -> bool:
    """Copy keeping dst's mtime when the content is the same, so make stays incremental."""
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return True


def _source_list(tree: Tree) -> list[str]:
    files: list[str] = []
    for line in (paths.kmod_dir() / "sources").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        matches = sorted(glob.glob(line, root_dir=tree.path))
        if not matches:
            raise BuildError(f"kmod/sources: '{line}' matches nothing in {tree.path}")
        files.extend(matches)
    changed = tree.git("diff", "--name-only", tree.base, "HEAD", "--", "include/").stdout.split()
    files.extend(f for f in changed if (tree.path / f).exists())
    return files


def _write_record(directory: Path, argv: list[str], env: dict[str, str], meta: dict) -> Path:
    repro = directory / "reproducer.sh"
    envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
    repro.write_text("#!/bin/sh\n# Reruns this build by hand.\nset -e\n"
                     f"cd {shlex.quote(str(directory))}\n"
                     f"{envs + ' ' if envs else ''}{shlex.join(argv)}\n")
    repro.chmod(0o755)
    meta_path = directory / "metadata.json"
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta_path


def _toolchain() -> dict[str, str]:
    cc = run(["gcc", "--version"], timeout=30, check=False).stdout.splitlines()
    mk = run(["make", "--version"], timeout=30, check=False).stdout.splitlines()
    return {"gcc": cc[0] if cc else "", "make": mk[0] if mk else "", "host": platform.platform()}


def _summarise_failure(log: Path, what: str) -> BuildError:
    text = log.read_text(errors="replace")
    m = ERROR_RE.search(text)
    first = f"{m.group('file')}:{m.group('line')}: error: {m.group('msg')}" if m else ""
    if not first:
        errs = [ln for ln in text.splitlines() if "error" in ln.lower()]
        first = errs[0] if errs else text.strip().splitlines()[-1] if text.strip() else ""
    return BuildError(f"{what} failed: {first}", log=log)


def build_kmod(tree: Tree, release: str | None = None, *, jobs: int | None = None) -> BuildResult:
    """Build kmod/Kbuild's modules from the tree's current sources."""
    release = release or debian_release()
    kdir = Path(f"/lib/modules/{release}/build")
    if not (kdir / "Makefile").exists():
        raise BuildError(f"no headers for kernel {release} at {kdir}",
                         hint=f"Install them with: apt-get install linux-headers-{release}")
    commit = tree.git("rev-parse", "HEAD").stdout.strip()
    directory = paths.builds() / f"kmod-{release}"
    directory.mkdir(parents=True, exist_ok=True)
    sources = _source_list(tree)
    for f in sources:
        _copy_if_changed(tree.path / f, directory / f)
    _copy_if_changed(paths.kmod_dir() / "Kbuild", directory / "Kbuild")
    # A header the series no longer changes must not shadow the kernel's.
    staged_inc = directory / "include"
    if staged_inc.exists():
        keep = {directory / f for f in sources}
        for p in staged_inc.rglob("*"):
            if p.is_file() and p not in keep:
                p.unlink()
    jobs = jobs or os.cpu_count() or 1
    argv = ["make", "-C", str(kdir), f"M={directory}", f"-j{jobs}", "modules"]
    log = directory / "build.log"
    start = time.monotonic()
    meta = {"kind": "kmod", "tree": str(tree.path), "commit": commit, "base": tree.base,
            "release": release, "headers": str(kdir), "sources": sources,
            "command": argv, "toolchain": _toolchain(), "started": time.time()}
    with ui.step(f"building modules for {release} from {tree.path.name}@{commit[:12]}"):
        try:
            run(argv, log=log, timeout=1800, what="module build")
            ok = True
        except CommandError:
            ok = False
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    warnings = [m.group(0) for m in WARNING_RE.finditer(text)]
    modules = _kbuild_modules(paths.kmod_dir() / "Kbuild")
    artifacts = [directory / f"{m}.ko" for m in modules]
    meta.update(result="pass" if ok else "fail", seconds=round(seconds, 2), warnings=len(warnings),
                artifacts=[str(a) for a in artifacts])
    meta_path = _write_record(directory, argv, {}, meta)
    if not ok:
        raise _summarise_failure(log, "module build")
    missing = [a.name for a in artifacts if not a.exists()]
    if missing:
        raise BuildError(f"module build produced no {', '.join(missing)}", log=log)
    return BuildResult("kmod", directory, artifacts, log, warnings, meta_path, seconds, release)


def _kbuild_modules(kbuild: Path) -> list[str]:
    return re.findall(r"^obj-m\s*\+=\s*(\S+)\.o\s*$", kbuild.read_text(), re.M)


# Programs that run inside the guest.  They are linked statically because
# the initramfs has no C library.
RINGTEST_VARIANTS = ["ring", "virtio_ring_0_9", "virtio_ring_poll", "virtio_ring_inorder", "ptr_ring"]


def build_tools(tree: Tree, *, jobs: int | None = None) -> BuildResult:
    """Build tools/virtio/ringtest from the tree and ktest's own guest helpers."""
    commit = tree.git("rev-parse", "HEAD").stdout.strip()
    directory = paths.builds() / f"tools-{commit[:16]}"
    stamp = directory / "metadata.json"
    if stamp.exists():
        meta = json.loads(stamp.read_text())
        artifacts = [Path(a) for a in meta.get("artifacts", [])]
        if meta.get("result") == "pass" and all(a.exists() for a in artifacts):
            return BuildResult("tools", directory, artifacts, directory / "build.log",
                               [], stamp, 0.0)
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    # git archive stages exactly the committed sources, without the cost of
    # a worktree checkout and without writing objects into the user's tree.
    archive = directory / "src.tar"
    tree.git("archive", "-o", str(archive), commit, "tools/virtio/ringtest", "include/linux/ptr_ring.h")
    run(["tar", "-xf", str(archive), "-C", str(directory)], timeout=120)
    archive.unlink()
    shutil.copytree(paths.tools_dir(), directory / "ktest", dirs_exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    env = {"LDFLAGS": "-static"}
    ring_dir = directory / "tools" / "virtio" / "ringtest"
    argv_ring = ["make", "-C", str(ring_dir), f"-j{jobs}", *RINGTEST_VARIANTS]
    argv_own = ["make", "-C", str(directory / "ktest"), f"-j{jobs}"]
    log = directory / "build.log"
    start = time.monotonic()
    meta = {"kind": "tools", "tree": str(tree.path), "commit": commit, "toolchain": _toolchain(),
            "commands": [argv_ring, argv_own], "env": env, "started": time.time()}
    with ui.step("building tools/virtio/ringtest and guest helpers (static)"):
        ok = True
        for i, argv in enumerate((argv_ring, argv_own)):
            part = directory / f"build-{i}.log"
            try:
                run(argv, env=env, log=part, timeout=900, what="tools build")
            except CommandError:
                ok = False
            with open(log, "a") as out:
                out.write(part.read_text(errors="replace"))
            part.unlink()
            if not ok:
                break
    artifacts = [ring_dir / v for v in RINGTEST_VARIANTS] + [directory / "ktest" / "ktest-run"]
    text = log.read_text(errors="replace")
    warnings = [m.group(0) for m in WARNING_RE.finditer(text)]
    seconds = time.monotonic() - start
    meta.update(result="pass" if ok else "fail", seconds=round(seconds, 2), warnings=len(warnings),
                artifacts=[str(a) for a in artifacts])
    repro = directory / "reproducer.sh"
    _write_record(directory, argv_ring, env, meta)
    with open(repro, "a") as f:
        f.write(f"LDFLAGS=-static {shlex.join(argv_own)}\n")
    if not ok:
        raise _summarise_failure(log, "tools build")
    return BuildResult("tools", directory, artifacts, log, warnings, stamp, seconds)
