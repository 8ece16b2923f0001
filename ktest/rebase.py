"""``series rebase --onto REF``: replay the series on another base.

Nothing of the old series is lost: ``ktest/series`` is not moved until
every patch has applied on the new base (the work happens on
``ktest/rebase``), and its old tip is also kept under refs/ktest/backup/.

A rebase moves the series to another release, where nearly every hunk has
moved: a patch that applies at offsets is taken (the offsets are listed;
``series export`` then writes the hunks where they now are).  A patch that
does not apply is merged three ways from the blobs its index lines name,
as git rebase would; a clean merge is taken and named at the end (a clean
merge is not a checked one: run build-each).  On a conflict ktest stops
with the patch and hunk, the conflict markers in the work tree: resolve,
``git add``, and ``--continue`` commits the result as the patch's author
with its message.  Where the merge aligned the wrong blocks (a conflict out
of all proportion to the patch: 6.1 -> 6.12's virtio_net.c gave ~2,800
lines for a 12-line hunk) the file keeps the new base's version, the hunks
that fit are applied and the others go to FILE.rej.  A file the patch
creates that the new base already has is named as both added and never
untangled.  Where no three-way merge can run (the old blobs are not here)
the work tree is left clean: apply by hand, commit, ``--continue``.
``--abort`` goes back.

``--build`` (kept across ``--continue``) is ``git rebase --exec make``: each
committed patch is built as build-each builds it, against the new base's
release (looked up before the first patch), and the first that does not
build stops the rebase with its first compiler error.  The commit stays:
``git add`` the fix (``--continue`` amends with it) or amend it yourself;
``--continue`` builds it again before going on.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

from . import ui
from .buildeach import build_commit, module_release
from .errors import SeriesError
from .export import format_patches
from .lock import held
from .patchfile import Patch
from .series import (apply_options, commit_index, explain_apply_failure, keep_backup, load_patch, require_clean,
                     try_apply)
from .tree import KTEST_IDENT, Tree, version_at

REBASE_BRANCH = "ktest/rebase"
# A three-way conflict over more than RATIO x the patch's lines in a file,
# plus SLACK, is the merge aligning the wrong blocks, not a conflict to read.
UNTANGLE_RATIO, UNTANGLE_SLACK = 4, 40


def rebase_branch(tree: Tree) -> str:
    """ktest/rebase, or ktest/series-<worktree>-rebase in a linked worktree."""
    return REBASE_BRANCH if tree.branch == "ktest/series" else f"{tree.branch}-rebase"


def _state_dir(tree: Tree) -> Path:
    common = tree.git("rev-parse", "--git-common-dir").stdout.strip()
    p = Path(common)
    return (p if p.is_absolute() else tree.path / p) / "ktest-rebase"


def _state(tree: Tree) -> dict[str, str]:
    r = tree.state("--get-regexp", r"^ktest\.rebase\.", check=False)
    return {ln.split(" ", 1)[0].split(".", 2)[2]: ln.split(" ", 1)[1]
            for ln in r.stdout.splitlines() if " " in ln}


def _set(tree: Tree, **kv: str) -> None:
    for k, v in kv.items():
        tree.state(f"ktest.rebase.{k}", v)


def resolve_onto(tree: Tree, onto: str) -> tuple[str, str]:
    """(commit, name) for a ref in the tree or another prepared tree's base."""
    other = Path(onto)
    if other.is_dir() and (other / ".git").exists():
        from .tree import _read_state

        ref = _read_state(other.resolve()).get("ktest.baseref", "")
        src = f"refs/tags/{ref}" if ref else "HEAD"
        tree.git("fetch", "-q", "--no-tags", str(other.resolve()), f"+{src}:{tree.refs}/onto", timeout=1800)
        commit = tree.git("rev-parse", f"{tree.refs}/onto^{{commit}}").stdout.strip()
        if ref:
            # The tree's base is then named by that tag (series status,
            # check): make the name a ref here too, for `git rebase -i TAG`
            # and `git log TAG..`, unless a tag of that name means another
            # commit here.
            have = tree.git("rev-parse", "--verify", "--quiet", f"refs/tags/{ref}^{{commit}}",
                            check=False).stdout.strip()
            if not have:
                tree.git("tag", ref, commit)
            elif have != commit:
                ui.note(f"[yellow]tag {ref} here is {have[:12]}, not the base of {other} "
                        f"({commit[:12]}): left as it is")
        return commit, ref or f"{other}:HEAD"
    r = tree.git("rev-parse", "--verify", "--quiet", f"{onto}^{{commit}}", check=False)
    if r.returncode != 0:
        raise SeriesError(f"'{onto}' is neither a commit in {tree.path} nor a prepared tree")
    return r.stdout.strip(), onto


