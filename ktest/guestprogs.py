"""The guest-side test programs: the tree's tools/virtio (ringtest variants,
virtio_test, vringh_test, and what a series adds) and ktest's own helpers
(package data), linked statically because the initramfs has no C library.

Each build is cached by the exact sources it staged and keeps its log,
``metadata.json`` and ``reproducer.sh`` (artifacts.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
from pathlib import Path

from . import paths, tools, ui
from .artifacts import WARNING_RE, BuildResult, summarise_failure, toolchain, write_record
from .errors import CommandError
from .run import run
from .tree import Tree

# Programs that run inside the guest.  They are linked statically because
# the initramfs has no C library.
# Upstream ringtest programs (6.1 to 6.12); a tree's own list comes from its Makefile.
RINGTEST_VARIANTS = ["ring", "virtio_ring_0_9", "virtio_ring_poll", "virtio_ring_inorder", "ptr_ring"]
# noring implements no ring at all: its kick/call hooks assert.
RINGTEST_SKIP = {"noring"}


def ringtest_variants(tree: Tree, rev: str | None = None) -> list[str]:
    """The programs tools/virtio/ringtest/Makefile builds at rev (None: the work tree).

    A series adds ringtest variants, so the list is the tree's, not ktest's.
    """
    rel = "tools/virtio/ringtest/Makefile"
    if rev is None:
        text = (tree.path / rel).read_text(errors="replace")
    else:
        text = tree.git("show", f"{rev}:{rel}").stdout
    for line in text.replace("\\\n", " ").splitlines():
        m = re.match(r"^all:\s*(\S.*)$", line)
        if m:
            return [v for v in m.group(1).split() if v not in RINGTEST_SKIP]
    return list(RINGTEST_VARIANTS)


TOOLS_SOURCES = ["tools/virtio", "tools/include", "include", "drivers/virtio", "drivers/vhost"]
# What ringtest alone compiles: its own directory and include/linux/ptr_ring.h
# (the uapi headers have a key of their own).  An edit to virtio_ring.c, the
# edit-boot loop's, then leaves the ringtest build cached (4.6 s on 2 cores).
RINGTEST_SOURCES = ["tools/virtio/ringtest", "tools/include", "include"]
# What ``make headers_install`` reads; a partial tree is enough for it.
HEADERS_SOURCES = ["Makefile", "Kbuild", "Kconfig", "scripts", "include", "arch/x86", "usr",
                   "tools/include", "tools/arch/x86"]
VIRTIO_TOOLS = ["virtio_test", "vringh_test"]


def virtio_tools(tree: Tree, rev: str | None = None) -> list[str]:
    """The programs tools/virtio/Makefile's ``test:`` target builds at rev (None: the work tree).

    A series may add test programs, so the list is the tree's.
    """
    rel = "tools/virtio/Makefile"
    try:
        text = (tree.path / rel).read_text(errors="replace") if rev is None else tree.git("show", f"{rev}:{rel}").stdout
    except (OSError, CommandError):
        return list(VIRTIO_TOOLS)
    for line in text.replace("\\\n", " ").splitlines():
        m = re.match(r"^test:\s*(\S.*)$", line)
        if m:
            return m.group(1).split()
    return list(VIRTIO_TOOLS)


def _untracked(tree: Tree, paths_: list[str]) -> list[str]:
    """New files under ``paths_`` that are not yet added (a new test program, say)."""
    return tree.git("ls-files", "--others", "--exclude-standard", "--", *paths_).stdout.split()


def _stage(tree: Tree, rev: str | None, paths_: list[str], dest: Path) -> str:
    """Copy ``paths_`` at ``rev`` into dest; rev None: HEAD plus uncommitted edits.

    Returns a key naming exactly what was staged.  git archive stages the
    committed sources without a worktree checkout; uncommitted edits (the
    edit-build-boot loop) are laid on top with git's own diff and apply.
    """
    commit = tree.git("rev-parse", f"{rev or 'HEAD'}^{{commit}}").stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / ".src.tar"
    tree.git("archive", "-o", str(archive), commit, *paths_, timeout=600)
    run(["tar", "-xf", str(archive), "-C", str(dest)], timeout=600)
    archive.unlink()
    key = commit
    if rev is None:
        diff = tree.git("diff", "--binary", "HEAD", "--", *paths_).stdout
        h = hashlib.sha1(diff.encode())
        if diff:
            run(["git", "apply", "--whitespace=nowarn", "-"], cwd=dest, input=diff, timeout=300,
                what="staging uncommitted edits")
        new = _untracked(tree, paths_)
        for f in new:
            data = (tree.path / f).read_bytes()
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            (dest / f).write_bytes(data)
            shutil.copymode(tree.path / f, dest / f)
            h.update(f.encode() + b"\0" + data)
        if diff or new:
            key += "+" + h.hexdigest()[:12]
    return key


def _id(tree: Tree, rev: str | None, paths_: list[str]) -> str:
    """A key for ``paths_`` at rev (None: HEAD plus uncommitted edits), without staging."""
    commit = tree.git("rev-parse", f"{rev or 'HEAD'}^{{commit}}").stdout.strip()
    ids = tree.git("rev-parse", *[f"{commit}:{p}" for p in paths_]).stdout.split()
    if rev is None:
        ids.append(tree.git("diff", "--binary", "HEAD", "--", *paths_).stdout)
        for f in _untracked(tree, paths_):
            ids.append(f + ":" + hashlib.sha1((tree.path / f).read_bytes()).hexdigest())
    return hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]


def uapi_headers(tree: Tree, rev: str | None) -> Path:
    """The tree's installed uapi headers (``make headers_install``), cached.

    tools/virtio compiles against ../../usr/include, and a series may change
    uapi headers (feature bits), so the system's linux-libc-dev will not do.
    """
    key = _id(tree, rev, ["include/uapi", "arch/x86/include/uapi", "scripts"])
    dest = paths.builds() / f"uapi-{key}"
    if (dest / "usr" / "include" / "linux" / "virtio_ring.h").exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    src = paths.builds() / f"uapi-{key}.src"
    shutil.rmtree(src, ignore_errors=True)
    try:
        with ui.step("installing the tree's uapi headers (make headers_install)"):
            _stage(tree, rev, HEADERS_SOURCES, src)
            run(["make", "-s", f"-j{os.cpu_count() or 1}", "-C", str(src), f"O={src / '.obj'}", "ARCH=x86",
                 "headers_install",
                 f"INSTALL_HDR_PATH={dest / 'usr'}"], log=paths.logs() / f"headers-{key}.log",
                timeout=900, what="make headers_install")
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return dest


TOOL_PARTS = ("ringtest", "virtio")
# ktest's own guest programs, from tools_virtio/ (built by its Makefile).
OWN_TOOLS = ("ktest-run", "ktest-udpflood")
OWN_SCRIPTS = ("ktest-netbench",)


def build_tools(tree: Tree, rev: str | None = None, *, parts: tuple[str, ...] = TOOL_PARTS,
                jobs: int | None = None) -> BuildResult:
    """Build the tree's tools/virtio programs and ktest's own guest helpers, statically.

    ``rev`` None builds what is checked out, uncommitted edits included.
    ``parts``: "ringtest" (tools/virtio/ringtest) and/or "virtio" (virtio_test,
    vringh_test), so a base that cannot build one can still run the other.
    """
    key = _id(tree, rev, RINGTEST_SOURCES if tuple(parts) == ("ringtest",) else TOOLS_SOURCES) + "-" + _own_tools_id()
    if tuple(parts) != TOOL_PARTS:
        key += "-" + "-".join(parts)
    directory = paths.space_free(paths.builds() / f"tools-{key}", "the tools build")
    ring_dir = directory / "tools" / "virtio" / "ringtest"
    virtio_dir = directory / "tools" / "virtio"
    variants = ringtest_variants(tree, rev) if "ringtest" in parts else []
    tools_list = virtio_tools(tree, rev) if "virtio" in parts else []
    artifacts = ([ring_dir / v for v in variants]
                 + [virtio_dir / v for v in tools_list]
                 + [directory / "ktest" / p for p in OWN_TOOLS + OWN_SCRIPTS])
    stamp = directory / "metadata.json"
    if stamp.exists():
        meta = json.loads(stamp.read_text())
        if (meta.get("result") == "pass" and meta.get("artifacts") == [str(a) for a in artifacts]
                and all(a.exists() for a in artifacts)):
            return BuildResult("tools", directory, artifacts, directory / "build.log", [], stamp, 0.0)
    tools.require(tools.TOOLS)
    uapi = uapi_headers(tree, rev)
    if directory.exists():
        shutil.rmtree(directory)
    staged = _stage(tree, rev, TOOLS_SOURCES, directory)
    (directory / "usr").symlink_to(uapi / "usr")
    shutil.copytree(paths.tools_dir(), directory / "ktest", dirs_exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    env = {"LDFLAGS": "-static"}
    commands = ([["make", "-C", str(ring_dir), f"-j{jobs}", *variants]] if "ringtest" in parts else []) \
        + ([["make", "-C", str(virtio_dir), f"-j{jobs}", *tools_list]] if "virtio" in parts else []) \
        + [["make", "-C", str(directory / "ktest"), f"-j{jobs}"]]
    log = directory / "build.log"
    start = time.monotonic()
    meta = {"kind": "tools", "tree": str(tree.path), "commit": staged, "rev": rev or "HEAD (work tree)",
            "toolchain": toolchain(), "commands": commands, "env": env, "uapi": str(uapi),
            "started": time.time()}
    what = ", ".join((["ringtest"] if "ringtest" in parts else []) + tools_list)
    with ui.step(f"building tools/virtio at {rev or 'the work tree'} ({what}), static"):
        ok = True
        for i, argv in enumerate(commands):
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
    text = log.read_text(errors="replace")
    warnings = [m.group(0) for m in WARNING_RE.finditer(text)]
    seconds = time.monotonic() - start
    meta.update(result="pass" if ok else "fail", seconds=round(seconds, 2), warnings=len(warnings),
                artifacts=[str(a) for a in artifacts])
    write_record(directory, commands[0], env, meta)
    with open(directory / "reproducer.sh", "a") as f:
        for argv in commands[1:]:
            f.write(f"LDFLAGS=-static {shlex.join(argv)}\n")
    if not ok:
        raise summarise_failure(log, f"tools build at {rev or 'the work tree'}",
                                (directory, f"{tree.path}/" if rev is None else f"{rev}:"))
    return BuildResult("tools", directory, artifacts, log, warnings, stamp, seconds)


def _own_tools_id() -> str:
    h = hashlib.sha1()
    for f in sorted(paths.tools_dir().iterdir()):
        if f.is_file() and (f.suffix in (".c", ".h") or f.name == "Makefile" or f.name in OWN_SCRIPTS):
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:8]
