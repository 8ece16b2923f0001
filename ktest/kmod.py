"""The patched modules, built out of tree against an installed kernel's headers.

Which modules, and from which files: the series project's ``kmod/Kbuild``
(obj-m lines) and ``kmod/sources`` when it has them, else derived from the
``.c`` files the series changes and their directories' Makefiles.  Every
build gets a directory with its log, ``metadata.json`` and
``reproducer.sh`` (artifacts.py).
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths, tools, ui
from .artifacts import WARNING_RE, BuildResult, copy_if_changed, summarise_failure, toolchain, write_record
from .errors import BuildError, CommandError
from .kernels import debian_release
from .kfragment import read_config
from .run import run
from .tree import Tree


@dataclass
class ModuleList:
    kbuild: str            # obj-m lines, in Kbuild syntax (ktest's head goes before them)
    patterns: list[str]    # source paths or globs, relative to the tree
    origin: str            # "kmod/" or "derived from the series"


def _changed(tree: Tree, rev: str | None, *pathspec: str) -> list[str]:
    return tree.git("diff", "--name-only", tree.base, *([rev] if rev else []), "--", *pathspec).stdout.split()


def _read(tree: Tree, rev: str | None, rel: str) -> str | None:
    if rev is None:
        p = tree.path / rel
        return p.read_text(errors="replace") if p.is_file() else None
    r = tree.git("show", f"{rev}:{rel}", check=False)
    return r.stdout if r.returncode == 0 else None


def _makefile_objects(text: str, config: dict[str, str] | None = None) -> tuple[set[str], dict[str, list[str]]]:
    """(objects in obj-* lists, composite -> its objects) of one kernel Makefile or Kbuild.

    A composite's ``NAME-$(CONFIG_X)`` objects count when ``config`` (the
    .config the modules build against) has X=y or m; without a config only
    the unconditional ones (``NAME-y``, ``NAME-objs``) do.
    """
    text = text.replace("\\\n", " ")
    config = config or {}
    modules: set[str] = set()
    parts: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        m = re.match(r"^\s*obj-(?:\$\(CONFIG_\w+\)|m|y)\s*[:+]?=\s*(.*)$", line)
        if m:
            modules.update(o[:-2] for o in m.group(1).split() if o.endswith(".o"))
            continue
        m = re.match(r"^\s*([\w-]+?)-(y|objs|\$\((CONFIG_\w+)\))\s*[:+]?=\s*(.*)$", line)
        if m and (m.group(3) is None or config.get(m.group(3)) in ("y", "m")):
            parts.setdefault(m.group(1), []).extend(o for o in m.group(4).split() if o.endswith(".o"))
    return modules, parts


def derive(tree: Tree, rev: str | None = None, config: dict[str, str] | None = None) -> ModuleList:
    """The modules holding the ``.c`` files the series changes, from their directories'
    Kbuild or Makefile (read at ``rev``; ``config``: the .config the modules build against).

    Which files: those the whole series changes (base to the series branch's
    tip, and the work tree's edits), so that every revision of one series (a
    base for ``--vs``, each patch of build-each) builds the same modules.  A
    changed file that is built in (obj-y) or in no Makefile cannot be built
    out of tree: it is named on stderr and skipped.  A series that changes no
    module gives an empty list (nothing to build).
    """
    lines: list[str] = []
    patterns: list[str] = []
    done: set[tuple[str, str]] = set()
    # tools/ and scripts/ are userspace: nothing there is a module.
    spec = ("*.c", ":!tools/", ":!scripts/")
    tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
    changed = set(_changed(tree, tip, *spec)) if tip else set()
    changed |= set(_changed(tree, None, *spec)) if rev is None else set()
    for f in sorted(changed):
        d, name = os.path.split(f)
        kb = _read(tree, rev, f"{d}/Kbuild")
        where = f"{d}/Kbuild" if kb is not None else f"{d}/Makefile"
        mk = kb if kb is not None else _read(tree, rev, where) or ""
        modules, parts = _makefile_objects(mk, config)
        obj = name[:-2]
        owner = obj if obj in modules else next((m for m, objs in parts.items()
                                                 if f"{obj}.o" in objs and m in modules), None)
        if owner is None or re.search(rf"^\s*obj-y\s*[:+]?=.*\b{re.escape(owner)}\.o", mk, re.M):
            ui.note(f"ktest: {f} is not part of a module in {where}: not built out of tree")
            continue
        if (d, owner) in done:
            continue
        done.add((d, owner))
        objs = parts.get(owner, [f"{owner}.o"])
        lines += [f"obj-m += {owner}.o", f"{owner}-y := " + " ".join(f"{d}/{o}" for o in objs), ""]
        patterns += [f"{d}/{o[:-2]}.c" for o in objs] + [f"{d}/*.h"]
    return ModuleList("\n".join(lines), sorted(set(patterns)), "derived from the series")


def module_list(tree: Tree, rev: str | None = None, config: dict[str, str] | None = None) -> ModuleList:
    """The project's kmod/ list when it has one, else ``derive``."""
    d = paths.kmod_dir()
    if d is None:
        return derive(tree, rev, config)
    patterns = [ln.split("#", 1)[0].strip() for ln in (d / "sources").read_text().splitlines()]
    return ModuleList((d / "Kbuild").read_text(), [p for p in patterns if p], f"{d}/")


