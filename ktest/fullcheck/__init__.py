"""``series check --full``: netdev-CI-style checks of every patch, in order.

For each commit of the series branch (named by its file in patches/):

    W=1        gcc warnings the patch adds in the objects it touches
    sparse     sparse (C=2) warnings it adds there
    clang      the same W=1 build with LLVM=1
    i386       the same W=1 build with ARCH=i386
    kernel-doc new ``scripts/kernel-doc -none`` warnings in the files it changes
    signoff    a Signed-off-by, and one by the author
    fixes      Fixes: tags in the 12-character form, naming an ancestor, quoting its subject
    cc         the mail's To/Cc cover get_maintainer.pl for the patch

"Adds" is relative to the commit before it, compared by file and message
(not line), so a warning that was already there is not the patch's.  The
builds are in ``builds``, the rest in ``static``.  Results: one
``PatchReport`` per commit and ``check.json``.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import ui
from ..errors import KtestError
from ..series import load as load_series
from ..tree import Tree
from . import static
from .builds import FLAVOURS, Diag, ObjectBuild, Workspace, added

CHECKS = ("W=1", "sparse", "clang", "i386", "kernel-doc", "signoff", "fixes", "cc")


class FullCheckError(KtestError):
    """The full check could not run (not: a patch failed it)."""


@dataclass
class CheckResult:
    check: str
    result: str             # pass | fail | skip
    message: str = ""       # the first problem, "file:line: ..." where there is one
    details: list[str] = field(default_factory=list)


@dataclass
class PatchReport:
    index: int
    name: str               # the patch file, or the commit subject when patches/ has none
    commit: str
    subject: str
    objects: list[str]
    checks: list[CheckResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [c.check for c in self.checks if c.result == "fail"]


@dataclass
class FullReport:
    tree: str
    base: str
    tip: str
    patches: list[PatchReport]
    json: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> list[PatchReport]:
        return [p for p in self.patches if p.failed]


@contextlib.contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FullCheckError(f"another `series check --full` is using {root}",
                                 hint="Wait for it to finish.") from None
        yield
    finally:
        os.close(fd)


def added_lines(tree: Tree, parent: str, commit: str) -> dict[str, set[int]]:
    """file -> the line numbers the commit added or changed (new side)."""
    out: dict[str, set[int]] = {}
    cur = None
    for line in tree.git("diff", "-U0", "--no-color", parent, commit, timeout=300).stdout.splitlines():
        if line.startswith("+++ "):
            cur = line[6:] if line.startswith("+++ b/") else None
        elif line.startswith("@@") and cur:
            m = re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)
            if m:
                start, n = int(m.group(1)), int(m.group(2) or 1)
                out.setdefault(cur, set()).update(range(start, start + n))
    return out


def _diag_result(check: str, new: list[Diag], failed: str = "") -> CheckResult:
    if failed:
        return CheckResult(check, "fail", f"does not build: {failed}", [str(d) for d in new])
    if new:
        return CheckResult(check, "fail", f"{len(new)} new: {new[0]}", [str(d) for d in new])
    return CheckResult(check, "pass")


def _names(tree: Tree, commits: list[tuple[str, str]], patches_dir: Path | None) -> list[str]:
    by_subject = {}
    if patches_dir is not None and (patches_dir / "series").exists():
        with contextlib.suppress(KtestError):
            by_subject = {p.subject: p.name for p in load_series(patches_dir).patches}
    return [by_subject.get(s, f"{i:04d} {s}") for i, (_, s) in enumerate(commits, 1)]


def _dirty(b: ObjectBuild) -> bool:
    return bool(b.failed or b.warnings or b.errors or b.sparse)


def check_builds(ws: Workspace, objs: list[str], parent: str, commit: str, lines, *, use_cache: bool
                 ) -> tuple[list[CheckResult], list[str]]:
    results, notes = [], []
    # After the patch first: where that build is clean nothing can be new,
    # and the build before the patch is not needed (unless cached anyway).
    afters = {fl: ws.build(fl, objs, commit, use_cache=use_cache) for fl in FLAVOURS}
    befores = {fl: ws.build(fl, objs, parent, use_cache=use_cache) if _dirty(a) else ObjectBuild()
               for fl, a in afters.items()}
    for fl in FLAVOURS:
        before, after = befores[fl], afters[fl]
        if after.skipped:
            notes.append(f"{fl}: not built in this config: {', '.join(after.skipped)}")
        name = {"gcc": "W=1", "clang": "clang", "i386": "i386"}[fl]
        if len(after.skipped) == len(objs):
            results.append(CheckResult(name, "skip", "none of the objects is in the check config"))
        else:
            new_failure = after.failed if after.failed and not before.failed else ""
            if after.failed and before.failed:
                notes.append(f"{fl}: already failed to build before this patch: {before.failed}")
            results.append(_diag_result(name, added(before.warnings + before.errors,
                                                    after.warnings + after.errors, lines), new_failure))
        if fl == "gcc":
            if after.failed:
                results.append(CheckResult("sparse", "skip", "the W=1 build failed"))
            else:
                results.append(_diag_result("sparse", added(before.sparse, after.sparse, lines)))
    return results, notes


def full_check(tree: Tree, *, patches_dir: Path | None = None, mail_dir: Path | None = None,
               use_cache: bool = True, jobs: int | None = None, out: Path | None = None,
               workspace: Workspace | None = None) -> FullReport:
    """Check every commit of the series branch; writes check.json (in ``out``)."""
    start = time.monotonic()
    r = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False)
    if r.returncode != 0:
        raise FullCheckError(f"no branch {tree.branch} in {tree.path}", hint="Run: ktest series apply")
    tip = r.stdout.strip()
    log = tree.git("log", "--reverse", "--format=%H %s", f"{tree.base}..{tip}").stdout
    commits = [tuple(ln.split(" ", 1)) for ln in log.splitlines() if ln]
    if not commits:
        raise FullCheckError(f"{tree.branch} has no commits on top of {tree.base_ref}")
    if patches_dir is not None and (patches_dir / "series").exists():
        stale = _branch_differs(tree, commits, patches_dir)
        if stale:
            raise FullCheckError(f"{tree.branch} in {tree.path} is not the series in {patches_dir}: {stale}",
                                 hint="Run: ktest series apply  (then check again)")
    names = _names(tree, commits, patches_dir)
    ws = workspace or Workspace(tree, jobs=jobs)
    mails = static.mail_messages(tree, mail_dir)
    reports = []
    with _locked(ws.root):
        ws.prepare()
        parent = tree.base
        try:
            for i, ((c, subject), name) in enumerate(zip(commits, names), 1):
                t0 = time.monotonic()
                files = tree.git("diff-tree", "--no-commit-id", "--name-only", "-r", "--diff-filter=d", c
                                 ).stdout.split()
                objs, notes = ws.objects(c, files)
                ui.note(f"[bold]{i}/{len(commits)}[/] {name}: "
                        f"{', '.join(objs) if objs else 'no kernel object'}")
                lines = added_lines(tree, parent, c)
                checks: list[CheckResult] = []
                if objs:
                    res, more = check_builds(ws, objs, parent, c, lines, use_cache=use_cache)
                    checks += res
                    notes += more
                else:
                    why = "changes no object of the kernel build (" + ", ".join(files[:3]) + \
                          (", ..." if len(files) > 3 else "") + ")"
                    checks += [CheckResult(n, "skip", why) for n in ("W=1", "sparse", "clang", "i386")]
                kd = added(static.kernel_doc(tree, parent, files), static.kernel_doc(tree, c, files), lines)
                checks.append(_diag_result("kernel-doc", kd))
                message = tree.git("log", "-1", "--format=%B", c).stdout
                author = tree.git("log", "-1", "--format=%ae", c).stdout.strip()
                for check, v in (("signoff", static.signoff(message, author)),
                                 ("fixes", static.fixes(tree, message, c)),
                                 ("cc", static.recipients_cover(tree, c, mails.get(_patch_id(tree, c))))):
                    checks.append(CheckResult(check, v.result, v.message, v.details or []))
                reports.append(PatchReport(i, name, c, subject, objs, checks, notes, time.monotonic() - t0))
                parent = c
        finally:
            ws.save()
    rep = FullReport(str(tree.path), tree.base, tip, reports, seconds=time.monotonic() - start)
    out = out or ws.root / "reports" / tip[:12]
    out.mkdir(parents=True, exist_ok=True)
    rep.json = str(out / "check.json")
    Path(rep.json).write_text(json.dumps(asdict(rep), indent=2) + "\n")
    return rep


def _patch_id(tree: Tree, commit: str) -> str:
    return _diff_id(tree.git("show", "--format=", commit).stdout)


def _diff_id(diff: str) -> str:
    from ..run import run

    r = run(["git", "patch-id", "--stable"], input=diff, timeout=60, check=False, what="git patch-id")
    return r.stdout.split()[0] if r.stdout.strip() else ""


def _branch_differs(tree: Tree, commits: list[tuple[str, str]], patches_dir: Path) -> str:
    """Why the branch's commits are not the series' patches ("" when they are).

    The per-commit checks read the branch, so a branch applied from an
    older patches/ would be checked under the new patches' names.
    """
    try:
        patches = load_series(patches_dir).patches
    except KtestError:
        return ""          # the patch check itself reports an unreadable series
    if len(patches) != len(commits):
        return f"{len(commits)} commits on the branch, {len(patches)} patches in the series"
    for (c, subject), p in zip(commits, patches):
        if p.subject and p.subject != subject:
            return f"commit {c[:12]} is {subject!r}, {p.name} is {p.subject!r}"
        if p.strip == 1 and not p.reverse and \
                _diff_id(p.diff.decode("utf-8", "surrogateescape")) != _patch_id(tree, c):
            return f"commit {c[:12]} does not make the changes of {p.name}"
    return ""
