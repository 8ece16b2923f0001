"""The build half of ``series check --full``: W=1, sparse, clang and i386
builds of only the objects a patch touches, as netdev's CI does per patch.

Three out-of-tree build directories under ``$KTEST_HOME/check/<tree>/``
share one source: a linked worktree of the kernel tree (``src/``), moved
from commit to commit, so the user's own work tree and branch never move
and ``make`` sees only the files a patch changed as new.

    gcc/    x86_64, gcc (ccache): W=1, then sparse (C=2) on the same objects
    clang/  x86_64, LLVM=1: W=1
    i386/   ARCH=i386, gcc: W=1

The configuration is ktest's guest config plus configs/check.config (the
vDPA simulator), made once with kconfiglib; the clang and i386 directories
take the same .config through ``make olddefconfig``.  Nothing is built
whole: the first object built in each directory pays for ``prepare``
(objtool, modpost, generated headers), and after that each patch costs the
compiles of its objects (``objects``), before and after it; a result is
cached by object and source tree id, and ccache replays a compile it has seen.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import kconfig, paths, tools, ui
from ..errors import BuildError
from ..run import run
from ..tree import Tree

FLAVOURS = ("gcc", "clang", "i386")
# Programs the builds run beyond a kernel build's own, and their Debian packages.
FRAGMENTS = ["guest", "check"]
MAKE_TIMEOUT = 3600
# file:line[:col]: warning|error: message  (gcc, clang, sparse), and objtool's "file.o: warning: ..."
DIAG_RE = re.compile(r"^(?P<file>[^\s:]+):(?:(?P<line>\d+):(?:\d+:)?)? (?P<kind>warning|error|fatal error): "
                     r"(?P<msg>.*)$", re.M)
NO_RULE_RE = re.compile(r"No rule to make target '([^']+)'")
_SCHEMA = 2


@dataclass
class Diag:
    file: str
    line: int
    kind: str           # warning | error
    msg: str

    def key(self) -> tuple[str, str]:
        # Line numbers move when a patch adds code above a warning; the
        # file and text say whether it is the same warning.
        return self.file, re.sub(r"\s+", " ", self.msg)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.msg}" if self.line else f"{self.file}: {self.kind}: {self.msg}"


@dataclass
class ObjectBuild:
    """One flavour's diagnostics for some objects at one source state."""
    warnings: list[Diag] = field(default_factory=list)      # the compiler's (W=1)
    sparse: list[Diag] = field(default_factory=list)        # gcc flavour only
    errors: list[Diag] = field(default_factory=list)
    failed: str = ""                                        # why the build failed, if it did
    skipped: list[str] = field(default_factory=list)        # objects with no Kbuild rule in this config


def parse_diags(text: str, src: Path) -> list[Diag]:
    out, seen = [], set()
    prefixes = (f"{src}/", "./", "../src/")
    for m in DIAG_RE.finditer(text):
        f = m.group("file")
        for p in prefixes:
            f = f.removeprefix(p)
        d = Diag(f, int(m.group("line") or 0), "error" if "error" in m.group("kind") else "warning", m.group("msg"))
        if (d.file, d.line, d.msg) not in seen:      # a header's warning, once per object including it
            seen.add((d.file, d.line, d.msg))
            out.append(d)
    return out


def added(before: list[Diag], after: list[Diag], lines: dict[str, set[int]] | None = None) -> list[Diag]:
    """Diagnostics ``after`` has more of than ``before`` (by file and text).

    When a key has more instances after, the extra ones shown are those on
    lines the patch added (``lines``: file -> new line numbers), else the last.
    """
    had = Counter(d.key() for d in before)
    by_key: dict[tuple, list[Diag]] = {}
    for d in after:
        by_key.setdefault(d.key(), []).append(d)
    out = []
    for k, ds in by_key.items():
        extra = len(ds) - had.get(k, 0)
        if extra <= 0:
            continue
        mine = [d for d in ds if lines and d.line in lines.get(d.file, ())]
        rest = [d for d in ds if d not in mine]
        out += (mine + rest[::-1])[:extra]
    return sorted(out, key=lambda d: (d.file, d.line))


