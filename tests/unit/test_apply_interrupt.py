"""An apply interrupted anywhere leaves a tree the next apply takes without help.

A real signal is sent at every git call of an apply (SIGINT; SIGTERM
handled like Ctrl-C; SIGKILL of ktest in a child process, its git left
to finish on its own), on the tiny fake tree with real git.  After each:
the tree is clean at the old or the new series tip, and the next plain
``series apply`` ends at the new tip, clean, with nothing of ktest's left
behind.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import ktest.tree
from ktest import cli, series, tree
from tests.conftest import REPO, git
from tests.unit.conftest import make_patch


class Interrupt(Exception):
    pass


def _series_b(d: Path) -> None:
    """A second version of the series: patch 2 changes, so an apply must move the branch."""
    make_patch(d / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = 222;", start=20,
               author="Bob Hacker <bob@example.org>", date="Wed, 4 Feb 2015 11:30:00 +0000",
               body="Second why, v2.\n\nSigned-off-by: Bob Hacker <bob@example.org>")


def _leftovers(t: tree.Tree) -> list[str]:
    g = tree.git_dir(t.path)
    common = Path(git(t.path, "rev-parse", "--git-common-dir").strip())
    common = common if common.is_absolute() else t.path / common
    found = [p.name for p in g.iterdir() if p.name.startswith(("ktest-apply-", "ktest-apply.json"))
             or p.name.endswith(".lock")]
    found += [str(p) for p in common.rglob("*.lock")]
    # ktest.lock is the flock file itself: it stays, and the kernel releases the lock.
    return [f for f in found if not f.endswith("ktest.lock")]


@pytest.fixture
def two_versions(fake_kernel, fake_series, ktest_home, tmp_path):
    """(tree, series A dir, series B dir, tip A, tip B), the tree at A."""
    b = tmp_path / "patches-b"
    b.mkdir()
    for p in fake_series.iterdir():
        (b / p.name).write_bytes(p.read_bytes())
    _series_b(b)
    t = tree.prepare_user(fake_kernel)
    tip_b = series.apply(t, series.load(b))
    tip_a = series.apply(t, series.load(fake_series))
    assert tip_a != tip_b
    return t, fake_series, b, tip_a, tip_b


def _git_calls(monkeypatch, at: int | None, action) -> list[list[str]]:
    calls: list[list[str]] = []
    real = ktest.tree.run

    def counting(args, **kw):
        calls.append([str(a) for a in args])
        if len(calls) == at:
            action()
        return real(args, **kw)
    monkeypatch.setattr(ktest.tree, "run", counting)
    return calls


def _assert_settled(t: tree.Tree, tips: set[str]) -> None:
    assert git(t.path, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(t.path, "rev-parse", "HEAD").strip() in tips
    assert git(t.path, "symbolic-ref", "HEAD").strip() == f"refs/heads/{t.branch}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_every_git_call(two_versions, monkeypatch, signum):
    t, a, b, tip_a, tip_b = two_versions
    # What a supervisor's TERM does once ktest handles it like Ctrl-C.
    old = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with monkeypatch.context() as m:
            calls = _git_calls(m, None, lambda: None)
            series.apply(t, series.load(b))
            total = len(calls)
        series.apply(t, series.load(a))
        assert total >= 8
        interrupted = 0
        for at in range(1, total + 1):
            with monkeypatch.context() as m:
                _git_calls(m, at, lambda: os.kill(os.getpid(), signum))
                try:
                    series.apply(t, series.load(b))
                except KeyboardInterrupt:
                    interrupted += 1
            _assert_settled(t, {tip_a, tip_b})
            assert series.apply(t, series.load(b)) == tip_b
            _assert_settled(t, {tip_b})
            assert _leftovers(t) == []
            series.apply(t, series.load(a))
        assert interrupted == total
    finally:
        signal.signal(signal.SIGTERM, old)


DRIVER = """
import os, signal, subprocess, sys
import ktest.tree
from ktest import cli
at, mode = int(sys.argv[1]), sys.argv[2]
real, n = ktest.tree.run, [0]
def run(args, **kw):
    n[0] += 1
    argv = [str(a) for a in args]
    if n[0] == at or (mode.startswith("before-checkout") and "checkout" in argv):
        if mode == "during":
            # git starts on its own, as run() starts it, and ktest dies under it.
            subprocess.Popen(argv, start_new_session=True, env=dict(os.environ, **(kw.get("env") or {})),
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL).stdin.write(
                                 (kw.get("input") or "").encode() if isinstance(kw.get("input") or "", str)
                                 else kw["input"])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(args, **kw)
