"""``series build-each``: build after every patch, so the series stays bisectable.

Fast path: the out-of-tree module build (make rebuilds only what a patch
touched) and, for a patch that touches tools/virtio, the guest tools.
``--full``: the whole kernel (ktest's minimal guest config, one O= build
directory reused across patches, so each patch costs an incremental make).
Warnings are compared with the previous patch's by file and message, not
line, so a patch that only moves code does not show its neighbours'
warnings as new.  ``build_commit`` (one commit, checked out) is also what
``series rebase --build`` runs after each patch it replays.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import build, ui
from .errors import BuildError, KtestError, SeriesError
from .lock import held
from .series import require_clean
from .tree import Tree


@dataclass
class PatchBuild:
    commit: str
    subject: str
    result: str                     # built | failed
    error: str = ""
    new_warnings: list[str] = field(default_factory=list)
    log: str = ""
    seconds: float = 0.0


def _key(warning: str) -> str:
    return re.sub(r":\d+(:\d+)?: ", ": ", warning)


def build_commit(tree: Tree, commit: str, subject: str, release: str | None,
                 build_dir=None) -> tuple[PatchBuild, list[str]]:
    """Build the work tree, checked out at ``commit``: the modules (for
    ``release``), the guest tools where the commit touches tools/virtio, and
    with ``build_dir`` the whole kernel first.  (result, its warnings)."""
    touched = tree.git("diff-tree", "--no-commit-id", "--name-only", "-r", commit).stdout.split()
    pb = PatchBuild(commit, subject, "built")
    warnings: list[str] = []
    try:
        if build_dir is not None:
            from . import kbuild

            kb = kbuild.build_kernel(tree, build_dir)
            warnings += kb.warnings
            pb.log, pb.seconds = str(kb.log), kb.seconds
        kres = build.build_kmod(tree, release)
        warnings += kres.warnings
        pb.log, pb.seconds = pb.log or str(kres.log), pb.seconds + kres.seconds
        if any(f.startswith("tools/virtio/") for f in touched):
            tres = build.build_tools(tree)
            warnings += tres.warnings
            pb.seconds += tres.seconds
    except BuildError as e:
        pb.result, pb.error, pb.log = "failed", e.message, str(e.log or "")
    return pb, warnings


def module_release(tree: Tree, version: str) -> str:
    """The kernel release the series' modules build against once the tree
    is Linux ``version``, as --kernel auto picks the guest: Debian's kernel
    of that version unless it has one of them built in, else ktest's build
    of it.  BuildError where there is neither (series rebase --build onto
    another release asks before its first patch, not at it)."""
    from . import kbuild
    from .kernels import debian_release
    from .kmod import kbuild_modules, module_list
    from .qemu import guest

    modules = kbuild_modules(module_list(tree).kbuild)

    try:
        debian = debian_release(version)
        blocked = guest.builtin_conflicts(debian, modules)
    except BuildError:
        debian, blocked = "", []
    if debian and not blocked:
        return debian
    own = kbuild.find_release(version, list(kbuild.DEFAULT_FRAGMENTS))
    if own is not None:
        return own.release
    why = (f"Debian's kernel {debian} has {', '.join(blocked)} built in" if debian
           else f"no Debian kernel of Linux {version} with its headers is installed")
    raise BuildError(f"no kernel to build the series' modules against for Linux {version}: {why}, "
                     f"and ktest has built no {version} kernel",
                     hint=f"In a tree of Linux {version} (ktest tree prepare), run: ktest build --kernel")


def build_each(tree: Tree, *, keep_going: bool = True, full: bool = False) -> list[PatchBuild]:
    """Check out every commit of the series in turn (then the branch again) and build it."""
    build_dir = None
    if full:
        from . import kbuild, kconfig

        res = kconfig.configure(tree, "tinyconfig", list(kbuild.DEFAULT_FRAGMENTS), cc=kbuild.default_cc())
        if res.mismatches:
            raise KtestError(f"{len(res.mismatches)} requested config value(s) not met in {res.config}",
                             hint="Run: ktest config  (it lists them)")
        build_dir = res.build_dir
    release = None
    if not full:
        # Modules build for the kernel that boots them: Debian's for the
        # tree, or ktest's own build of it where Debian's has one of them
        # built in (6.12: virtio_ring, whose exports modpost finds twice).
        from .qemu import guest

        release = guest.resolve_kernel("auto")[1]
    with held(tree, "series build-each"):
        require_clean(tree)
        tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
        if not tip:
            raise SeriesError(f"no branch {tree.branch} in {tree.path}", hint="Run: ktest series apply")
        commits = tree.git("rev-list", "--reverse", f"{tree.base}..{tip}").stdout.split()
        head = tree.git("symbolic-ref", "--quiet", "HEAD", check=False).stdout.strip()
        results: list[PatchBuild] = []
        previous: set[str] = set()
        try:
            for i, c in enumerate(commits, 1):
                subject = tree.git("log", "-1", "--format=%s", c).stdout.strip()
                ui.note(f"[bold]{i}/{len(commits)}[/] {subject}")
                tree.git("checkout", "-q", "--detach", c, timeout=600)
                pb, warnings = build_commit(tree, c, subject, release, build_dir)
                keys = {_key(w) for w in warnings}
                pb.new_warnings = sorted(w for w in warnings if _key(w) not in previous)
                previous = keys
                results.append(pb)
                if pb.result == "failed" and not keep_going:
                    break
        finally:
            if head:
                tree.git("checkout", "-q", head.removeprefix("refs/heads/"), timeout=600)
            else:
                tree.git("checkout", "-q", "--detach", tip, timeout=600)
        return results