def _source_list(tree: Tree, mods: ModuleList, rev: str | None = None) -> list[str]:
    """The list's sources expanded in the work tree (rev None) or at a commit, plus changed headers."""
    files: list[str] = []
    listed = None
    if rev is not None:
        listed = tree.git("ls-tree", "-r", "--name-only", rev).stdout.split()
    for pat in mods.patterns:
        if listed is None:
            matches = sorted(glob.glob(pat, root_dir=tree.path))
        else:
            matches = sorted(f for f in listed if fnmatch.fnmatchcase(f, pat))
        if not matches and not pat.endswith("/*.h"):
            raise BuildError(f"{mods.origin}: '{pat}' matches nothing in {tree.path} at {rev or 'the work tree'}")
        files.extend(m for m in matches if m not in files)
    # Headers the series changes (uncommitted edits too, without a rev).
    changed = _changed(tree, rev, "include/")
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


def kbuild_modules(kbuild: str) -> list[str]:
    """Module names of a Kbuild text's ``obj-m += NAME.o`` lines."""
    return re.findall(r"^obj-m\s*\+=\s*(\S+)\.o\s*$", kbuild, re.M)


def _headers_dir(release: str) -> tuple[Path, str]:
    kdir = Path(f"/lib/modules/{release}/build")
    if not (kdir / "Makefile").exists():
        # A kernel ktest built: build against its O= directory, in a module
        # directory per kernel build (Kbuild would not notice another config).
        from . import kbuild

        own = kbuild.find_release(release)
        if own:
            return own.build_dir, f"-{own.key[:12]}"
        raise BuildError(f"no headers for kernel {release} at {kdir}",
                         hint=f"Install them with: apt-get install linux-headers-{release}")
    return kdir, ""


def _stage_sources(tree: Tree, rev: str | None, commit: str, sources: list[str], directory: Path) -> None:
    for f in sources:
        if rev is None:
            copy_if_changed(tree.path / f, directory / f)
        else:
            data = run(["git", "-C", str(tree.path), "show", f"{commit}:{f}"], timeout=60).stdout
            dst = directory / f
            if not dst.exists() or dst.read_text() != data:
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(data)
    # A header the series no longer changes must not shadow the kernel's.
    staged_inc = directory / "include"
    if staged_inc.exists():
        keep = {directory / f for f in sources}
        for p in staged_inc.rglob("*"):
            if p.is_file() and p not in keep:
                p.unlink()


def build_kmod(tree: Tree, release: str | None = None, *, rev: str | None = None,
               jobs: int | None = None) -> BuildResult:
    """Build the series' modules from the work tree (uncommitted edits too) or a commit.

    Returns the BuildResult (one ``.ko`` per module).  Raises BuildError
    with the first error as file:line and the log's path.
    """
    release = release or debian_release(tree.version)
    kdir, flavour = _headers_dir(release)
    commit = tree.git("rev-parse", f"{rev or 'HEAD'}^{{commit}}").stdout.strip()
    name = f"kmod-{release}{flavour}"
    directory = paths.space_free(paths.builds() / (name if rev is None else f"{name}-{commit[:12]}"),
                                 "the module build")
    directory.mkdir(parents=True, exist_ok=True)
    config = kdir / ".config"
    mods = module_list(tree, rev, read_config(config) if config.is_file() else {})
    if not kbuild_modules(mods.kbuild):
        ui.note(f"ktest: the series changes no module's sources: no patched modules to build for {release}")
        return BuildResult("kmod", directory, [], directory / "build.log", [], None, 0.0, release)
    sources = _source_list(tree, mods, rev)
    _stage_sources(tree, rev, commit, sources, directory)
    kbuild_text = paths.kbuild_head().read_text() + mods.kbuild
    kb = directory / "Kbuild"
    if not kb.exists() or kb.read_text() != kbuild_text:
        kb.write_text(kbuild_text)
    jobs = jobs or os.cpu_count() or 1
    argv = ["make", "-C", str(kdir), f"M={directory}", f"-j{jobs}", "modules"]
    log = directory / "build.log"
    start = time.monotonic()
    meta = {"kind": "kmod", "tree": str(tree.path), "commit": commit, "base": tree.base,
            "release": release, "headers": str(kdir), "sources": sources, "modules_from": mods.origin,
            "command": argv, "toolchain": toolchain(), "started": time.time()}
    artifacts = [directory / f"{m}.ko" for m in kbuild_modules(kbuild_text)]
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
    tools.require(tools.KMOD)
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
    meta_path = write_record(directory, argv, {}, meta)
    if not ok:
        err = summarise_failure(log, "module build", (directory, f"{tree.path}/" if rev is None else f"{rev}:"))
        if "modpost" in err.message and "undefined" in err.message and mods.origin.startswith("derived"):
            err.hint = ("A module the series needs is not in the kernel it builds against: list it "
                        "(and what it needs) in the project's kmod/Kbuild and kmod/sources.")
        raise err
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
