"""Builds: the patched modules out of tree, and the guest-side test programs.

Like tuxmake, every build gets its own directory with the full log, a
``metadata.json`` (inputs, versions, duration, warnings, result) and a
``reproducer.sh`` that reruns the same build by hand.
"""
from __future__ import annotations

import filecmp
import fnmatch
import glob
import hashlib
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

    The newest /boot/vmlinuz-* whose headers are installed and whose
    major.minor is the prepared tree's (so 6.1 modules are not built
    against 6.12 headers when both are installed).
    """
    candidates = []
    for vmlinuz in glob.glob("/boot/vmlinuz-*"):
        rel = vmlinuz.split("vmlinuz-", 1)[1]
        if Path(f"/lib/modules/{rel}/build/Makefile").exists():
            candidates.append(rel)
    from . import tree as _tree
    try:
        mm = ".".join(_tree.current().version.split(".")[:2])
    except Exception:
        mm = _tree.DEBIAN_PACKAGE.rsplit("-", 1)[1]
    candidates = [c for c in candidates if c.startswith(mm + ".")] or candidates
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


def _source_list(tree: Tree, rev: str | None = None) -> list[str]:
    """kmod/sources expanded in the work tree (rev None) or at a commit."""
    files: list[str] = []
    listed = None
    if rev is not None:
        listed = tree.git("ls-tree", "-r", "--name-only", rev, "--", "drivers", "include").stdout.split()
    for line in (paths.kmod_dir() / "sources").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if listed is None:
            matches = sorted(glob.glob(line, root_dir=tree.path))
        else:
            matches = sorted(f for f in listed if fnmatch.fnmatchcase(f, line))
        if not matches:
            raise BuildError(f"kmod/sources: '{line}' matches nothing in {tree.path} at {rev or 'the work tree'}")
        files.extend(matches)
    # Headers the series changes (uncommitted edits too, without a rev).
    changed = tree.git("diff", "--name-only", tree.base, *([rev] if rev else []), "--", "include/").stdout.split()
    # Kbuild puts include/uapi on the path before the kernel's headers, so
    # a changed include/uapi/linux/X.h would stand in for include/linux/X.h:
    # stage the kernel's own X.h too.
    changed += [t for t in ("include/" + f[len("include/uapi/"):] for f in changed if f.startswith("include/uapi/"))
                if t not in changed]
    if listed is None:
        files.extend(f for f in changed if (tree.path / f).exists())
    else:
        files.extend(f for f in changed if f in listed)
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


def _summarise_failure(log: Path, what: str, staged: tuple[Path, str] | None = None) -> BuildError:
    """The first error as file:line.  ``staged``: (the staging directory, what
    stands for it in the message: the tree's path, or "REV:"), so the error
    names the tree's file, not ktest's copy."""
    text = log.read_text(errors="replace")
    m = ERROR_RE.search(text)
    file = m.group("file") if m else ""
    if staged is not None and file.startswith(f"{staged[0]}/"):
        file = staged[1] + file[len(str(staged[0])) + 1:]
    first = f"{file}:{m.group('line')}: error: {m.group('msg')}" if m else ""
    if not first:
        errs = [ln for ln in text.splitlines() if "error" in ln.lower()]
        first = errs[0] if errs else text.strip().splitlines()[-1] if text.strip() else ""
    return BuildError(f"{what} failed: {first}", log=log)


def build_kmod(tree: Tree, release: str | None = None, *, rev: str | None = None,
               jobs: int | None = None) -> BuildResult:
    """Build kmod/Kbuild's modules from the work tree (uncommitted edits too) or a commit."""
    release = release or debian_release()
    kdir = Path(f"/lib/modules/{release}/build")
    flavour = ""
    if not (kdir / "Makefile").exists():
        # A kernel ktest built: build against its O= directory, in a module
        # directory per kernel build (Kbuild would not notice another config).
        from . import kbuild

        own = kbuild.find_release(release)
        if own:
            kdir, flavour = own.build_dir, f"-{own.key[:12]}"
    if not (kdir / "Makefile").exists():
        raise BuildError(f"no headers for kernel {release} at {kdir}",
                         hint=f"Install them with: apt-get install linux-headers-{release}")
    commit = tree.git("rev-parse", f"{rev or 'HEAD'}^{{commit}}").stdout.strip()
    name = f"kmod-{release}{flavour}"
    directory = paths.space_free(paths.builds() / (name if rev is None else f"{name}-{commit[:12]}"),
                                 "the module build")
    directory.mkdir(parents=True, exist_ok=True)
    sources = _source_list(tree, rev)
    for f in sources:
        if rev is None:
            _copy_if_changed(tree.path / f, directory / f)
        else:
            data = run(["git", "-C", str(tree.path), "show", f"{commit}:{f}"], timeout=60).stdout
            dst = directory / f
            if not dst.exists() or dst.read_text() != data:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(data)
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
    modules = _kbuild_modules(paths.kmod_dir() / "Kbuild")
    artifacts = [directory / f"{m}.ko" for m in modules]
    stamp = directory / "inputs.sha256"
    inputs = _kmod_inputs(directory, sources, kdir, argv)
    if (stamp.exists() and stamp.read_text() == inputs and log.exists()
            and all(a.exists() for a in artifacts)):
        # Same sources, same headers, same command: make would only walk
        # the tree to find nothing to do (~0.5 s of every boot).
        text = log.read_text(errors="replace")
        warnings = [m.group(0) for m in WARNING_RE.finditer(text)]
        meta_path = directory / "metadata.json"
        if meta_path.exists():
            old = json.loads(meta_path.read_text())
            if old.get("commit") != commit:
                old.update(commit=commit, reused_build=True)
                meta_path.write_text(json.dumps(old, indent=2) + "\n")
        return BuildResult("kmod", directory, artifacts, log, warnings, meta_path, 0.0, release)
    stamp.unlink(missing_ok=True)
    with ui.step(f"building modules for {release} from {tree.path.name}@{commit[:12]}"):
        try:
            run(argv, log=log, timeout=1800, what="module build")
            ok = True
        except CommandError:
            ok = False
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    warnings = [m.group(0) for m in WARNING_RE.finditer(text)]
    if not ok:
        # A failed build lists no module and leaves none from an older build.
        for a in artifacts:
            a.unlink(missing_ok=True)
    meta.update(result="pass" if ok else "fail", seconds=round(seconds, 2), warnings=len(warnings),
                artifacts=[str(a) for a in artifacts] if ok else [])
    meta_path = _write_record(directory, argv, {}, meta)
    if not ok:
        raise _summarise_failure(log, "module build",
                                 (directory, f"{tree.path}/" if rev is None else f"{rev}:"))
    missing = [a.name for a in artifacts if not a.exists()]
    if missing:
        raise BuildError(f"module build produced no {', '.join(missing)}", log=log)
    stamp.write_text(inputs)
    return BuildResult("kmod", directory, artifacts, log, warnings, meta_path, seconds, release)


def _kmod_inputs(directory: Path, sources: list[str], kdir: Path, argv: list[str]) -> str:
    """A digest of everything a kmod build reads that can change under it."""
    h = hashlib.sha256()
    h.update("\0".join(argv).encode())
    for f in sorted(sources) + ["Kbuild"]:
        h.update(f.encode() + b"\0" + (directory / f).read_bytes())
    # The headers (or a ktest kernel build) change these when they change.
    for f in (".config", "Module.symvers", "include/generated/utsrelease.h", "Makefile"):
        p = kdir / f
        st = p.stat() if p.exists() else None
        h.update(f"{f}:{st.st_mtime_ns if st else '-'}:{st.st_size if st else '-'}\0".encode())
    return h.hexdigest() + "\n"


def _kbuild_modules(kbuild: Path) -> list[str]:
    return re.findall(r"^obj-m\s*\+=\s*(\S+)\.o\s*$", kbuild.read_text(), re.M)


# Programs that run inside the guest.  They are linked statically because
# the initramfs has no C library.
# The ringtest programs of 6.1; a tree's own list comes from its Makefile.
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
# What ``make headers_install`` reads; a partial tree is enough for it.
HEADERS_SOURCES = ["Makefile", "Kbuild", "Kconfig", "scripts", "include", "arch/x86", "usr",
                   "tools/include", "tools/arch/x86"]
VIRTIO_TOOLS = ["virtio_test", "vringh_test"]


def virtio_tools(tree: Tree, rev: str | None = None) -> list[str]:
    """The programs tools/virtio/Makefile's ``test:`` target builds at rev (None: the work tree).

    A series adds test programs (vhost_net_test), so the list is the tree's.
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
            run(["make", "-s", "-C", str(src), f"O={src / '.obj'}", "ARCH=x86", "headers_install",
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
    key = _id(tree, rev, TOOLS_SOURCES) + "-" + _own_tools_id()
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
            "toolchain": _toolchain(), "commands": commands, "env": env, "uapi": str(uapi),
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
    _write_record(directory, commands[0], env, meta)
    with open(directory / "reproducer.sh", "a") as f:
        for argv in commands[1:]:
            f.write(f"LDFLAGS=-static {shlex.join(argv)}\n")
    if not ok:
        raise _summarise_failure(log, "tools build")
    return BuildResult("tools", directory, artifacts, log, warnings, stamp, seconds)


def _own_tools_id() -> str:
    h = hashlib.sha1()
    for f in sorted(paths.tools_dir().iterdir()):
        if f.is_file() and (f.suffix in (".c", ".h") or f.name == "Makefile" or f.name in OWN_SCRIPTS):
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:8]
