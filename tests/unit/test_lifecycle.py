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
    assert "merged three ways with conflicts in drivers/virtio/virtio_ring.c" in str(e.value)
    assert "--continue" in e.value.hint and "--abort" in e.value.hint
    assert git(applied.path, "rev-parse", applied.branch).strip() == old_tip
    # The three-way merge's conflict is left to resolve, as git rebase leaves it.
    assert git(applied.path, "status", "--porcelain").splitlines() == ["UU drivers/virtio/virtio_ring.c"]
    g = applied.path / "drivers/virtio/virtio_ring.c"
    assert "<<<<<<<" in g.read_text()
    with pytest.raises(SeriesError, match="patch 2 still has unmerged files: drivers/virtio/virtio_ring.c"):
        rebase.proceed(applied)
    git(applied.path, "add", "drivers/virtio/virtio_ring.c")
    with pytest.raises(SeriesError, match="patch 2: conflict markers left at drivers/virtio/virtio_ring.c:"):
        rebase.proceed(applied)
    # Resolve as the new base requires, stage it, and go on: ktest commits it as the patch.
    text = g.read_text()
    start, end = text.index("<<<<<<<"), text.index(">>>>>>>")
    g.write_text(text[:start] + "static int line20 = 200;\n" + text[text.index("\n", end) + 1:])
    with pytest.raises(SeriesError, match="patch 2: changes not staged in drivers/virtio/virtio_ring.c"):
        rebase.proceed(applied)
    git(applied.path, "add", "drivers/virtio/virtio_ring.c")
    new_tip = rebase.proceed(applied)
    assert git(applied.path, "rev-parse", applied.branch).strip() == new_tip
    assert git(applied.path, "branch", "--show-current").strip() == applied.branch
    assert git(applied.path, "log", "-1", "--format=%an|%s", new_tip).strip() == "Bob Hacker|virtio_ring: second change"
    assert old_tip in git(applied.path, "for-each-ref", "--format=%(objectname)", f"{applied.refs}/backup/")
    t2 = tree.current()
    assert t2.base == git(fake_kernel, "rev-parse", "master").strip()
    text = g.read_text()
    assert "line10 = 100;" in text and "line20 = 200;" in text and "line40 = 41;" in text


def test_rebase_committed_by_hand_continues(applied, fake_kernel):
    """Resolving by committing yourself (the old way) still works."""
    f = fake_kernel / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line20 = 20;", "line20 = 21;"))
    git(fake_kernel, "commit", "-q", "-am", "upstream change")
    with pytest.raises(SeriesError, match="rebase stopped at patch 2/2"):
        rebase.start(applied, "master")
    git(applied.path, "checkout", "-q", "-f", "HEAD")
    with pytest.raises(SeriesError, match="patch 2 is still not committed.*nothing is staged"):
        rebase.proceed(applied)
    g = applied.path / "drivers/virtio/virtio_ring.c"
    g.write_text(g.read_text().replace("line20 = 21;", "line20 = 200;"))
    git(applied.path, "commit", "-q", "-am", "virtio_ring: second change\n\nRebased.")
    tip = rebase.proceed(applied)
    assert "line20 = 200;" in git(applied.path, "show", f"{tip}:drivers/virtio/virtio_ring.c")


