"""Full kernel builds: ``make O=<build dir>`` with ccache, cached by what goes in.

The artifacts (bzImage, the modules_install tree, System.map, .config, the
log, ``metadata.json`` and ``reproducer.sh``) go to a directory named by a
key of the tree commit (plus any uncommitted diff), the .config and the
toolchain, so asking again for the same kernel costs a few git and
``gcc --version`` calls and never runs make.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import kconfig, paths, tools, ui
from .kprereq import check_prerequisites
from .artifacts import ERROR_RE, WARNING_RE, summarise_failure, toolchain, write_record
from .errors import BuildError
from .run import Stream, run
from .tree import Tree, is_clean

BZIMAGE = "arch/x86/boot/bzImage"
STAMP = "ktest-build.json"          # in the build dir: the last build's line count and result
SETTING = "kernel.built"            # $KTEST_HOME/config: the last kernel built
# The guest ktest builds runs ringtest, whose two threads are pinned to two
# vCPUs: tinyconfig alone is uniprocessor (set_affinity fails).
DEFAULT_FRAGMENTS = ["guest", "ringtest", "net"]
# Bump when the artifact layout or the make command changes.
_SCHEMA = 1
# Compile lines of a cold tinyconfig + guest build of 6.1, for the progress
# bar before this build directory has a count of its own.
DEFAULT_COLD_COMPILES = 1170
_QUIET_RE = re.compile(r"^  (?P<cmd>[A-Z][A-Z0-9_]*)(?: \[M\])?\s+(?P<target>\S+)")
TIMEOUT = 4 * 3600
LOG_LINE_EVERY = 60     # seconds between progress lines when stderr is not a terminal


@dataclass
class KernelBuild:
    directory: Path               # the artifacts, $KTEST_HOME/builds/kernel-<key>
    build_dir: Path               # make's O=
    release: str
    bzimage: Path
    system_map: Path
    config: Path
    modules_root: Path            # INSTALL_MOD_PATH: modules are in lib/modules/<release>
    commit: str
    key: str
    log: Path
    metadata: Path
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    @property
    def module_dir(self) -> Path:
        return self.modules_root / "lib" / "modules" / self.release


def default_cc() -> str:
    return "ccache gcc" if shutil.which("ccache") else "gcc"


def make_argv(tree: Tree, build_dir: Path, *targets: str, jobs: int | None = None,
              cc: str | None = None) -> list[str]:
    # LOCALVERSION= (set, empty): with it unset, setlocalversion appends "+"
    # for a git tree; CONFIG_LOCALVERSION_AUTO=n (configs/ktest.config)
    # keeps -g<hash> off.  Either would make the release differ from the
    # one the modules were installed under.
    return ["make", "-C", str(tree.path), f"O={build_dir}", f"-j{jobs or os.cpu_count() or 1}",
            f"CC={cc or default_cc()}", "LOCALVERSION=", *targets]


def _source_state(tree: Tree) -> tuple[str, str]:
    """(commit, hash of the uncommitted diff or '')."""
    commit = tree.git("rev-parse", "HEAD").stdout.strip()
    # git status refreshes the index (files another checkout left racily
    # clean would otherwise be hashed again on every diff); diff only if dirty.
    if is_clean(tree):
        return commit, ""
    diff = tree.git("diff", "HEAD", "--binary").stdout
    return commit, hashlib.sha256(diff.encode()).hexdigest() if diff else ""


def _toolchain_id(cc: str) -> dict[str, str]:
    tc = {k: v for k, v in toolchain().items() if k != "host"}
    tc["cc"] = cc
    ld = run(["ld", "--version"], timeout=30, check=False).stdout.splitlines()
    tc["ld"] = ld[0] if ld else ""
    return tc


def build_key(commit: str, dirty: str, config_sha: str, toolchain: dict[str, str]) -> str:
    raw = json.dumps({"schema": _SCHEMA, "commit": commit, "dirty": dirty, "config": config_sha,
                      "toolchain": toolchain}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def _from_meta(meta_path: Path, cached: bool) -> KernelBuild | None:
    try:
        m = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if m.get("kind") != "kernel" or m.get("result") != "pass":
        return None
    d = meta_path.parent
    kb = KernelBuild(d, Path(m["build_dir"]), m["release"], d / "bzImage", d / "System.map", d / "config",
                     d / "modules", m["commit"], m["key"], d / "build.log", meta_path, m.get("warning_lines", []),
                     0.0 if cached else m.get("seconds", 0.0), cached)
    if not all(p.exists() for p in (kb.bzimage, kb.system_map, kb.config)):
        return None
    return kb


def last() -> KernelBuild:
    """The kernel ``ktest build --kernel`` made last."""
    p = paths.get_setting(SETTING)
    kb = _from_meta(Path(p) / "metadata.json", True) if p else None
    if kb is None:
        raise BuildError("no kernel built by ktest yet", hint="Run: ktest build --kernel")
    return kb


def all_builds() -> list[KernelBuild]:
    found = []
    for meta in sorted(paths.builds().glob("kernel-*/metadata.json")):
        kb = _from_meta(meta, True)
        if kb is not None:
            found.append(kb)
    return found


def for_image(image: Path) -> KernelBuild | None:
    """The ktest build a bzImage came from (the artifact or the build dir's copy)."""
    image = image.resolve()
    builds = all_builds()
    for kb in builds:
        if image in (kb.bzimage.resolve(), (kb.build_dir / BZIMAGE).resolve()):
            if image == kb.bzimage.resolve() or _same_file(image, kb.bzimage):
                return kb
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def image_release(image: Path) -> str:
    """The release a bzImage carries in its boot header (kernel_version at 0x20e)."""
    with open(image, "rb") as f:
        head = f.read(0x210)
        if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
            raise BuildError(f"{image} is not a bzImage (no x86 boot header)")
        off = int.from_bytes(head[0x20e:0x210], "little")
        f.seek(off + 0x200)
        text = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    if not text.strip():
        raise BuildError(f"{image}: no kernel version string in the boot header")
    return text.split()[0]


def fragments_of(kb: KernelBuild) -> list[str] | None:
    """The fragment names a build was configured with (ktest.config left out),
    e.g. ["guest", "ringtest", "net"]; None for a build of a given .config."""
    try:
        frags = json.loads(kb.metadata.read_text())["inputs"]["fragments"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [Path(f).stem for f in frags if Path(f).name != f"{kconfig.PINNED}.config"]


def find_release(release: str, fragments: list[str] | None = None) -> KernelBuild | None:
    """The ktest build of ``release`` to build modules against: the last one
    built, else the newest; only one whose build dir still holds its .config
    (a build dir reconfigured since would give modules for another kernel),
    and with ``fragments``, only one configured with exactly those (the
    default guest: a build from before a default fragment was added lacks
    what the tests load, e.g. pktgen)."""
    try:
        latest = last()
    except BuildError:
        latest = None
    cands = [latest] if latest is not None and latest.release == release else []
    cands += sorted((kb for kb in all_builds() if kb.release == release),
                    key=lambda kb: kb.metadata.stat().st_mtime, reverse=True)
    for kb in cands:
        if _same_file(kb.config, kb.build_dir / ".config") and (fragments is None or fragments_of(kb) == fragments):
            return kb
    return None


# --- running make ---------------------------------------------------------------

def _estimate(build_dir: Path, config_sha: str) -> int | None:
    """Compile lines to expect, or None for an incremental build (unknown, usually few)."""
    if (build_dir / "vmlinux").exists():
        return None
    try:
        st = json.loads((build_dir / STAMP).read_text())
        return st["cold_compiles"].get(config_sha) or st.get("last_cold_compiles") or DEFAULT_COLD_COMPILES
    except (OSError, ValueError, KeyError, AttributeError):
        return DEFAULT_COLD_COMPILES


def _run_make(argv: list[str], log: Path, title: str, estimate: int | None, env: dict[str, str],
              strip: str) -> tuple[int | None, int]:
    """make with a progress bar fed from Kbuild's quiet lines; (exit status, compile count)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    compiles = 0
    status = None
    start = time.monotonic()
    next_line = start + LOG_LINE_EVERY
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("[dim]{task.fields[now]}")]
    with open(log, "w") as logf, Progress(*columns, console=ui.err, transient=True) as bar, \
            Stream(argv, env=env) as proc:
        logf.write(f"$ {shlex.join(argv)}\n")
        task = bar.add_task(title, total=estimate, now="")
        for line in proc.lines(start + TIMEOUT):
            if line is None:
                raise BuildError(f"kernel build timed out after {TIMEOUT} s", log=log)
            logf.write(line + "\n")
            m = _QUIET_RE.match(line)
            if m is None:
                continue
            if m.group("cmd") == "CC":
                compiles += 1
                if estimate is not None and compiles > estimate:
                    estimate = compiles + max(10, compiles // 20)
                    bar.update(task, total=estimate)
            bar.update(task, completed=compiles, now=m.group("target").removeprefix(strip)[-60:])
            if not ui.err.is_terminal and time.monotonic() >= next_line:
                # A log file gets no live bar: a line a minute says the build goes on.
                next_line = time.monotonic() + LOG_LINE_EVERY
                ui.err.print(f"  {title}: {compiles}" + (f" of ~{estimate}" if estimate else "")
                             + f" compiled, {time.monotonic() - start:.0f} s", markup=False)
        status = proc.wait(60)
    ui.err.print(f"[green]✓[/] {title} [dim]({compiles} compiled, {time.monotonic() - start:.1f} s)[/]")
    return status, compiles


def _save_stamp(build_dir: Path, config_sha: str, compiles: int, cold: bool, result: str) -> None:
    p = build_dir / STAMP
    try:
        st = json.loads(p.read_text())
    except (OSError, ValueError):
        st = {}
    st.setdefault("cold_compiles", {})
    if cold and result == "pass":
        st["cold_compiles"][config_sha] = compiles
        st["last_cold_compiles"] = compiles
    st.update(last_result=result, last_compiles=compiles, time=time.time())
    p.write_text(json.dumps(st, indent=2) + "\n")


def _first_error(log: Path, tree: Path) -> BuildError:
    err = summarise_failure(log, "kernel build")
    err.message = err.message.replace(f"{tree}/", "")
    return err


def warning_lines(text: str, tree: Path) -> list[str]:
    return list(dict.fromkeys(m.group(0).replace(f"{tree}/", "") for m in WARNING_RE.finditer(text)))


def error_lines(text: str, tree: Path) -> list[str]:
    return list(dict.fromkeys(m.group(0).replace(f"{tree}/", "") for m in ERROR_RE.finditer(text)))


def build_kernel(tree: Tree, build_dir: Path, *, jobs: int | None = None, cc: str | None = None,
                 force: bool = False, inputs: dict | None = None) -> KernelBuild:
    """Build the kernel configured in ``build_dir/.config`` from the tree's current sources.

    ``inputs`` (the base and fragments, when ktest made the .config) goes
    into metadata.json.
    """
    cc = cc or default_cc()
    build_dir = paths.space_free(build_dir.resolve(), "the kernel build")
    paths.space_free(tree.path, "the kernel build")
    config = build_dir / ".config"
    if not config.exists():
        raise BuildError(f"no .config in {build_dir}", hint="Make one with: ktest config --out DIR")
    values = kconfig.read_config(config)
    if values.get("CONFIG_LOCALVERSION_AUTO") == "y":
        raise BuildError(f"{config}: CONFIG_LOCALVERSION_AUTO=y would append -g<commit> to the release, "
                         "and the modules would not match the kernel",
                         hint="Apply configs/ktest.config last (ktest config does), or set "
                              "'# CONFIG_LOCALVERSION_AUTO is not set'.")
    commit, dirty = _source_state(tree)
    config_sha = kconfig.file_sha256(config)
    toolchain = _toolchain_id(cc)
    key = build_key(commit, dirty, config_sha, toolchain)
    directory = paths.builds() / f"kernel-{key}"
    if not force:
        kb = _from_meta(directory / "metadata.json", True)
        if kb is not None:
            paths.set_setting(SETTING, str(directory))
            return kb
    check_prerequisites(values)
    tools.require(tools.KERNEL)
    argv = make_argv(tree, build_dir, "bzImage", "modules", jobs=jobs, cc=cc)
    log = build_dir / "ktest-build.log"
    cold = not (build_dir / "vmlinux").exists()
    estimate = _estimate(build_dir, config_sha)
    # ccache's default directory is under $HOME; CCACHE_* from the caller (a
    # benchmark's cold cache) pass through.
    env = {"KBUILD_BUILD_USER": "ktest", "KBUILD_BUILD_HOST": "ktest"}
    start = time.monotonic()
    meta = {"kind": "kernel", "tree": str(tree.path), "commit": commit, "dirty_diff_sha256": dirty or None,
            "base": tree.base, "build_dir": str(build_dir), "config_sha256": config_sha, "key": key,
            "inputs": inputs or {}, "command": argv, "toolchain": toolchain, "started": time.time(),
            "ccache_dir": os.environ.get("CCACHE_DIR")}
    status, compiles = _run_make(argv, log, f"building Linux in {build_dir.name} "
                                 f"({tree.path.name}@{commit[:12]}{'+dirty' if dirty else ''})",
                                 estimate, env, f"{tree.path}/")
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    warnings = warning_lines(text, tree.path)
    meta.update(seconds=round(seconds, 2), compiles=compiles, warnings=len(warnings), warning_lines=warnings)
    if status != 0:
        meta.update(result="fail", errors=error_lines(text, tree.path)[:20])
        _save_stamp(build_dir, config_sha, compiles, cold, "fail")
        (build_dir / "ktest-metadata.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        raise _first_error(log, tree.path)
    if _source_state(tree) != (commit, dirty):
        raise BuildError(f"{tree.path} changed while the kernel was building; nothing was cached",
                         hint="Build again once nothing else is changing the tree.", log=log)
    _save_stamp(build_dir, config_sha, compiles, cold, "pass")
    release = (build_dir / "include/config/kernel.release").read_text().strip()
    kb = _collect(tree, build_dir, directory, key, commit, release, argv, log, meta, cc, jobs)
    paths.set_setting(SETTING, str(directory))
    if warnings:
        ui.note(f"{len(warnings)} compiler warning(s), first: {warnings[0]}")
    return kb


def _collect(tree: Tree, build_dir: Path, directory: Path, key: str, commit: str, release: str,
             argv: list[str], log: Path, meta: dict, cc: str, jobs: int | None) -> KernelBuild:
    """Install modules and copy the artifacts into a new directory, renamed into place whole."""
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    install = make_argv(tree, build_dir, "modules_install", jobs=jobs, cc=cc)
    install.append(f"INSTALL_MOD_PATH={directory / 'modules'}")
    tmp_install = install[:-1] + [f"INSTALL_MOD_PATH={tmp / 'modules'}"]
    with ui.step(f"installing the modules of {release}"):
        run(tmp_install, log=tmp / "modules_install.log", timeout=1800, what="make modules_install")
    # Installed into the temporary directory and renamed whole, so an
    # interrupted install never looks like a cached kernel.
    for src, name in ((build_dir / BZIMAGE, "bzImage"), (build_dir / "System.map", "System.map"),
                      (build_dir / ".config", "config")):
        shutil.copyfile(src, tmp / name)
    shutil.copyfile(log, tmp / "build.log")
    meta.update(result="pass", release=release, artifacts=["bzImage", "System.map", "config",
                                                           f"modules/lib/modules/{release}"],
                bzimage_sha256=kconfig.file_sha256(tmp / "bzImage"))
    write_record(tmp, argv, {}, meta)
    with open(tmp / "reproducer.sh", "a") as f:
        f.write(f"{shlex.join(install)}\n")
    # The reproducer cds into the artifact dir, which is where it lives once renamed.
    text = (tmp / "reproducer.sh").read_text().replace(shlex.quote(str(tmp)), shlex.quote(str(directory)))
    (tmp / "reproducer.sh").write_text(text)
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    kb = _from_meta(directory / "metadata.json", False)
    assert kb is not None
    kb.cached = False
    return kb
