"""Prepare a kernel tree to patch: Debian's linux-source or a user's git tree.

The Debian tree is extracted once into the cache, turned into a git repo
with a pristine base commit and a version tag, and reused afterwards.
A user's tree is never modified: ktest works in a linked worktree of it
under the cache, so the user's checkout, branches and index stay as they
are.

Linked worktrees share their repository's config and refs, so what ktest
keeps per tree must not live there: its state is a git-config file in the
worktree's own git dir (``<git-dir>/ktest.config``), and a linked
worktree's series branch and refs carry the worktree's name.  Two ktest
worktrees of one repository (two KTEST_HOMEs, or a ktest tree given as
``--tree``) then never move each other's branch.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import paths, tools, ui
from .errors import TreeError
from .run import run

# The series' base: the Debian kernel source patches/ is written for
# (bookworm's newest LTS; the series moved from 6.1 in issue 18).
# ``tree prepare --debian X.Y`` takes any other installed linux-source-X.Y.
DEFAULT_DEBIAN = "6.12"
SOURCE_DIR = Path("/usr/src")
TREE_BYTES = int(2.5 * 2**30)   # 6.1.192 extracted and committed: 2.0 GiB (du), and room to build
SERIES_BRANCH = "ktest/series"
# Commits ktest makes in its own trees carry a fixed identity, so that the
# same inputs give the same commit ids.
KTEST_IDENT = {
    "GIT_AUTHOR_NAME": "ktest",
    "GIT_AUTHOR_EMAIL": "ktest@localhost",
    "GIT_COMMITTER_NAME": "ktest",
    "GIT_COMMITTER_EMAIL": "ktest@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
}


@dataclass
class Tree:
    path: Path          # the work tree ktest applies patches in
    base: str           # base commit id
    base_ref: str       # the tag or ref the base was named by
    version: str        # kernel version from the Makefile, e.g. 6.1.192
    kind: str           # "debian" or "user"
    branch: str = SERIES_BRANCH
    refs: str = "refs/ktest"   # where ktest keeps its refs (backups, mail state)

    def git(self, *args: str, **kw):
        kw.setdefault("timeout", 300)
        return run(["git", "-C", str(self.path), *args], **kw)

    def has_history(self) -> bool:
        """Whether the base has parents: a Debian source tree is one root
        commit, so a commit id a patch names (Fixes:) cannot be looked up."""
        return self.git("rev-parse", "--verify", "--quiet", f"{self.base}^", check=False).returncode == 0

    def state(self, *args: str, **kw):
        """git config on this worktree's own ktest state file."""
        kw.setdefault("timeout", 30)
        return run(["git", "config", "--file", str(state_file(self.path)), *args], **kw)


def git_dir(path: Path) -> Path:
    """A work tree's own git dir: .git, or .git/worktrees/<name> for a linked one."""
    dot = path / ".git"
    if dot.is_file():
        text = dot.read_text().strip()
        if text.startswith("gitdir:"):
            g = Path(text.split(":", 1)[1].strip())
            return g if g.is_absolute() else (path / g).resolve()
    return dot


def state_file(path: Path) -> Path:
    return git_dir(path) / "ktest.config"


def _names(path: Path, kind: str) -> tuple[str, str]:
    """The series branch and refs namespace of a work tree."""
    g = git_dir(path)
    if g.parent.name == "worktrees":
        return f"{SERIES_BRANCH}-{g.name}", f"refs/ktest/wt/{g.name}"
    return SERIES_BRANCH, "refs/ktest"


def makefile_version(tree: Path) -> str:
    try:
        text = (tree / "Makefile").read_text(errors="replace")
    except OSError as e:
        raise TreeError(f"{tree}: no top-level Makefile; is this a kernel tree?") from e
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=\s*(\S*)\s*$", text, re.M)
        if m is None and key != "EXTRAVERSION":
            raise TreeError(f"{tree}/Makefile: no {key} line; is this a kernel tree?")
        fields[key] = m.group(1) if m else ""
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}{fields['EXTRAVERSION']}"


def drop_debian_ignore_block(gitignore: Path) -> bool:
    """Remove Debian's closing block that ignores everything at the top level.

    Without this, files a patch adds at a new top-level path would be
    invisible to git.  Returns whether the block was found.
    """
    if not gitignore.exists():
        return False
    lines = gitignore.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if "Debian packaging" in line:
            start = i
            while start > 0 and lines[start - 1].strip() == "#":
                start -= 1
            while start > 0 and lines[start - 1].strip() == "":
                start -= 1
            gitignore.write_text("".join(lines[:start]))
            return True
    return False


