"""patches/series is the user's file: every syntax quilt accepts, kept byte for byte."""
from __future__ import annotations

import gzip
import shutil
import subprocess

import pytest

from ktest import cli, export, series, seriesfile, tree
from ktest.errors import SeriesError
from tests.conftest import git
from tests.unit.conftest import make_patch

RING = "drivers/virtio/virtio_ring.c"


def _patch(d, name, n, **kw):
    make_patch(d / name, subject=f"virtio_ring: change {n}", old=f"static int line{n} = {n};",
               new=f"static int line{n} = {n * 10};", start=n, **kw)


@pytest.fixture
def every_syntax(tmp_path):
    """A series using every syntax quilt accepts, in more than one encoding."""
    d = tmp_path / "patches"
    (d / "net").mkdir(parents=True)
    _patch(d, "0001-a.patch", 5)
    _patch(d, "net/0002-b.patch", 10)
    _patch(d, "0003-disabled.patch", 15)
    _patch(d, "0004-c.patch", 20)
    _patch(d, "0005-d.patch", 25)
    gz = d / "0006-e.patch.gz"
    _patch(d, "0006-e.patch", 30)
    gz.write_bytes(gzip.compress((d / "0006-e.patch").read_bytes(), mtime=0))
    (d / "0006-e.patch").unlink()
    # -pab: what `quilt new -p ab` writes; -p1 given twice is still -p1.
    text = (b"# Series for 6.1 \xe2\x80\x94 UTF-8 comment\n"
            b"# caf\xe9: a Latin-1 comment\n"
            b"\n"
            b"0001-a.patch\n"
            b"  \tnet/0002-b.patch   -p1\t# keep -p1\n"
            b"# 0003-disabled.patch\n"
            b"#0003-disabled.patch -p1\n"
            b"0004-c.patch -pab # trailing comment with # inside\n"
            b"\n\n"
            b"0005-d.patch\t-p1 -p1\n"
            b"0006-e.patch.gz # compressed, as quilt allows\n")
    (d / "series").write_bytes(text)
    return d


def test_every_quilt_syntax_is_read(every_syntax):
    sf = seriesfile.read(every_syntax)
    assert [(e.line, e.name, e.strip, e.reverse) for e in sf.entries] == [
        (4, "0001-a.patch", 1, False), (5, "net/0002-b.patch", 1, False), (8, "0004-c.patch", 1, False),
        (11, "0005-d.patch", 1, False), (12, "0006-e.patch.gz", 1, False)]
    assert [p.subject for p in series.load(every_syntax).patches] == [
        f"virtio_ring: change {n}" for n in (5, 10, 20, 25, 30)]