def test_rebase_onto_a_new_release_takes_moved_hunks_and_the_new_version(applied, fake_kernel, fake_series,
                                                                        capsys):
    """Onto another release every hunk has moved: offsets are taken and listed (export
    rewrites them), a hunk whose context changed merges three ways and is named at the
    end, and the tree's version follows the new base (the guest kernel and headers follow it)."""
    f = fake_kernel / "drivers/virtio/virtio_ring.c"
    text = f.read_text()
    f.write_text("/* new in 6.12 */\n" * 5 + text.replace("line12 = 12;", "line12 = 1200;"))
    (fake_kernel / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\n")
    git(fake_kernel, "commit", "-q", "-am", "Linux 6.12.118")
    assert applied.version == "6.1.192"
    rebase.start(applied, "master")
    err = capsys.readouterr().err
    assert "0001" in err and "merged three ways without conflict" in err
    assert "patch 2: applied at offsets" in err and "offset 5 lines" in err
    assert "patch 1 was merged or resolved, not applied as written: run `ktest series build-each`" in err
    t2 = tree.current()
    assert t2.version == "6.12.118"
    out = git(applied.path, "show", f"{t2.branch}:drivers/virtio/virtio_ring.c")
    assert "line10 = 100;" in out and "line12 = 1200;" in out and "line20 = 200;" in out
    # export writes the hunks where they now are: the series applies without offsets again.
    export.export(t2, fake_series)
    assert "@@ -22,7 +22,7 @@" in (fake_series / "0002-virtio_ring-second.patch").read_text()


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


def test_rebase_untangles_a_conflict_out_of_proportion(applied, fake_kernel, monkeypatch):
    """When the new base reshuffled a file, the three-way merge can return one small hunk
    as a conflict over the whole file (virtio_net.c, 6.1 -> 6.12: 2,800 lines for 12):
    ktest then keeps the new base's file, applies the hunks that fit, and puts the others
    in FILE.rej, as patch(1) would."""
    f = fake_kernel / "drivers/virtio/virtio_ring.c"
    lines = f.read_text().splitlines(keepends=True)
    moved = []
    for ln in reversed(lines):          # upstream reorders everything and adds code between
        moved.append(ln.replace("line20 = 20;", "line20 = 21;"))
        moved.extend(f"/* new {len(moved)}.{k} */\n" for k in range(3))
    f.write_text("".join(moved))
    git(fake_kernel, "commit", "-q", "-am", "upstream reshuffle")
    monkeypatch.setattr(rebase, "UNTANGLE_SLACK", 0)     # the fake file is small
    with pytest.raises(SeriesError) as e:
        rebase.start(applied, "master")
    msg = str(e.value)
    assert "rebase stopped at patch 1/2" in msg
    assert "drivers/virtio/virtio_ring.c: the three-way merge conflicted over" in msg
    assert ("so it holds the new base's version with 0 of 1 hunks applied and 1 in "
            "drivers/virtio/virtio_ring.c.rej") in msg
    g = applied.path / "drivers/virtio/virtio_ring.c"
    assert "<<<<<<<" not in g.read_text() and g.read_text() == f.read_text()
    assert "+static int line10 = 100;" in (applied.path / "drivers/virtio/virtio_ring.c.rej").read_text()
    assert git(applied.path, "diff", "--name-only", "--diff-filter=U") == ""


def test_rebase_names_a_file_the_patch_creates_and_the_new_base_already_has(applied, fake_kernel):
    """Moving to 6.12, the series' patch creating tools/virtio/vhost_net_test.c met 6.12's
    own program of that name: git's add/add merge interleaves two unrelated files. The stop
    says so, and the file is never taken for a reshuffled one (no "hunks applied", no .rej:
    patch(1) cannot apply a creation onto an existing file)."""
    p = applied.path
    (p / "drivers/virtio/new_test.c").write_text("int series_test;\n")
    git(p, "add", "drivers/virtio/new_test.c")
    git(p, "commit", "-q", "-m", "virtio: add new_test.c\n\nSigned-off-by: Alice Dev <alice@example.org>")
    (fake_kernel / "drivers/virtio/new_test.c").write_text("".join(f"int upstream{i};\n" for i in range(100)))
    git(fake_kernel, "add", "-A")
    git(fake_kernel, "commit", "-q", "-m", "upstream adds its own new_test.c")
    with pytest.raises(SeriesError) as e:
        rebase.start(applied, "master")
    msg = str(e.value)
    assert "rebase stopped at patch 3/3 'virtio: add new_test.c'" in msg
    assert ("drivers/virtio/new_test.c: the patch creates it and master already has it "
            "(both added)") in msg
    assert "hunks applied" not in msg
    assert not (p / "drivers/virtio/new_test.c.rej").exists()
    assert "drivers/virtio/new_test.c" in git(p, "diff", "--name-only", "--diff-filter=U")


def test_rebase_onto_another_prepared_tree_brings_its_base_tag(applied, fake_kernel, tmp_path, capsys):
    """`--onto <another prepared tree>` names the new base by that tree's tag (series
    status prints it), so the tag must exist here too: moving to 6.12, `git rebase -i
    --autosquash v6.12.118-debian` in the moved tree said "unknown revision"."""
    other = tmp_path / "linux-6.12"
    git(tmp_path, "clone", "-q", str(fake_kernel), str(other))
    (other / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 118\nEXTRAVERSION =\n")
    git(other, "commit", "-q", "-am", "Linux 6.12.118")
    git(other, "tag", "v6.12.118-debian")
    git(other, "config", "--file", str(other / ".git" / "ktest.config"), "ktest.baseref", "v6.12.118-debian")
    base = git(other, "rev-parse", "HEAD").strip()
    rebase.start(applied, str(other))
    t2 = tree.current()
    assert (t2.base, t2.base_ref, t2.version) == (base, "v6.12.118-debian", "6.12.118")
    assert git(applied.path, "rev-parse", "v6.12.118-debian^{commit}").strip() == base
    assert len(git(applied.path, "log", "--format=%h", f"v6.12.118-debian..{t2.branch}").split()) == 2
