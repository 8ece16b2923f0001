"""check, status, lock and rebase on the tiny fake tree (real git)."""
import subprocess
import sys

import pytest

from ktest import check, export, lock, rebase, series, status, tree
from ktest.errors import SeriesError, TreeError
from tests.conftest import git
from tests.unit.conftest import make_patch


@pytest.fixture
def applied(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    export.export(t, fake_series)
    return t


def test_offset_is_refused_unless_fuzz(fake_kernel, fake_series, ktest_home):
    # The hunk says line 17, the context is really at 20: an offset of 3.
    p = fake_series / "0002-virtio_ring-second.patch"
    p.write_text(p.read_text().replace("@@ -17,7 +17,7 @@", "@@ -14,7 +14,7 @@"))
    t = tree.prepare_user(fake_kernel)
    with pytest.raises(SeriesError, match=r"patch 0002-virtio_ring-second.patch applies only with offsets: "
                                          r"drivers/virtio/virtio_ring.c: hunk #1 offset 3 lines"):
        series.apply(t, series.load(fake_series))
    assert git(t.path, "log", "-1", "--format=%s").strip() == "virtio_ring: first change"
    tip = series.apply(t, series.load(fake_series), fuzz=True)
    assert "line20 = 200;" in git(t.path, "show", f"{tip}:drivers/virtio/virtio_ring.c")
    problems = check.check(t, series.load(fake_series), run_checkpatch=False)
    assert [(x.patch, x.kind) for x in problems] == [("0002-virtio_ring-second.patch", "offset")]


def test_check_message_rules(fake_kernel, fake_series, ktest_home):
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="second change without prefix",
               old="static int line20 = 20;", new="static int line20 = 200;", start=20,
               body="Reviewed-by: X <x@example.org>")
    t = tree.prepare_user(fake_kernel)
    got = {str(p) for p in check.check(t, series.load(fake_series), run_checkpatch=False)}
    assert got == {
        "0002-virtio_ring-second.patch: subject: 'second change without prefix' has no subsystem prefix "
        "(e.g. 'virtio_ring: ...')",
        "0002-virtio_ring-second.patch: body: no commit message body: say what the patch does and why",
        "0002-virtio_ring-second.patch: signoff: no Signed-off-by: line",
    }


def test_check_stops_applying_after_a_broken_patch(fake_kernel, fake_series, ktest_home):
    make_patch(fake_series / "0001-virtio_ring-first.patch", subject="virtio_ring: first change",
               old="static int line10 = 999;", new="static int line10 = 100;", start=10)
    t = tree.prepare_user(fake_kernel)
    problems = check.check(t, series.load(fake_series), run_checkpatch=False)
    assert [(p.patch, p.kind, p.message) for p in problems] == [
        ("0001-virtio_ring-first.patch", "apply",
         "drivers/virtio/virtio_ring.c: hunk #1 (@@ -7,7 +7,7 @@) does not apply"),
        ("0002-virtio_ring-second.patch", "apply", "not tried: 0001-virtio_ring-first.patch does not apply"),
    ]
    assert git(t.path, "status", "--porcelain") == ""


def test_status_shows_what_differs(applied, fake_series):
    st = status.status(applied, fake_series)
    assert [(p.name, p.in_branch, p.same) for p in st.patches] == [
        ("0001-virtio_ring-first.patch", True, True), ("0002-virtio_ring-second.patch", True, True)]
    f = applied.path / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line40 = 40;", "line40 = 400;"))
    git(applied.path, "commit", "-q", "--amend", "--no-edit", "-a")
    git(applied.path, "commit", "-q", "--allow-empty", "-m", "virtio_ring: empty\n\nWhy.")
    st = status.status(applied, fake_series)
    assert [(p.name, p.in_branch, p.same) for p in st.patches] == [
        ("0001-virtio_ring-first.patch", True, True), ("0002-virtio_ring-second.patch", True, False),
        (None, True, False)]


def test_second_process_is_told_who_holds_the_lock(applied):
    code = ("import time; from ktest import tree, lock\n"
            "t = tree.current()\n"
            "with lock.held(t, 'series apply'):\n"
            "    print('locked', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TreeError, match=rf"is locked by pid {holder.pid} \(series apply"):
            with lock.held(applied, "series export", wait=0.5):
                pass
        with pytest.raises(TreeError, match="is locked by"):
            series.apply(applied, series.load(applied.path.parent.parent.parent / "patches"))
    finally:
        holder.kill()
        holder.wait()
    with lock.held(applied, "after"):       # released when its holder died
        pass


def test_rebase_stops_continues_and_keeps_the_old_series(applied, fake_kernel, fake_series):
    old_tip = git(applied.path, "rev-parse", applied.branch).strip()
    # Upstream moves on: line 20 changes under patch 2, and line 40 too.
    f = fake_kernel / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line20 = 20;", "line20 = 21;").replace("line40 = 40;", "line40 = 41;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream change")
    with pytest.raises(SeriesError) as e:
        rebase.start(applied, "master")
    assert "rebase stopped at patch 2/2 'virtio_ring: second change'" in str(e.value)
    assert "drivers/virtio/virtio_ring.c: hunk #1" in str(e.value)
    assert "--continue" in e.value.hint and "--abort" in e.value.hint
    assert git(applied.path, "rev-parse", applied.branch).strip() == old_tip
    assert git(applied.path, "status", "--porcelain") == ""
    with pytest.raises(SeriesError, match="patch 2 is still not committed"):
        rebase.proceed(applied)
    # Fix it by hand, as the hint says, and go on.
    g = applied.path / "drivers/virtio/virtio_ring.c"
    g.write_text(g.read_text().replace("line20 = 21;", "line20 = 200;"))
    git(applied.path, "commit", "-q", "-am", "virtio_ring: second change\n\nRebased.")
    new_tip = rebase.proceed(applied)
    assert git(applied.path, "rev-parse", applied.branch).strip() == new_tip
    assert git(applied.path, "branch", "--show-current").strip() == applied.branch
    assert old_tip in git(applied.path, "for-each-ref", "--format=%(objectname)", f"{applied.refs}/backup/")
    t2 = tree.current()
    assert t2.base == git(fake_kernel, "rev-parse", "master").strip()
    text = g.read_text()
    assert "line10 = 100;" in text and "line20 = 200;" in text and "line40 = 41;" in text


def test_rebase_abort_restores(applied, fake_kernel):
    old_tip = git(applied.path, "rev-parse", applied.branch).strip()
    f = fake_kernel / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line10 = 10;", "line10 = 11;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream change")
    with pytest.raises(SeriesError, match="rebase stopped at patch 1/2"):
        rebase.start(applied, "master")
    with pytest.raises(SeriesError, match="already in progress"):
        rebase.start(applied, "master")
    rebase.abort(applied)
    assert git(applied.path, "branch", "--show-current").strip() == applied.branch
    assert git(applied.path, "rev-parse", "HEAD").strip() == old_tip
    assert f"{applied.branch}-rebase" not in git(applied.path, "branch")
    with pytest.raises(SeriesError, match="no series rebase in progress"):
        rebase.abort(applied)


def test_rebase_onto_missing_ref(applied):
    with pytest.raises(SeriesError, match="'v7.0' is neither a commit"):
        rebase.start(applied, "v7.0")