ktest.tree.run = run
sys.exit(cli.main(["series", "apply"]))
"""


def _killed_apply(b: Path, at: int, mode: str) -> int:
    r = subprocess.run([sys.executable, "-c", DRIVER, str(at), mode], cwd=REPO, timeout=120,
                       env=dict(os.environ, KTEST_PATCHES=str(b)), capture_output=True, text=True)
    return r.returncode


def test_sigkill_at_every_git_call_is_recovered(two_versions, monkeypatch, capsys):
    t, a, b, tip_a, tip_b = two_versions
    monkeypatch.setenv("KTEST_PATCHES", str(b))
    with monkeypatch.context() as m:
        calls = _git_calls(m, None, lambda: None)
        assert cli.main(["series", "apply"]) == 0
        total = len(calls)
    # Killed before each call; and, for each call that writes, just after git started.
    writes = {"checkout", "update-ref", "read-tree", "apply", "commit-tree"}
    points = [(at, "before") for at in range(1, total + 1)]
    points += [(at, "during") for at, argv in enumerate(calls, 1)
               if writes & set(argv) or ("config" in argv and "--get-regexp" not in argv)]
    recovered = 0
    for at, mode in points:
        series.apply(t, series.load(a))
        capsys.readouterr()
        assert _killed_apply(b, at, mode) == -signal.SIGKILL
        assert cli.main(["series", "apply"]) == 0
        err = capsys.readouterr().err
        recovered += "was interrupted" in err
        _assert_settled(t, {tip_b})
        assert git(t.path, "rev-parse", "HEAD").strip() == tip_b
        assert _leftovers(t) == []
    assert len(points) > total
    assert recovered >= 2          # killed inside the journalled step: found, finished, said so


def test_git_that_died_mid_checkout_leaves_a_lock_ktest_recovers(two_versions, monkeypatch, capsys):
    t, a, b, tip_a, tip_b = two_versions
    monkeypatch.setattr(series, "LOCK_GRACE", 1.0)
    assert _killed_apply(b, 0, "before-checkout") == -signal.SIGKILL
    # What a checkout killed half way leaves: its index lock, a file half written.
    (tree.git_dir(t.path) / "index.lock").write_bytes(b"")
    ring = t.path / "drivers/virtio/virtio_ring.c"
    ring.write_text(ring.read_text().replace("line20 = 200;", "line20 = 2"))
    monkeypatch.setenv("KTEST_PATCHES", str(b))
    assert cli.main(["series", "apply"]) == 0
    err = capsys.readouterr().err
    assert "was interrupted while it moved" in err and "index.lock" in err
    _assert_settled(t, {tip_b})
    assert "line20 = 222;" in ring.read_text()
    assert _leftovers(t) == []


def test_a_reader_finishes_an_interrupted_apply_before_it_reads(two_versions, monkeypatch, capsys):
    """series status (a reader, as build, bench and mail are) never reads a half-moved branch."""
    t, a, b, tip_a, tip_b = two_versions
    monkeypatch.setattr(series, "LOCK_GRACE", 1.0)
    assert _killed_apply(b, 0, "before-checkout") == -signal.SIGKILL
    assert series.unfinished(t)
    monkeypatch.setenv("KTEST_PATCHES", str(b))
    assert cli.main(["series", "status"]) == 0
    assert "was interrupted while it moved" in capsys.readouterr().err
    assert not series.unfinished(t)
    _assert_settled(t, {tip_b})
    assert _leftovers(t) == []


def _series_adding(fake_kernel: Path, d: Path, path: str) -> None:
    """A one-patch series (made by git format-patch) that adds ``path``."""
    work = d.parent / "mk"
    git(d.parent, "clone", "-q", str(fake_kernel), str(work))
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text("int added;\n")
    git(work, "add", path)
    git(work, "commit", "-q", "-m", "add a file\n\nSigned-off-by: T <t@example.org>")
    out = git(work, "format-patch", "-1", "-o", str(d)).strip()
    (d / "series").write_text(Path(out).name + "\n")


def test_an_untracked_file_in_the_way_is_never_overwritten(fake_kernel, ktest_home, tmp_path, monkeypatch, capsys):
    """A path with "lock" in it (drivers/block/) is not git's lock: the apply is refused, not journalled."""
    d = tmp_path / "adds"
    d.mkdir()
    _series_adding(fake_kernel, d, "drivers/block/virtio_blk.c")
    t = tree.prepare_user(fake_kernel)
    mine = t.path / "drivers/block/virtio_blk.c"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own work\n")
    with pytest.raises(series.SeriesError, match="refused"):
        series.apply(t, series.load(d))
    assert not series.unfinished(t)
    monkeypatch.setenv("KTEST_PATCHES", str(d))
    cli.main(["series", "status"])                       # a reader: nothing to finish
    assert mine.read_text() == "my own work\n"


def test_recovery_refuses_to_force_over_untracked_files(fake_kernel, ktest_home, tmp_path, monkeypatch):
    d = tmp_path / "adds"
    d.mkdir()
    _series_adding(fake_kernel, d, "drivers/virtio/new.c")
    t = tree.prepare_user(fake_kernel)
    assert _killed_apply(d, 0, "before-checkout") == -signal.SIGKILL
    assert series.unfinished(t)
    mine = t.path / "drivers/virtio/new.c"
    mine.write_text("my own work\n")
    with pytest.raises(series.SeriesError, match="untracked file.*in the way.*drivers/virtio/new.c"):
        series.recover(t)
    assert mine.read_text() == "my own work\n"
    mine.unlink()
    assert series.recover(t) and not series.unfinished(t)
    assert (t.path / "drivers/virtio/new.c").read_text() == "int added;\n"
