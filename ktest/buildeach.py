"""``series build-each``: build after every patch, so the series stays bisectable.

Fast path: the out-of-tree module build (make rebuilds only what a patch
touched) and, for a patch that touches tools/virtio, the guest tools.
``--full``: the whole kernel (ktest's minimal guest config, one O= build
directory reused across patches, so each patch costs an incremental make).
Warnings are compared with the previous patch's by file and message, not
line, so a patch that only moves code does not show its neighbours'
warnings as new.
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
                touched = tree.git("diff-tree", "--no-commit-id", "--name-only", "-r", c).stdout.split()
                pb = PatchBuild(c, subject, "built")
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
