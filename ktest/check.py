"""Is every patch ready for the list?  ``series check`` and the mail gate.

For each patch, in order: it applies to the base plus the patches before
it without offset or fuzz; the tree's own ``checkpatch.pl --strict``
reports nothing (errors, warnings or checks); and its message has a
subsystem-prefixed subject, a body, and a Signed-off-by.
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import ui
from .errors import KtestError
from .patchfile import shell_unsafe
from .run import run
from .series import Series, explain_apply_failure, try_apply
from .seriesfile import read_patch
from .tree import Tree

CHECKPATCH = "scripts/checkpatch.pl"
# A kernel subject starts with one or more "subsystem: " prefixes
# (virtio_ring:, tools/virtio:, net: virtio:); a revert quotes the original.
SUBSYSTEM_RE = re.compile(r'^(?:[\w.+/-]+: )+\S|^Revert "')
SIGNOFF_RE = re.compile(r"^Signed-off-by: .*\S+@\S+", re.M)
TRAILER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*: \S")
CHECKPATCH_RE = re.compile(r"^(ERROR|WARNING|CHECK):([A-Z0-9_]+): (.*)$")
WHERE_RE = re.compile(r"^#(\d+): (?:FILE: (.+):(\d+):)?")


class CheckError(KtestError):
    """A patch cannot be checked at all."""


@dataclass
class Problem:
    patch: str          # patch file name
    kind: str           # apply, offset, subject, body, signoff, or "checkpatch ERROR|WARNING|CHECK"
    message: str
    file: str = ""      # the kernel file checkpatch points at
    line: int = 0       # line in that file, or in the patch when there is no file
    type: str = ""      # checkpatch's message type, e.g. LONG_LINE

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else (f"patch line {self.line}: " if self.line else "")
        return f"{self.patch}: {where}{self.kind}: {self.message}"


def mailinfo(text: str | bytes, name: str) -> tuple[dict[str, str], str, str]:
    """``git mailinfo``: header fields, commit message body, and the diff (decoded for display)."""
    with tempfile.TemporaryDirectory(prefix="ktest-mailinfo-") as tmp:
        msg, diff = Path(tmp, "msg"), Path(tmp, "patch")
        r = run(["git", "mailinfo", str(msg), str(diff)], input=text, timeout=60, check=False,
                what=f"git mailinfo {name}")
        if r.returncode != 0:
            raise CheckError(f"{name}: not a patch mail: {r.stderr.strip()}")
        info = dict(row.split(": ", 1) for row in r.stdout.splitlines() if ": " in row)
        return info, msg.read_text(errors="replace"), diff.read_text(errors="replace")


def description(body: str) -> str:
    """The commit message body without its closing block of trailers."""
    paras = [p for p in re.split(r"\n\s*\n", body.strip()) if p.strip()]
    if paras and all(TRAILER_RE.match(ln) for ln in paras[-1].splitlines()):
        paras.pop()
    return "\n\n".join(paras)


def parse_checkpatch(output: str, patch: str) -> list[Problem]:
    problems: list[Problem] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        m = CHECKPATCH_RE.match(line)
        if not m:
            continue
        p = Problem(patch, f"checkpatch {m.group(1)}", m.group(3), type=m.group(2))
        w = WHERE_RE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if w and w.group(2):
            p.file, p.line = w.group(2), int(w.group(3))
        elif w:
            p.line = int(w.group(1))
        problems.append(p)
    return problems


def checkpatch(tree: Tree, path: Path, name: str, diff: str | None = None) -> list[Problem]:
    """The tree's ``checkpatch.pl --strict`` on the patch, given on stdin.

    checkpatch.pl puts the file names it is given, and those in the diff,
    into shell commands: it gets the patch on stdin (no name at all), and
    a patch whose diff names a file a shell would split is not given to it.
    """
    if not (tree.path / CHECKPATCH).is_file():
        raise CheckError(f"{tree.path / CHECKPATCH} does not exist; cannot check the series")
    data = read_patch(path)
    if diff is None:
        diff = mailinfo(data, name)[2]
    unsafe = shell_unsafe(diff)
    if unsafe:
        return [Problem(name, "checkpatch", f"not run: {', '.join(repr(u) for u in unsafe)} in the diff "
                                            "would reach a shell inside checkpatch.pl")]
    r = run(["perl", CHECKPATCH, "--strict", "--show-types", "--no-summary", "--color=never", "-"],
            input=data, cwd=tree.path, timeout=300, check=False, what=f"checkpatch.pl {name}")
    reported = problems = parse_checkpatch(r.stdout, name)
    if any(_unknown_id(p) for p in problems) and not tree.has_history():
        # checkpatch looks the id up in this tree, which has no history to
        # look in: say so once, do not call the tag wrong.
        for p in filter(_unknown_id, problems):
            ui.note(f"{name}: {p.message}: not checked, the tree has no history before its base "
                    f"({tree.base_ref}); prepare it with --tree from a git kernel to check commit ids")
        problems = [p for p in problems if not _unknown_id(p)]
    if any(p.type == "FILE_PATH_CHANGES" for p in problems):
        problems = _maintained_paths(tree, name, diff, problems)
    # A non-zero exit is explained by what checkpatch reported, kept or not.
    if r.returncode != 0 and not reported:
        detail = (r.stderr or r.stdout).strip().splitlines()
        problems.append(Problem(name, "checkpatch", f"exit {r.returncode}: {detail[-1] if detail else 'no output'}"))
    return problems


def _maintained_paths(tree: Tree, name: str, diff: str, problems: list[Problem]) -> list[Problem]:
    """checkpatch asks "does MAINTAINERS need updating?" of every patch that
    adds, moves or deletes a file.  Where a MAINTAINERS section already
    covers each such file (tools/virtio/ is VIRTIO CORE's), the answer is no:
    say which section and drop the warning, as a reviewer would."""
    from . import maintainers

    changed = sorted(_added_moved_deleted(diff))
    covered = {f: maintainers.sections_covering(tree, f) for f in changed}
    if not changed or not all(covered.values()):
        return problems
    for f, secs in covered.items():
        ui.note(f"{name}: {f} is a new, moved or deleted file that MAINTAINERS already covers "
                f"({'; '.join(secs)}): checkpatch's FILE_PATH_CHANGES warning does not apply")
    return [p for p in problems if p.type != "FILE_PATH_CHANGES"]


def _added_moved_deleted(diff: str) -> set[str]:
    """The files a diff creates, deletes or renames (both names of a rename)."""
    out: set[str] = set()
    for block in re.split(r"^(?=diff --git )", diff, flags=re.M):
        m = re.match(r"diff --git a/(\S+) b/(\S+)", block)
        if m and re.search(r"^(new file mode|deleted file mode|rename from)", block, re.M):
            out.update({m.group(1), m.group(2)})
    return out


def _unknown_id(p: Problem) -> bool:
    return p.type == "UNKNOWN_COMMIT_ID"


def check_patch(tree: Tree, path: Path, name: str | None = None, *, run_checkpatch: bool = True) -> list[Problem]:
    name = name or path.name
    info, body, diff = mailinfo(read_patch(path), name)
    problems = []
    subject = info.get("Subject", "")
    if not SUBSYSTEM_RE.match(subject):
        problems.append(Problem(name, "subject", f"'{subject}' has no subsystem prefix "
                                                 "(e.g. 'virtio_ring: ...')"))
    if not description(body):
        problems.append(Problem(name, "body", "no commit message body: say what the patch does and why"))
    if not SIGNOFF_RE.search(body):
        problems.append(Problem(name, "signoff", "no Signed-off-by: line"))
    # checkpatch says the same two things again, in its own words.
    said = {"body": "COMMIT_MESSAGE", "signoff": "MISSING_SIGN_OFF"}
    again = {said[p.kind] for p in problems if p.kind in said}
    if not run_checkpatch:
        return problems
    return problems + [p for p in checkpatch(tree, path, name, diff) if p.type not in again]


def gate(tree: Tree, patches_or_commits: list[Path | str]) -> list[Problem]:
    """What stops a series from being mailed: checkpatch --strict from the
    tree (any error, warning or check), a subject without a subsystem
    prefix, an empty body, a missing Signed-off-by.

    Items are patch files (Path) or commits (str) of ``tree``; a commit is
    checked as ``git format-patch`` writes it.
    """
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="ktest-gate-") as tmp:
        for n, item in enumerate(patches_or_commits, 1):
            if isinstance(item, Path):
                path = item
            else:
                out = tree.git("format-patch", "-1", "--start-number", str(n), "-o", tmp, item).stdout
                path = Path(out.strip().splitlines()[-1])
            problems += check_patch(tree, path)
    return problems


def check(tree: Tree, series: Series, *, run_checkpatch: bool = True) -> list[Problem]:
    """``series check``: apply every patch in order to a throwaway index, then
    check each as the mail gate does."""
    problems: list[Problem] = []
    with tempfile.TemporaryDirectory(prefix="ktest-check-") as tmp:
        # The index starts at the base and takes the patches in order, so
        # nothing in the tree's work tree or branches moves.
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        tree.git("read-tree", tree.base, env=env, timeout=600)
        broken = None
        with ui.step(f"checking {len(series.patches)} patches"):
            for patch in series.patches:
                if broken is None:
                    r, moved = try_apply(tree, patch, "--cached", env=env)
                    if r.returncode != 0:
                        problems.append(Problem(patch.name, "apply", explain_apply_failure(patch, r.stderr)))
                        broken = patch.name
                    else:
                        problems += [Problem(patch.name, "offset", m) for m in moved]
                else:
                    problems.append(Problem(patch.name, "apply", f"not tried: {broken} does not apply"))
                problems += check_patch(tree, patch.path, patch.name, run_checkpatch=run_checkpatch)
    return problems