def start(tree: Tree, onto: str, *, fuzz: bool = False, build: bool = False) -> str:
    with held(tree, "series rebase"):
        if _state(tree):
            raise SeriesError("a series rebase is already in progress",
                              hint="Run: ktest series rebase --continue (or --abort)")
        require_clean(tree)
        tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
        if not tip:
            raise SeriesError(f"no branch {tree.branch} in {tree.path}", hint="Run: ktest series apply")
        commit, name = resolve_onto(tree, onto)
        release = module_release(tree, version_at(tree, commit) or tree.version) if build else ""
        state = _state_dir(tree)
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        texts = format_patches(tree, f"{tree.base}..{tip}")
        for i, text in enumerate(texts, 1):
            (state / f"{i:04d}.patch").write_bytes(text)
        backup, _ = keep_backup(tree, tip, "pre-rebase-")
        _set(tree, onto=commit, ontoref=name, orig=tip, next="1", total=str(len(texts)),
             fuzz="1" if fuzz else "0", backup=backup, build="1" if build else "0", release=release)
        tree.git("checkout", "-q", "-B", rebase_branch(tree), commit, timeout=900)
        ui.note(f"replaying {len(texts)} patches onto {name} ({commit[:12]}); old tip kept as {backup}")
        return _replay(tree)


def _in_progress(tree: Tree) -> dict[str, str]:
    st = _state(tree)
    if not st:
        raise SeriesError("no series rebase in progress")
    return st


def _unmerged(tree: Tree) -> list[str]:
    return tree.git("diff", "--name-only", "--diff-filter=U").stdout.split()


def _log(tree: Tree, n: int, outcome: str) -> None:
    tree.state("--add", "ktest.rebase.log", f"{n}: {outcome}")


def _commit(tree: Tree, patch: Patch) -> str:
    """Commit the index on HEAD as the patch (its author, date and message)."""
    head = tree.git("rev-parse", "HEAD").stdout.strip()
    new = commit_index(tree, patch, head)
    tree.git("update-ref", "HEAD", new, head)
    return new


def proceed(tree: Tree, *, build: bool = False) -> str:
    with held(tree, "series rebase --continue"):
        st = _in_progress(tree)
        if build and st.get("build") != "1":
            raise SeriesError("--build goes with --onto: this rebase was started without it",
                              hint="Go on without it, or --abort and start again with --onto REF --build")
        n = int(st["next"])
        head = tree.git("rev-parse", "HEAD").stdout.strip()
        if st.get("stopped") == "build":
            _amend_fix(tree, n, head != st.get("stoppedat"))
        elif st.get("stopped") and head == st.get("stoppedat"):
            _commit_resolution(tree, n)
        require_clean(tree)
        if st.get("stopped"):
            if st.get("build") == "1":
                _check_build(tree, n, st)
            _set(tree, next=str(n + 1))
            tree.state("--unset", "ktest.rebase.stopped", check=False)
        return _replay(tree)


