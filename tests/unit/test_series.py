import shutil
import subprocess

import pytest

from ktest import series, tree
from ktest.errors import SeriesError
from tests.conftest import git
from tests.unit.conftest import make_patch


def test_parse_quilt_syntax(fake_series):
    (fake_series / "series").write_text(
        "# comment\n\n0001-virtio_ring-first.patch   # trailing comment\n"
        "0002-virtio_ring-second.patch -p0\n")
    assert series.parse_series_file(fake_series) == [
        (3, "0001-virtio_ring-first.patch", 1), (4, "0002-virtio_ring-second.patch", 0)]


@pytest.mark.parametrize("line, message", [
    ("missing.patch", "series:2: patch file 'missing.patch' does not exist"),
    ("../x.patch", "series:2: '../x.patch' leaves the patches directory"),
    ("/etc/passwd", "series:2: '/etc/passwd' leaves the patches directory"),
    ("0001-virtio_ring-first.patch", "series:2: '0001-virtio_ring-first.patch' is listed twice (first on line 1)"),
    ("0002-virtio_ring-second.patch -F3", "series:2: unsupported option '-F3' for 0002-virtio_ring-second.patch "
                                         "(ktest understands -pN, -pab and -R)"),
])
def test_bad_series_lines(fake_series, line, message):
    (fake_series / "series").write_text(f"0001-virtio_ring-first.patch\n{line}\n")
    with pytest.raises(SeriesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        series.parse_series_file(fake_series)


def test_patch_header_is_read_like_git_am(fake_series):
    s = series.load(fake_series)
    p = s.patches[1]
    assert (p.subject, p.author_name, p.author_email) == (
        "virtio_ring: second change", "Bob Hacker", "bob@example.org")
    assert p.date == "Wed, 4 Feb 2015 11:30:00 +0000"
    assert p.body.endswith("Signed-off-by: Bob Hacker <bob@example.org>")
    assert p.files == ["drivers/virtio/virtio_ring.c"]
    assert [(h.index, h.old_start) for h in p.hunks] == [(1, 17)]


def test_patch_without_diff_is_refused(fake_series):
    (fake_series / "empty.patch").write_text("Subject: nothing\n\njust words\n")
    (fake_series / "series").write_text("empty.patch\n")
    with pytest.raises(SeriesError, match="patch empty.patch: contains no diff"):
        series.load(fake_series)


def _apply(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    tip = series.apply(t, series.load(fake_series))
    return t, tip


def test_apply_makes_one_commit_per_patch(fake_kernel, fake_series, ktest_home):
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    log = git(t.path, "log", "--format=%an <%ae>|%aD|%s", f"{t.base}..{tip}").splitlines()
    assert log == ["Bob Hacker <bob@example.org>|Wed, 4 Feb 2015 11:30:00 +0000|virtio_ring: second change",
                   "Alice Dev <alice@example.org>|Tue, 3 Feb 2015 10:00:00 +0100|virtio_ring: first change"]
    body = git(t.path, "log", "-1", "--format=%B", tip)
    assert "Second why." in body and "Signed-off-by: Bob Hacker" in body
    text = (t.path / "drivers/virtio/virtio_ring.c").read_text()
    assert "line10 = 100;" in text and "line20 = 200;" in text
    assert tree.is_clean(t)


def test_apply_is_deterministic_and_idempotent(fake_kernel, fake_series, ktest_home, tmp_path, monkeypatch):
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    assert series.apply(t, series.load(fake_series)) == tip       # no-op
    assert series.apply(t, series.load(fake_series), force=True) == tip   # same ids again
    monkeypatch.setenv("KTEST_HOME", str(tmp_path / "other-home"))
    t2 = tree.prepare_user(fake_kernel)
    assert t2.path != t.path
    assert series.apply(t2, series.load(fake_series)) == tip


def test_user_tree_is_never_touched(fake_kernel, fake_series, ktest_home):
    (fake_kernel / "notes.txt").write_text("my untracked work\n")
    (fake_kernel / "Makefile").write_text((fake_kernel / "Makefile").read_text() + "# my edit\n")
    before = (git(fake_kernel, "rev-parse", "HEAD"), git(fake_kernel, "status", "--porcelain"),
              git(fake_kernel, "branch", "--show-current"))
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    assert t.path != fake_kernel
    after = (git(fake_kernel, "rev-parse", "HEAD"), git(fake_kernel, "status", "--porcelain"),
             git(fake_kernel, "branch", "--show-current"))
    assert before == after
    assert "my edit" not in (t.path / "Makefile").read_text()


def test_failing_patch_names_patch_file_and_hunk(fake_kernel, fake_series, ktest_home):
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 999;", new="static int line20 = 200;", start=20)
    t = tree.prepare_user(fake_kernel)
    with pytest.raises(SeriesError) as e:
        series.apply(t, series.load(fake_series))
    msg = str(e.value)
    assert "patch 0002-virtio_ring-second.patch does not apply" in msg
    assert "drivers/virtio/virtio_ring.c: hunk #1 (@@ -17,7 +17,7 @@) does not apply" in msg
    # Left at the last good commit, clean.
    assert git(t.path, "log", "-1", "--format=%s").strip() == "virtio_ring: first change"
    assert git(t.path, "branch", "--show-current").strip() == t.branch
    assert git(t.path, "status", "--porcelain") == ""


def test_dirty_tree_is_refused_and_kept(fake_kernel, fake_series, ktest_home):
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    f = t.path / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text() + "/* my uncommitted work */\n")
    with pytest.raises(SeriesError, match="uncommitted changes"):
        series.apply(t, series.load(fake_series), force=True)
    assert f.read_text().endswith("/* my uncommitted work */\n")


def test_hand_made_commits_are_backed_up(fake_kernel, fake_series, ktest_home):
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    (t.path / "extra.txt").write_text("x\n")
    git(t.path, "add", "extra.txt")
    git(t.path, "commit", "-q", "-m", "my own commit")
    mine = git(t.path, "rev-parse", "HEAD").strip()
    assert series.apply(t, series.load(fake_series)) == tip
    backups = git(t.path, "for-each-ref", "--format=%(objectname)", f"{t.refs}/backup/").split()
    assert mine in backups


def test_quilt_pushes_the_same_series(fake_kernel, fake_series, tmp_path, ktest_home):
    """The series is real quilt: Debian's quilt applies it to the pristine tree."""
    if shutil.which("quilt") is None:
        pytest.fail("quilt is not installed (apt-get install quilt)")
    pristine = tmp_path / "pristine"
    shutil.copytree(fake_kernel, pristine, ignore=shutil.ignore_patterns(".git"))
    r = subprocess.run(["quilt", "push", "-a"], cwd=pristine, capture_output=True, text=True,
                       env={"QUILT_PATCHES": str(fake_series), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    t, tip = _apply(fake_kernel, fake_series, ktest_home)
    assert (pristine / "drivers/virtio/virtio_ring.c").read_text() == (t.path / "drivers/virtio/virtio_ring.c").read_text()


def test_malformed_hunk_names_the_patch_and_line(fake_kernel, fake_series, ktest_home):
    p = fake_series / "0002-virtio_ring-second.patch"
    # The hunk promises 7 lines of old text and delivers fewer.
    p.write_text("\n".join(p.read_text().splitlines()[:-3]) + "\n")
    t = tree.prepare_user(fake_kernel)
    with pytest.raises(SeriesError, match=r"patch 0002-virtio_ring-second.patch does not apply: "
                                          r"error: corrupt patch at line \d+"):
        series.apply(t, series.load(fake_series))
    assert git(t.path, "status", "--porcelain") == ""


def test_two_ktest_worktrees_of_one_repo_keep_their_own_branch_and_state(fake_kernel, fake_series, tmp_path,
                                                                         monkeypatch):
    """Linked worktrees share refs and config: each ktest worktree still has its own.

    Seen for real: two KTEST_HOMEs with worktrees of one tree moved each
    other's ktest/series, and the second rewrote the first one's kind.
    """
    trees = []
    for name in ("a", "b"):
        monkeypatch.setenv("KTEST_HOME", str(tmp_path / f"home-{name}"))
        t = tree.prepare_user(fake_kernel, "HEAD")
        series.apply(t, series.load(fake_series))
        trees.append(t)
    a, b = trees
    assert a.branch != b.branch and a.refs != b.refs
    before_b = git(b.path, "rev-parse", "HEAD").strip()
    (a.path / "extra.txt").write_text("x\n")
    git(a.path, "add", "extra.txt")
    git(a.path, "commit", "-q", "-m", "work in a")
    assert git(b.path, "rev-parse", "HEAD").strip() == before_b
    assert git(b.path, "rev-parse", b.branch).strip() == before_b
    # Each reads back its own state; the repository's own config holds none of it.
    assert tree._load(a.path).branch == a.branch and tree._load(b.path).branch == b.branch
    repo_config = (fake_kernel / ".git" / "config").read_text()
    assert "[ktest]" not in repo_config
    assert "ktest" not in git(fake_kernel, "branch", "--show-current")


def _backups(t):
    return git(t.path, "for-each-ref", "--format=%(objectname)", f"{t.refs}/backup/").split()


def test_fuzz_is_part_of_the_fingerprint(fake_kernel, fake_series, ktest_home):
    """Applied with --fuzz, then without: the second apply must not say "already applied"."""
    p = fake_series / "0002-virtio_ring-second.patch"
    p.write_text(p.read_text().replace("@@ -17,7 +17,7 @@", "@@ -15,7 +15,7 @@"))   # 2 lines off
    t = tree.prepare_user(fake_kernel)
    s = series.load(fake_series)
    assert s.fingerprint(t.base, fuzz=True) != s.fingerprint(t.base)
    tip = series.apply(t, s, fuzz=True)
    with pytest.raises(SeriesError, match="applies only with offsets"):
        series.apply(t, series.load(fake_series))
    assert series.apply(t, series.load(fake_series), fuzz=True) == tip


def test_failed_applies_keep_no_backups_and_one_per_commit(fake_kernel, fake_series, ktest_home):
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 999;", new="static int line20 = 200;", start=20)
    t = tree.prepare_user(fake_kernel)
    for _ in range(4):
        with pytest.raises(SeriesError, match="does not apply"):
            series.apply(t, series.load(fake_series))
    assert _backups(t) == []                  # the branch tip was always ktest's own
    (t.path / "mine.txt").write_text("mine\n")
    git(t.path, "add", "mine.txt")
    git(t.path, "commit", "-q", "-m", "my own work")
    mine = git(t.path, "rev-parse", "HEAD").strip()
    with pytest.raises(SeriesError, match="does not apply"):
        series.apply(t, series.load(fake_series))
    assert _backups(t) == [mine]
    git(t.path, "reset", "-q", "--hard", mine)
    for _ in range(3):
        with pytest.raises(SeriesError, match="does not apply"):
            series.apply(t, series.load(fake_series))
    assert _backups(t) == [mine]              # never twice for one commit


def test_a_checkout_git_refuses_leaves_everything_as_it_was(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    before = git(t.path, "rev-parse", "HEAD")
    (fake_series / "0003-new-file.patch").write_text(
        "From: A <a@example.org>\nSubject: [PATCH] virtio: add notes\n\nWhy.\n---\n"
        "diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n"
        "@@ -0,0 +1 @@\n+from the patch\n")
    (fake_series / "series").write_text((fake_series / "series").read_text() + "0003-new-file.patch\n")
    (t.path / "notes.txt").write_text("my untracked notes\n")
    with pytest.raises(SeriesError, match=r"(?s)git checkout of the new series tip \w+ refused: .*notes.txt"):
        series.apply(t, series.load(fake_series))
    assert (t.path / "notes.txt").read_text() == "my untracked notes\n"
    assert git(t.path, "rev-parse", "HEAD") == before
    assert not (tree.git_dir(t.path) / series.JOURNAL).exists()
    (t.path / "notes.txt").unlink()
    series.apply(t, series.load(fake_series))
    assert (t.path / "notes.txt").read_text() == "from the patch\n"