def _tarball_stamp(tarball: Path) -> str:
    st = tarball.stat()
    return f"{tarball.resolve()}:{st.st_size}:{int(st.st_mtime)}"


def debian_package(series: str) -> str:
    """The Debian package with a kernel series' source: '6.12' -> 'linux-source-6.12'."""
    return f"linux-source-{series}"


def debian_tarball(series: str) -> Path:
    return SOURCE_DIR / f"{debian_package(series)}.tar.xz"


def installed_debian_series() -> list[str]:
    """The X.Y of every linux-source-X.Y.tar.xz under /usr/src, oldest first."""
    found = [m.group(1) for f in SOURCE_DIR.glob("linux-source-*.tar.xz")
             if (m := re.fullmatch(r"linux-source-(\d+\.\d+)\.tar\.xz", f.name))]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def check_series(series: str | None) -> str:
    if not re.fullmatch(r"\d+\.\d+", series or ""):
        raise TreeError(f"--debian {series!r}: expected a kernel series like 6.12 (Debian's linux-source-X.Y)")
    return series


def ensure_debian_source(series: str = DEFAULT_DEBIAN, tarball: Path | None = None) -> Path:
    """linux-source-<series>'s tarball; installed with apt-get when root, else an
    error naming the package to install (and the series that are installed)."""
    package = debian_package(series)
    tarball = tarball or debian_tarball(series)
    if tarball.exists():
        return tarball
    if tarball != debian_tarball(series):
        raise TreeError(f"source tarball {tarball} does not exist")
    if os.geteuid() != 0:
        others = [v for v in installed_debian_series() if v != series]
        also = (f" (installed: {', '.join(debian_package(v) for v in others)}; "
                f"`ktest tree prepare --debian {others[-1]}` prepares that one)") if others else ""
        raise TreeError(f"{tarball} is missing: Debian's {package} is not installed",
                        hint=f"Install it with: sudo apt-get install {package}{also}")
    with ui.step(f"installing {package} with apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-q"], env=env, timeout=600, what="apt-get update")
        r = run(["apt-get", "install", "-y", "-q", package], env=env, timeout=1200, check=False,
                what=f"apt-get install {package}")
    if r.returncode != 0:
        raise TreeError(f"apt-get install {package} failed (exit {r.returncode}): "
                        f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}",
                        hint=f"Is {package} in this machine's apt sources? (apt-cache policy {package})")
    if not tarball.exists():
        raise TreeError(f"{package} is installed but {tarball} is still missing")
    return tarball


def _read_state(path: Path) -> dict[str, str]:
    f = state_file(path)
    if not f.exists() and not (path / ".git").is_file():
        # Trees prepared before the state file kept it in the repository's
        # config; a main work tree may take it over, a linked one never (its
        # repository's config belongs to another tree).
        for key, value in _ktest_keys(path / ".git" / "config").items():
            run(["git", "config", "--file", str(f), key, value], timeout=30)
    return _ktest_keys(f)


def _ktest_keys(config: Path) -> dict[str, str]:
    return {k: v for k, v in paths.read_config(config).items() if k.startswith("ktest.")}


def _load(path: Path) -> Tree | None:
    """Read back a tree ktest prepared earlier, or None if it is gone."""
    if not (path / ".git").exists():
        return None
    cfg = _read_state(path)
    if "ktest.base" not in cfg:
        return None
    kind = cfg.get("ktest.kind", "debian")
    branch, refs = _names(path, kind)
    return Tree(path=path, base=cfg["ktest.base"], base_ref=cfg.get("ktest.baseref", cfg["ktest.base"]),
                version=cfg.get("ktest.version", ""), kind=kind, branch=branch, refs=refs)


def _remember(tree: Tree, **extra: str) -> None:
    for key, value in {"base": tree.base, "baseref": tree.base_ref, "version": tree.version,
                       "kind": tree.kind, **extra}.items():
        tree.state(f"ktest.{key}", value)
    paths.set_setting("tree.path", str(tree.path))


