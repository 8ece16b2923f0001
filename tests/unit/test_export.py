from ktest import export, series, tree
from tests.conftest import git


def _snapshot(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_round_trip_is_byte_stable(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    snap = _snapshot(fake_series)
    first = export.export(t, fake_series)
    # Nothing changed: the hand-written patches and the series file stay as they are.
    assert first.written == [] and first.removed == [] and not first.series_changed
    assert sorted(first.unchanged) == ["0001-virtio_ring-first.patch", "0002-virtio_ring-second.patch"]
    assert _snapshot(fake_series) == snap
    # A changed commit is written by git format-patch under its old name.
    f = t.path / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line22 = 22;", "line22 = 222;"))
    git(t.path, "commit", "-q", "--amend", "--no-edit", "-a")
    changed = export.export(t, fake_series)
    assert changed.written == ["0002-virtio_ring-second.patch"] and not changed.series_changed
    snap = _snapshot(fake_series)
    tip = git(t.path, "rev-parse", "HEAD")
    series.apply(t, series.load(fake_series), force=True)
    again = export.export(t, fake_series)
    assert again.written == [] and not again.series_changed
    assert _snapshot(fake_series) == snap
    # The amended commit's committer was T, ktest's is fixed: same content, new id.
    assert git(t.path, "rev-parse", "HEAD^{tree}") == git(t.path, "rev-parse", f"{tip.strip()}^{{tree}}")
    text = (fake_series / "0002-virtio_ring-second.patch").read_text()
    assert text.startswith("From 0000000000000000000000000000000000000000 ")
    assert "Subject: [PATCH] virtio_ring: second change" in text
    assert "\n-- \n" not in text                          # no git version signature


def test_new_and_dropped_commits(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    export.export(t, fake_series)
    # Add a commit on top, drop the first one (rebase it away).
    f = t.path / "drivers/virtio/virtio_ring.c"
    f.write_text(f.read_text().replace("line30 = 30;", "line30 = 300;"))
    git(t.path, "commit", "-q", "-am", "virtio_ring: third change\n\nWhy.\n\nSigned-off-by: T <t@example.org>")
    first = git(t.path, "rev-list", "--reverse", f"{t.base}..HEAD").split()[0]
    git(t.path, "rebase", "-q", "--onto", t.base, first)
    res = export.export(t, fake_series)
    assert res.removed == ["0001-virtio_ring-first.patch"]
    # 0002 keeps its name; its index lines change with the file it patches.
    assert res.written == ["0002-virtio_ring-second.patch", "0003-virtio_ring-third-change.patch"]
    # 0002's line keeps its "-p1", as the user wrote it.
    assert (fake_series / "series").read_text() == (
        "# the series\n\n0002-virtio_ring-second.patch -p1\n0003-virtio_ring-third-change.patch\n")
    assert not (fake_series / "0001-virtio_ring-first.patch").exists()
    # And what was exported applies back to the same tree.
    git(t.path, "branch", "-q", "mine", "HEAD")
    series.apply(t, series.load(fake_series), force=True)
    assert git(t.path, "diff", "mine", "HEAD") == ""


def test_export_never_writes_one_series_over_another(fake_kernel, fake_series, ktest_home, tmp_path):
    """Applied from A: exporting into a copy of A is fine, into another series B is refused."""
    import shutil

    import pytest

    from ktest.errors import SeriesError

    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    copy = tmp_path / "copy"
    shutil.copytree(fake_series, copy)
    assert export.export(t, copy).written == []
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.patch").write_text("Subject: mine\n\nkeep me\n---\n")
    (other / "series").write_text("mine.patch\n")
    with pytest.raises(SeriesError, match="was applied from .* not .*other"):
        export.export(t, other)
    assert (other / "mine.patch").read_text() == "Subject: mine\n\nkeep me\n---\n"
    assert (other / "series").read_text() == "mine.patch\n"


def test_export_after_an_apply_that_stopped_refuses_to_drop_patches(fake_kernel, fake_series, ktest_home):
    import pytest

    from ktest.errors import SeriesError

    t = tree.prepare_user(fake_kernel)
    p2 = fake_series / "0002-virtio_ring-second.patch"
    good = p2.read_text()
    p2.write_text(good.replace("-static int line20 = 20;", "-static int line20 = 21;"))
    with pytest.raises(SeriesError):
        series.apply(t, series.load(fake_series))
    with pytest.raises(SeriesError, match="stopped before the end"):
        export.export(t, fake_series)
    assert p2.exists() and "0002-virtio_ring-second.patch" in (fake_series / "series").read_text()
