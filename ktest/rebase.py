"""``series rebase --onto REF``: replay the series on another base.

Nothing of the old series is lost: ``ktest/series`` is not moved until
every patch has applied on the new base (the work happens on
``ktest/rebase``), and its old tip is also kept under refs/ktest/backup/.
At the first patch that does not apply, ktest stops with the patch, file
and hunk, a clean work tree at the last patch that applied, and the two
ways on: apply that patch by hand, commit, ``--continue``; or ``--abort``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from . import ui
from .errors import SeriesError
from .export import format_patches
from .lock import held
from .series import apply_one, keep_backup, load_patch, require_clean
from .tree import Tree

REBASE_BRANCH = "ktest/rebase"


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
        return commit, ref or f"{other}:HEAD"
    r = tree.git("rev-parse", "--verify", "--quiet", f"{onto}^{{commit}}", check=False)
    if r.returncode != 0:
        raise SeriesError(f"'{onto}' is neither a commit in {tree.path} nor a prepared tree")
    return r.stdout.strip(), onto


def start(tree: Tree, onto: str, *, fuzz: bool = False) -> str:
    with held(tree, "series rebase"):
        if _state(tree):
            raise SeriesError("a series rebase is already in progress",
                              hint="Run: ktest series rebase --continue (or --abort)")
        require_clean(tree)
        tip = tree.git("rev-parse", "--verify", "--quiet", f"refs/heads/{tree.branch}", check=False).stdout.strip()
        if not tip:
            raise SeriesError(f"no branch {tree.branch} in {tree.path}", hint="Run: ktest series apply")
        commit, name = resolve_onto(tree, onto)
        state = _state_dir(tree)
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir(parents=True)
        texts = format_patches(tree, f"{tree.base}..{tip}")
        for i, text in enumerate(texts, 1):
            (state / f"{i:04d}.patch").write_bytes(text)
        backup, _ = keep_backup(tree, tip, "pre-rebase-")
        _set(tree, onto=commit, ontoref=name, orig=tip, next="1", total=str(len(texts)),
             fuzz="1" if fuzz else "0", backup=backup)
        tree.git("checkout", "-q", "-B", rebase_branch(tree), commit, timeout=900)
        ui.note(f"replaying {len(texts)} patches onto {name} ({commit[:12]}); old tip kept as {backup}")
        return _replay(tree)


def _in_progress(tree: Tree) -> dict[str, str]:
    st = _state(tree)
    if not st:
        raise SeriesError("no series rebase in progress")
    return st


def proceed(tree: Tree) -> str:
    with held(tree, "series rebase --continue"):
        st = _in_progress(tree)
        require_clean(tree)
        head = tree.git("rev-parse", "HEAD").stdout.strip()
        if st.get("stopped") and head == st.get("stoppedat"):
            n = int(st["next"])
            raise SeriesError(f"patch {n} is still not committed on {rebase_branch(tree)}",
                              hint=f"Apply {_state_dir(tree) / f'{n:04d}.patch'} by hand "
                                   "(e.g. git apply --3way), commit, then --continue; or --abort.")
        if st.get("stopped"):
            _set(tree, next=str(int(st["next"]) + 1))
            tree.state("--unset", "ktest.rebase.stopped", check=False)
        return _replay(tree)


def abort(tree: Tree) -> None:
    with held(tree, "series rebase --abort"):
        st = _in_progress(tree)
        tree.git("checkout", "-q", "-f", tree.branch, timeout=900)
        tree.git("branch", "-q", "-D", rebase_branch(tree), check=False)
        tree.state("--remove-section", "ktest.rebase", check=False)
        shutil.rmtree(_state_dir(tree), ignore_errors=True)
        ui.note(f"rebase aborted; {tree.branch} is as it was ({st['orig'][:12]})")


def _replay(tree: Tree) -> str:
    st = _state(tree)
    state = _state_dir(tree)
    total = int(st["total"])
    for n in range(int(st["next"]), total + 1):
        patch = load_patch(state, f"{n:04d}.patch")
        try:
            apply_one(tree, patch, fuzz=st.get("fuzz") == "1")
        except SeriesError as e:
            head = tree.git("rev-parse", "HEAD").stdout.strip()
            _set(tree, next=str(n), stopped="1", stoppedat=head)
            raise SeriesError(
                f"rebase stopped at patch {n}/{total} '{patch.subject}': "
                f"{e.message.split(': ', 1)[1] if ': ' in e.message else e.message}",
                hint=(f"{rebase_branch(tree)} holds patches 1..{n - 1} on {st['ontoref']}, work tree clean; "
                      f"{tree.branch} is unchanged.\n"
                      f"Either apply {state / f'{n:04d}.patch'} by hand (git apply --3way), fix, "
                      "commit, and run: ktest series rebase --continue\n"
                      "or run: ktest series rebase --abort")) from e
        _set(tree, next=str(n + 1))
    new_tip = tree.git("rev-parse", "HEAD").stdout.strip()
    tree.git("checkout", "-q", "-B", tree.branch, new_tip, timeout=900)
    tree.git("branch", "-q", "-D", rebase_branch(tree), check=False)
    tree.state("ktest.base", st["onto"])
    tree.state("ktest.baseref", st["ontoref"])
    tree.state("--unset", "ktest.seriestip", check=False)
    tree.state("--remove-section", "ktest.rebase", check=False)
    shutil.rmtree(state, ignore_errors=True)
    tree.base, tree.base_ref = st["onto"], st["ontoref"]
    ui.note(f"{tree.branch} now has {total} patches on {st['ontoref']} ({new_tip[:12]}); "
            f"the old series is {st['backup']}. Run `ktest series export` to refresh patches/.")
    return new_tip