def prepare_debian(series: str = DEFAULT_DEBIAN, tarball: Path | None = None) -> Tree:
    """Debian's linux-source-<series> as a git tree under trees/debian-<version>,
    its pristine base tagged v<version>-debian; reused (and made the current
    tree) when already prepared.  One tree per release: 6.1 and 6.12 side by side."""
    tarball = ensure_debian_source(check_series(series), tarball)
    tools.require(tools.TREE)
    stamp = _tarball_stamp(tarball)
    root = paths.trees()
    root.mkdir(parents=True, exist_ok=True)
    for cand in sorted(root.glob("debian-*")):
        tree = _load(cand)
        if tree is None:
            continue
        if _read_state(cand).get("ktest.source") == stamp:
            paths.set_setting("tree.path", str(cand))
            ui.note(f"reusing prepared tree {cand} (base {tree.base_ref})")
            return tree

    free = shutil.disk_usage(root).free
    if free < TREE_BYTES:
        raise TreeError(f"not enough space to prepare the tree in {root}: {free / 2**30:.1f} GiB free, "
                        f"the extracted tree and its git history take about {TREE_BYTES / 2**30:.1f} GiB",
                        hint="Free some space, or point KTEST_HOME at another disk.")
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        with ui.step(f"extracting {tarball.name}"):
            run(["tar", "-xf", str(tarball), "-C", str(tmp)], timeout=900, what="tar")
        tops = [p for p in tmp.iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise TreeError(f"{tarball}: expected one top-level directory, found {len(tops)}")
        src = tops[0]
        version = makefile_version(src)
        drop_debian_ignore_block(src / ".gitignore")
        dest = root / f"debian-{version}"
        if dest.exists():
            # A tree from another tarball of the same version: keep it aside
            # rather than destroy it.
            digest = hashlib.sha1(stamp.encode()).hexdigest()[:8]
            dest = root / f"debian-{version}-{digest}"
            if dest.exists():
                shutil.rmtree(dest)
        with ui.step(f"committing the {version} base tree to git"):
            g = ["git", "-C", str(src)]
            run([*g, "init", "-q", "-b", "ktest/base"], timeout=60)
            for k, v in (("gc.auto", "0"), ("core.untrackedCache", "true"),
                         ("index.version", "4"), ("user.name", "ktest"),
                         ("user.email", "ktest@localhost")):
                run([*g, "config", k, v], timeout=30)
            run([*g, "add", "-A", "-f", "."], timeout=900, what="git add")
            run([*g, "commit", "-q", "--no-verify", "-m",
                 f"Linux {version} (Debian {debian_package(series)})\n\nExtracted from {tarball}."],
                env=KTEST_IDENT, timeout=900, what="git commit")
            tag = f"v{version}-debian"
            run([*g, "tag", "-f", tag], timeout=30)
            base = run([*g, "rev-parse", "HEAD"], timeout=30).stdout.strip()
        src.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tree = Tree(path=dest, base=base, base_ref=tag, version=version, kind="debian")
    _remember(tree, source=stamp)
    return tree


def prepare_user(repo: Path, ref: str = "HEAD") -> Tree:
    repo = repo.resolve()
    r = run(["git", "-C", str(repo), "rev-parse", "--git-dir"], check=False, timeout=30)
    if r.returncode != 0:
        raise TreeError(f"{repo} is not a git repository")
    r = run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            check=False, timeout=30)
    if r.returncode != 0:
        raise TreeError(f"base ref '{ref}' does not name a commit in {repo}")
    base = r.stdout.strip()
    version = makefile_version(repo) if (repo / "Makefile").exists() else ""
    digest = hashlib.sha1(str(repo).encode()).hexdigest()[:10]
    wt = paths.trees() / f"user-{repo.name}-{digest}"
    existing = _load(wt)
    if existing is None:
        if wt.exists():
            shutil.rmtree(wt)
        run(["git", "-C", str(repo), "worktree", "prune"], timeout=60)
        with ui.step(f"adding a ktest worktree of {repo} at {wt}"):
            run(["git", "-C", str(repo), "worktree", "add", "--detach", str(wt), base],
                timeout=900, what="git worktree add")
    branch, refs = _names(wt, "user")
    tree = Tree(path=wt, base=base, base_ref=ref, version=version or makefile_version(wt),
                kind="user", branch=branch, refs=refs)
    _remember(tree, origin=str(repo))
    return tree


def current() -> Tree:
    """The tree the last ``tree prepare`` made."""
    p = paths.get_setting("tree.path")
    tree = _load(Path(p)) if p else None
    if tree is None:
        raise TreeError("no prepared kernel tree", hint="Run: ktest tree prepare")
    return tree


def is_clean(tree: Tree) -> bool:
    r = tree.git("status", "--porcelain", "--untracked-files=no")
    return r.stdout.strip() == ""


def version_at(tree: Tree, commit: str) -> str:
    """The kernel version in the Makefile at ``commit`` ('' if it has none)."""
    r = tree.git("show", f"{commit}:Makefile", check=False)
    if r.returncode != 0:
        return ""
    with tempfile.TemporaryDirectory(prefix="ktest-ver-") as d:
        (Path(d) / "Makefile").write_text(r.stdout, errors="surrogateescape")
        try:
            return makefile_version(Path(d))
        except TreeError:   # not a kernel Makefile: keep the old version
            return ""