def _commit_resolution(tree: Tree, n: int) -> None:
    """Commit what the user staged for patch n as that patch, or say what is left."""
    name = f"{n:04d}.patch"
    patch_file = _state_dir(tree) / name
    hint = (f"Resolve the conflicts of patch {n} ({patch_file}), git add the files, then --continue; "
            "or commit it yourself, or --abort.")
    left = _unmerged(tree)
    if left:
        raise SeriesError(f"patch {n} still has unmerged files: {', '.join(left)}", hint=hint)
    unstaged = tree.git("diff", "--name-only").stdout.split()
    if unstaged:
        raise SeriesError(f"patch {n}: changes not staged in {', '.join(unstaged)}", hint=hint)
    markers = tree.git("diff", "--cached", "--check", check=False).stdout
    marked = [ln.split(": leftover", 1)[0] for ln in markers.splitlines() if "leftover conflict marker" in ln]
    if marked:
        raise SeriesError(f"patch {n}: conflict markers left at {', '.join(marked)}", hint=hint)
    if tree.git("diff", "--cached", "--quiet", check=False).returncode == 0:
        raise SeriesError(f"patch {n} is still not committed on {rebase_branch(tree)}: nothing is staged",
                          hint=f"Apply {patch_file} by hand (e.g. git apply --3way), git add, then "
                               "--continue; or --abort.")
    _commit(tree, load_patch(_state_dir(tree), name))
    _log(tree, n, "conflict resolved by hand")


def _check_build(tree: Tree, n: int, st: dict[str, str]) -> None:
    """Build patch n, HEAD of the rebase branch, as build-each would (--build), or stop there."""
    # The series as replayed so far, on the new base: the modules derive
    # from what patches 1..n change there, not from the old base's diff.
    view = dataclasses.replace(tree, base=st["onto"], base_ref=st["ontoref"], branch=rebase_branch(tree),
                               version=version_at(tree, st["onto"]) or tree.version)
    head = tree.git("rev-parse", "HEAD").stdout.strip()
    subject = tree.git("log", "-1", "--format=%s", head).stdout.strip()
    total = st["total"]
    pb, _ = build_commit(view, head, subject, st.get("release") or None)
    if pb.result == "built":
        ui.note(f"patch {n}/{total}: built ({pb.seconds:.0f} s)")
        return
    _set(tree, next=str(n), stopped="build", stoppedat=head)
    raise SeriesError(
        f"rebase stopped at patch {n}/{total} '{subject}': it does not build: {pb.error}", log=pb.log or None,
        hint=(f"{rebase_branch(tree)} holds patches 1..{n} on {st['ontoref']}, patch {n} committed as it "
              f"came; {tree.branch} is unchanged.\n"
              f"Fix the work tree, git add the files, and run: ktest series rebase --continue (it amends "
              f"patch {n}'s commit with what is staged and builds it again); or git commit --amend "
              "yourself, then --continue\nor run: ktest series rebase --abort"))


def _amend_fix(tree: Tree, n: int, amended: bool) -> None:
    """Amend patch n's commit (HEAD) with the staged fix of its build."""
    unstaged = tree.git("diff", "--name-only").stdout.split()
    if unstaged:
        raise SeriesError(f"patch {n}: changes not staged in {', '.join(unstaged)}",
                          hint=f"git add the fix (--continue amends patch {n} with it), or --abort.")
    if tree.git("diff", "--cached", "--quiet", check=False).returncode != 0:
        committer = {k: v for k, v in KTEST_IDENT.items() if k.startswith("GIT_COMMITTER_")}
        tree.git("commit", "-q", "--amend", "--no-edit", "--no-verify", env=committer)
        amended = True
    if amended:
        _log(tree, n, "build fixed by hand")


def abort(tree: Tree) -> None:
    with held(tree, "series rebase --abort"):
        st = _in_progress(tree)
        tree.git("checkout", "-q", "-f", tree.branch, timeout=900)
        tree.git("branch", "-q", "-D", rebase_branch(tree), check=False)
        tree.state("--remove-section", "ktest.rebase", check=False)
        shutil.rmtree(_state_dir(tree), ignore_errors=True)
        ui.note(f"rebase aborted; {tree.branch} is as it was ({st['orig'][:12]})")