class Workspace:
    """The check worktree and the three build directories of one tree."""

    def __init__(self, tree: Tree, root: Path | None = None, jobs: int | None = None):
        self.tree = tree
        self.root = root or paths.home() / "check" / tree.path.name
        self.src = self.root / "src"
        self.jobs = jobs or os.cpu_count() or 1
        self.ccache = shutil.which("ccache") is not None
        self.state = ""             # the commit src/ holds
        self._cache: dict[str, dict] = {}
        self._config: dict[str, str] | None = None

    def dir(self, flavour: str) -> Path:
        return self.root / flavour

    # --- setting up ---------------------------------------------------------------

    def prepare(self) -> None:
        tools.require(tools.FULLCHECK, optional_too=True)
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.src / ".git").exists():
            self.tree.git("worktree", "prune", timeout=60)
            with ui.step(f"adding the check worktree {self.src}"):
                self.tree.git("worktree", "add", "--detach", "-f", str(self.src), self.tree.base, timeout=1800)
        cfg = kconfig.configure(self.tree, "tinyconfig", FRAGMENTS, out=self.root / "config",
                                cc=self._cc("gcc"))
        if cfg.mismatches:
            m = cfg.mismatches[0]
            raise BuildError(f"{len(cfg.mismatches)} value(s) of {', '.join(FRAGMENTS)} not met in {cfg.config}: "
                             f"CONFIG_{m.symbol}={m.requested} ({m.where}): {m.reason}",
                             hint="Run: ktest config -f guest -f check  (it lists them)")
        for fl in FLAVOURS:
            self._configure(fl, cfg.config)

    def _configure(self, flavour: str, config: Path) -> None:
        """Copy the .config in when it changed (make then syncs only what differs)."""
        d = self.dir(flavour)
        d.mkdir(parents=True, exist_ok=True)
        stamp = d / "ktest-check-config.sha256"
        sha = kconfig.file_sha256(config)
        if stamp.exists() and stamp.read_text().strip() == sha and (d / ".config").exists():
            return
        shutil.copyfile(config, d / ".config")
        if flavour != "gcc":
            # ARCH=i386 turns 64BIT off; LLVM=1 sets the clang and lld symbols.
            self.make(flavour, ["olddefconfig"], what=f"make olddefconfig ({flavour})")
        stamp.write_text(sha + "\n")
        self._cache.pop(flavour, None)
        (d / "ktest-check-results.json").unlink(missing_ok=True)

    def _cc(self, flavour: str) -> str:
        cc = "clang" if flavour == "clang" else "gcc"
        return f"ccache {cc}" if self.ccache else cc

    def argv(self, flavour: str, targets: list[str], extra: list[str] = ()) -> list[str]:
        # -Otarget: each object's compiler output comes out in one piece, after its "CC" line.
        argv = ["make", "-C", str(self.src), f"O={self.dir(flavour)}", f"-j{self.jobs}", "-Otarget", "LOCALVERSION=",
                f"CC={self._cc(flavour)}"]
        if flavour == "clang":
            argv.append("LLVM=1")
        if flavour == "i386":
            argv.append("ARCH=i386")
        return argv + list(extra) + targets

    def make(self, flavour: str, targets: list[str], extra: list[str] = (), *, what: str, check: bool = True):
        log = self.dir(flavour) / "ktest-check-make.log"
        env = {"KBUILD_BUILD_USER": "ktest", "KBUILD_BUILD_HOST": "ktest", "LC_ALL": "C"}
        r = run(self.argv(flavour, targets, extra), env=env, timeout=MAKE_TIMEOUT, check=False, log=log, what=what)
        text = log.read_text(errors="replace")
        if check and r.returncode != 0:
            errs = [d for d in parse_diags(text, self.src) if d.kind == "error"]
            raise BuildError(f"{what} failed" + (f": {errs[0]}" if errs else ""), log=log)
        return r.returncode, text

    def checkout(self, commit: str) -> None:
        if self.state != commit:
            run(["git", "-C", str(self.src), "checkout", "-q", "-f", "--detach", commit], timeout=600,
                what=f"git checkout {commit[:12]} in {self.src}")
            self.state = commit

    # --- which objects ------------------------------------------------------------

    def objects(self, commit: str, files: list[str]) -> tuple[list[str], list[str]]:
        from .objects import objects

        if self._config is None:
            self._config = kconfig.read_config(self.dir("gcc") / ".config")
        return objects(self.tree, commit, files, self._config)

    # --- building -----------------------------------------------------------------

    def _results(self, flavour: str) -> dict:
        if flavour not in self._cache:
            p = self.dir(flavour) / "ktest-check-results.json"
            key = self._cache_key(flavour)
            try:
                doc = json.loads(p.read_text())
                self._cache[flavour] = doc if doc.get("key") == key else {"key": key, "objects": {}}
            except (OSError, ValueError):
                self._cache[flavour] = {"key": key, "objects": {}}
        return self._cache[flavour]

    def _cache_key(self, flavour: str) -> str:
        cc = self._cc(flavour).split()[-1]
        ver = run([cc, "--version"], timeout=30, check=False).stdout.splitlines()[:1]
        sp = run(["sparse", "--version"], timeout=30, check=False).stdout.strip() if flavour == "gcc" else ""
        raw = f"{_SCHEMA}\0{flavour}\0{ver}\0{sp}\0{(self.dir(flavour) / '.config').read_bytes()!r}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def save(self) -> None:
        for fl, doc in self._cache.items():
            (self.dir(fl) / "ktest-check-results.json").write_text(json.dumps(doc) + "\n")

    def build(self, flavour: str, objs: list[str], commit: str, *, use_cache: bool = True) -> ObjectBuild:
        """W=1 (and for gcc, sparse) diagnostics of ``objs`` at ``commit``."""
        tree_id = self.tree.git("rev-parse", f"{commit}^{{tree}}").stdout.strip()
        cache = self._results(flavour)["objects"]
        res = ObjectBuild()
        todo = []
        for o in objs:
            hit = cache.get(f"{o}@{tree_id}") if use_cache else None
            if hit is None:
                todo.append(o)
            else:
                self._merge(res, o, hit)
        if todo:
            self.checkout(commit)
            for o, rec in self._build_now(flavour, todo).items():
                cache[f"{o}@{tree_id}"] = rec
                self._merge(res, o, rec)
        return res

    @staticmethod
    def _merge(res: ObjectBuild, obj: str, rec: dict) -> None:
        if rec.get("skipped"):
            res.skipped.append(obj)
            return
        res.warnings += [Diag(**d) for d in rec["warnings"]]
        res.sparse += [Diag(**d) for d in rec.get("sparse", [])]
        res.errors += [Diag(**d) for d in rec.get("errors", [])]
        if rec.get("failed") and not res.failed:
            res.failed = rec["failed"]

    def _build_now(self, flavour: str, objs: list[str]) -> dict[str, dict]:
        d = self.dir(flavour)
        out: dict[str, dict] = {}
        objs = list(objs)
        while objs:
            for o in objs:
                # Compiled again even when make thinks it is current: warnings
                # only come from a compile (ccache replays them on a hit).
                (d / o).unlink(missing_ok=True)
            rc, text = self.make(flavour, objs, ["-k", "W=1"], what=f"W=1 build ({flavour})", check=False)
            missing = [m for m in NO_RULE_RE.findall(text) if m in objs]
            if missing:
                for m in missing:
                    out[m] = {"skipped": True}
                objs = [o for o in objs if o not in missing]
                continue
            diags = by_object(text, objs, self.src)
            sparse: dict[str, list[Diag]] = {}
            if flavour == "gcc" and rc == 0:
                _, stext = self.make(flavour, objs, ["W=1", "C=2"], what="sparse", check=False)
                sparse = by_object(stext, objs, self.src)
            for o in objs:
                mine = diags.get(o, [])
                errs = [x for x in mine if x.kind == "error"]
                failed = "" if rc == 0 else (str(errs[0]) if errs else "")
                if rc != 0 and not failed and o == objs[0]:
                    failed = f"make exited {rc}; log {d / 'ktest-check-make.log'}"
                out[o] = {"warnings": [vars(x) for x in mine if x.kind == "warning"],
                          "errors": [vars(x) for x in errs],
                          "sparse": [vars(x) for x in sparse.get(o, []) if x not in mine], "failed": failed}
            break
        return out


STEP_RE = re.compile(r"^  (?P<cmd>CC|CHECK|AS)(?: \[M\])?\s+(?P<target>\S+)$", re.M)


def by_object(text: str, objs: list[str], src: Path) -> dict[str, list[Diag]]:
    """Diagnostics per object, from make output grouped per target (make -O).

    Each object's output starts with Kbuild's quiet line ("  CC [M]  x.o",
    "  CHECK   x.c"); what precedes the first one goes to the first object.
    """
    out: dict[str, list[Diag]] = {o: [] for o in objs}
    current = objs[0]
    pos = 0
    marks = [(m.start(), m.group("target")) for m in STEP_RE.finditer(text)]
    for start, target in marks + [(len(text), None)]:
        for dg in parse_diags(text[pos:start], src):
            out.setdefault(current, []).append(dg)
        pos = start
        if target is not None:
            target = target.removeprefix(f"{src}/")      # sparse's CHECK line names the source absolutely
            obj = target[:-2] + ".o" if target.endswith((".c", ".S")) else target
            current = obj if obj in out else current
    return out