def test_quilt_reads_it_the_same_way(every_syntax, fake_kernel, tmp_path):
    pristine = tmp_path / "pristine"
    shutil.copytree(fake_kernel, pristine, ignore=shutil.ignore_patterns(".git"))
    r = subprocess.run(["quilt", "series"], cwd=pristine, capture_output=True, text=True, timeout=60,
                       env={"QUILT_PATCHES": str(every_syntax), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    names = [ln.split("/", 1)[1] if ln.startswith("patches/") else ln for ln in r.stdout.split()]
    assert [n.removeprefix(str(every_syntax) + "/") for n in names] == [
        e.name for e in seriesfile.read(every_syntax).entries]


def test_apply_export_round_trip_is_byte_identical(every_syntax, fake_kernel, ktest_home):
    before = {p: p.read_bytes() for p in every_syntax.rglob("*") if p.is_file()}
    t = tree.prepare_user(fake_kernel)
    tip = series.apply(t, series.load(every_syntax))
    res = export.export(t, every_syntax)
    assert res.written == [] and res.removed == [] and not res.series_changed
    after = {p: p.read_bytes() for p in every_syntax.rglob("*") if p.is_file()}
    assert after == before
    assert series.apply(t, series.load(every_syntax), force=True) == tip


def test_series_file_lines_survive_changes_to_the_branch(every_syntax, fake_kernel, ktest_home):
    """A new commit, a dropped one and a rewritten -R entry: every other line stays."""
    d = every_syntax
    # 0004 written the wrong way round, applied with -R.
    text = (d / "0004-c.patch").read_text()
    (d / "0004-c.patch").write_text(text.replace("-static int line20 = 20;", "@@MINUS@@").replace(
        "+static int line20 = 200;", "-static int line20 = 200;").replace("@@MINUS@@", "+static int line20 = 20;"))
    sf = d / "series"
    sf.write_bytes(sf.read_bytes().replace(b"0004-c.patch -pab #", b"0004-c.patch -R #"))
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(d))
    assert "line20 = 200;" in (t.path / RING).read_text()
    # Drop 0005, change 0004, add a commit at the end.
    commits = git(t.path, "rev-list", "--reverse", f"{t.base}..HEAD").split()
    git(t.path, "checkout", "-q", "--detach", commits[2])
    git(t.path, "commit", "-q", "--amend", "-m", "virtio_ring: change 20\n\nReworded.\n\nSigned-off-by: T <t@example.org>")
    git(t.path, "cherry-pick", commits[4])
    git(t.path, "checkout", "-q", "-B", t.branch)
    f = t.path / RING
    f.write_text(f.read_text().replace("line38 = 38;", "line38 = 380;"))
    git(t.path, "commit", "-q", "-am", "virtio_ring: new change\n\nWhy.\n\nSigned-off-by: T <t@example.org>")
    old = sf.read_bytes()
    res = export.export(t, d)
    assert res.removed == ["0005-d.patch"]
    new = sf.read_bytes()
    expected = old.replace(b"0005-d.patch\t-p1 -p1\n", b"")
    # 0004 is now a plain forward patch from git format-patch: its -R goes, its comment stays.
    assert b"0004-c.patch # trailing comment with # inside\n" in new
    expected = expected.replace(b"0004-c.patch -R # trailing", b"0004-c.patch # trailing")
    expected += b"0007-virtio_ring-new-change.patch\n"
    assert new == expected
    assert (d / "0003-disabled.patch").exists()         # a disabled entry's file is the user's
    tip = git(t.path, "rev-parse", "HEAD").strip()
    assert series.apply(t, series.load(d), force=True) == git(t.path, "rev-parse", "HEAD").strip()
    assert git(t.path, "diff", tip, "HEAD") == ""


def test_series_without_final_newline_and_crlf_keep_their_form(fake_series, fake_kernel, ktest_home):
    s = fake_series / "series"
    s.write_bytes(b"# dos series\r\n0001-virtio_ring-first.patch\r\n0002-virtio_ring-second.patch")
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    assert not export.export(t, fake_series).series_changed
    f = t.path / RING
    f.write_text(f.read_text().replace("line38 = 38;", "line38 = 380;"))
    git(t.path, "commit", "-q", "-am", "virtio_ring: third\n\nWhy.\n\nSigned-off-by: T <t@example.org>")
    export.export(t, fake_series)
    assert s.read_bytes() == (b"# dos series\r\n0001-virtio_ring-first.patch\r\n0002-virtio_ring-second.patch\r\n"
                              b"0003-virtio_ring-third.patch\r\n")


@pytest.mark.parametrize("name", [
    "foo;touch${IFS}$HOME.pwned;.patch", "$(id).patch", "a`b`.patch", "-rf.patch", ".hidden.patch",
    "dir/-x.patch", "sp ace.patch", "quote'.patch", "caf\xe9.patch"])
def test_names_outside_the_safe_set_are_refused_by_line(fake_series, name, tmp_path, monkeypatch):
    (fake_series / "series").write_bytes(b"0001-virtio_ring-first.patch\n" + name.encode("latin-1") + b"\n")
    with pytest.raises(SeriesError, match=r"series:2: .*(not in the safe set|unsupported option)") as e:
        seriesfile.read(fake_series)
    assert e.value.hint is None or "letters, digits" in e.value.hint
    # Through the command line: an error, exit 1, no traceback, nothing run.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KTEST_PATCHES", str(fake_series))
    assert cli.main(["series", "list"]) == 1
    assert not list(tmp_path.glob("*pwned*"))


def test_latin1_comment_in_series_is_read_and_kept(fake_series, fake_kernel, ktest_home, monkeypatch, capsys):
    s = fake_series / "series"
    s.write_bytes(b"# caf\xe9 cr\xe8me\n" + s.read_bytes())
    monkeypatch.setenv("KTEST_PATCHES", str(fake_series))
    assert cli.main(["series", "list"]) == 0
    assert "virtio_ring: second change" in capsys.readouterr().out
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    before = s.read_bytes()
    export.export(t, fake_series)
    assert s.read_bytes() == before


def test_export_to_a_missing_directory_is_a_clear_error(fake_kernel, fake_series, ktest_home, monkeypatch, capsys):
    tree.prepare_user(fake_kernel)
    series.apply(tree.current(), series.load(fake_series))
    assert cli.main(["series", "export", "--patches", "/nonexistent/dir"]) == 1
    err = capsys.readouterr().err
    assert "/nonexistent/dir: no such directory" in err and "Traceback" not in err


def test_commits_export_cannot_write_are_refused_by_commit(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    before = {p.name: p.read_bytes() for p in fake_series.iterdir()}
    git(t.path, "commit", "-q", "--allow-empty", "-m", "virtio_ring: nothing at all")
    with pytest.raises(SeriesError, match=r"commit [0-9a-f]{12} \('virtio_ring: nothing at all'\) .* changes nothing"):
        export.export(t, fake_series)
    git(t.path, "reset", "-q", "--hard", "HEAD~1")
    git(t.path, "checkout", "-q", "-b", "side", "HEAD~1")
    (t.path / "side.txt").write_text("side\n")
    git(t.path, "add", "side.txt")
    git(t.path, "commit", "-q", "-m", "side")
    git(t.path, "checkout", "-q", t.branch)
    git(t.path, "merge", "-q", "--no-ff", "-m", "Merge side", "side")
    with pytest.raises(SeriesError, match=r"\('Merge side'\) .* is a merge"):
        export.export(t, fake_series)
    assert {p.name: p.read_bytes() for p in fake_series.iterdir()} == before
    assert not any(p.stat().st_size == 0 for p in fake_series.iterdir())


def test_status_knows_unchanged_hand_written_patches(fake_series, fake_kernel, ktest_home):
    from ktest import status

    (fake_series / "0003-plain.patch").write_text(
        "Make line 30 bigger.\n\n--- a/drivers/virtio/virtio_ring.c\n+++ b/drivers/virtio/virtio_ring.c\n"
        "@@ -29,3 +29,3 @@\n static int line29 = 29;\n-static int line30 = 30;\n+static int line30 = 300;\n"
        " static int line31 = 31;\n")
    (fake_series / "series").write_text((fake_series / "series").read_text() + "0003-plain.patch -p1\n")
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    st = status.status(t, fake_series)
    assert [(p.name, p.subject, p.in_branch, p.same) for p in st.patches] == [
        ("0001-virtio_ring-first.patch", "virtio_ring: first change", True, True),
        ("0002-virtio_ring-second.patch", "virtio_ring: second change", True, True),
        ("0003-plain.patch", "Make line 30 bigger.", True, True)]
    (fake_series / "0003-plain.patch").write_text((fake_series / "0003-plain.patch").read_text() + "\n")
    assert [p.same for p in status.status(t, fake_series).patches] == [True, True, False]