def _apply(tree: Tree, patch: Patch, n: int, total: int, st: dict[str, str]) -> None:
    """Apply patch n on the rebase branch and commit it, or stop (SeriesError)."""
    fuzz = st.get("fuzz") == "1"
    r, moved = try_apply(tree, patch, "--check", fuzz=fuzz)
    if r.returncode == 0:
        tree.git("apply", "--index", *apply_options(patch, fuzz), "-", input=patch.diff)
        _commit(tree, patch)
        _log(tree, n, f"applied at offsets: {'; '.join(moved)}" if moved else "applied")
        if moved:
            ui.note(f"[yellow]{patch.name}[/]: applied at offsets ({len(moved)} hunks): {'; '.join(moved)}")
        return
    why = explain_apply_failure(patch, r.stderr)
    m = tree.git("apply", "--3way", *apply_options(patch, False), "-", input=patch.diff, check=False)
    conflicts = _unmerged(tree)
    if m.returncode == 0 and not conflicts:
        _commit(tree, patch)
        _log(tree, n, f"merged three ways ({why})")
        ui.note(f"[yellow]{patch.name}[/]: {why}; merged three ways without conflict")
        return
    head = tree.git("rev-parse", "HEAD").stdout.strip()
    _set(tree, next=str(n), stopped="1", stoppedat=head)
    where = f"{rebase_branch(tree)} holds patches 1..{n - 1} on {st['ontoref']}"
    if conflicts:
        # A file the patch creates that the new base has too is no hunk to
        # untangle: git merged two unrelated files (moving to 6.12, the
        # series' tools/virtio/vhost_net_test.c met 6.12's own).
        added = _both_added(tree, conflicts)
        untangled = _untangle(tree, patch, [c for c in conflicts if c not in added])
        tangled = [c for c in conflicts if c not in untangled and c not in added]
        what = "; ".join(([f"merged three ways with conflicts in {', '.join(tangled)}"] if tangled else [])
                         + [f"{f}: the patch creates it and {st['ontoref']} already has it (both added): "
                            f"the conflict is two files merged, `git show :2:{f}` is the new base's and "
                            f"`git show :3:{f}` the patch's" for f in added]
                         + list(untangled.values()))
        _log(tree, n, f"{why}; {what}")
        raise SeriesError(
            f"rebase stopped at patch {n}/{total} '{patch.subject}': {why}; {what}",
            hint=(f"{where}; the conflict markers (and *.rej hunks) are in the work tree; "
                  f"{tree.branch} is unchanged.\n"
                  "Resolve them, git add the files (delete the .rej files), and run: ktest series rebase "
                  "--continue (it commits the result as the patch's author, with its message)\n"
                  "or run: ktest series rebase --abort"))
    # No three-way merge possible (the patch's old blobs are not here):
    # leave the work tree clean, as it was.
    tree.git("reset", "-q", "--hard", "HEAD", timeout=900)
    _log(tree, n, f"stopped: {why}")
    raise SeriesError(
        f"rebase stopped at patch {n}/{total} '{patch.subject}': {why}",
        hint=(f"{where}, work tree clean; {tree.branch} is unchanged.\n"
              f"Either apply {_state_dir(tree) / f'{n:04d}.patch'} by hand, fix, "
              "commit, and run: ktest series rebase --continue\n"
              "or run: ktest series rebase --abort"))


def _both_added(tree: Tree, conflicts: list[str]) -> list[str]:
    """The unmerged files with no common ancestor version (stage 1): created by
    the patch and present in the new base."""
    stages: dict[str, set[str]] = {}
    for ln in tree.git("ls-files", "-u", "-z", "--", *conflicts).stdout.split("\0"):
        if "\t" in ln:
            info, path = ln.split("\t", 1)
            stages.setdefault(path, set()).add(info.split()[2])
    return [f for f in conflicts if f in stages and "1" not in stages[f]]


def _hunk_lines(header: str) -> int:
    """Lines a hunk spans: '@@ -37,6 +37,9 @@' -> 9."""
    m = re.match(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@", header)
    return max(int(m.group(1) or 1), int(m.group(2) or 1)) if m else 0


def _conflict_lines(path: Path) -> int:
    """Lines inside conflict regions (<<<<<<< to >>>>>>>) of a file."""
    try:
        text = path.read_bytes().decode(errors="replace").splitlines()
    except OSError:
        return 0
    count, inside = 0, False
    for line in text:
        if line.startswith("<<<<<<< "):
            inside = True
        elif line.startswith(">>>>>>> "):
            inside = False
        count += inside
    return count


def _untangle(tree: Tree, patch: Patch, conflicts: list[str]) -> dict[str, str]:
    """Files whose three-way conflict is out of all proportion to the patch.

    Between two releases a file can change so much that the merge aligns
    the wrong blocks and one small hunk comes back as a conflict over the
    whole file, which nobody can read.  Such a file gets the new base's
    version, the hunks that still fit, and FILE.rej for the others, as
    patch(1) would.  Returns file -> what was done."""
    done = {}
    for f in conflicts:
        size = sum(_hunk_lines(h.header) for h in patch.hunks if h.file == f)
        conflicted = _conflict_lines(tree.path / f)
        if conflicted <= UNTANGLE_RATIO * size + UNTANGLE_SLACK:
            continue
        tree.git("checkout", "-q", "HEAD", "--", f)
        r = tree.git("apply", "--reject", f"--include={f}", *apply_options(patch, False), "-",
                     input=patch.diff, check=False)
        hunks = [h for h in patch.hunks if h.file == f]
        rejected = len(re.findall(r"^Rejected hunk", r.stderr, re.M))
        done[f] = (f"{f}: the three-way merge conflicted over {conflicted} lines for {size} lines of patch, "
                   f"so it holds the new base's version with {len(hunks) - rejected} of {len(hunks)} hunks "
                   f"applied" + (f" and {rejected} in {f}.rej" if rejected else ""))
    return done


def _replay(tree: Tree) -> str:
    st = _state(tree)
    state = _state_dir(tree)
    total = int(st["total"])
    for n in range(int(st["next"]), total + 1):
        _apply(tree, load_patch(state, f"{n:04d}.patch"), n, total, st)
        if st.get("build") == "1":
            _check_build(tree, n, st)
        _set(tree, next=str(n + 1))
    new_tip = tree.git("rev-parse", "HEAD").stdout.strip()
    log = tree.state("--get-all", "ktest.rebase.log", check=False).stdout.splitlines()
    tree.git("checkout", "-q", "-B", tree.branch, new_tip, timeout=900)
    tree.git("branch", "-q", "-D", rebase_branch(tree), check=False)
    # The tree now stands on another release: what follows the tree's
    # version (the guest kernel, the headers) must follow it too.
    version = version_at(tree, st["onto"])
    tree.state("ktest.base", st["onto"])
    tree.state("ktest.baseref", st["ontoref"])
    if version:
        tree.state("ktest.version", version)
        tree.version = version
    tree.state("--unset", "ktest.seriestip", check=False)
    tree.state("--remove-section", "ktest.rebase", check=False)
    shutil.rmtree(state, ignore_errors=True)
    tree.base, tree.base_ref = st["onto"], st["ontoref"]
    for line in log:
        ui.note(f"  patch {line}")
    merged = list(dict.fromkeys(ln.split(":", 1)[0] for ln in log
                                if not ln.split(": ", 1)[-1].startswith("applied")))
    if merged:
        # A clean three-way merge is not a checked one: moving to 6.12, patch
        # 11 merged cleanly and wrote through a field 6.12 had moved.
        one = len(merged) == 1
        ui.note(f"{'patch' if one else 'patches'} {', '.join(merged)} {'was' if one else 'were'} merged "
                "or resolved, not applied as written: "
                + ("each built once committed (--build)" if st.get("build") == "1" else
                   f"run `ktest series build-each` before trusting {'it' if one else 'them'}"))
    ui.note(f"{tree.branch} now has {total} patches on {st['ontoref']} ({new_tip[:12]}"
            f"{', Linux ' + version if version else ''}); "
            f"the old series is {st['backup']}. Run `ktest series export` to refresh patches/.")
    return new_tip
