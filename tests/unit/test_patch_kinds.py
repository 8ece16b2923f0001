"""Every kind of patch git am or quilt accepts, applied by ktest and by them, compared.

Each input is made here: a change committed in a scratch clone of the tiny
fake tree and written by ``git format-patch``, then (for some) rewritten as
a mail transport or another system would (CRLF, Latin-1, compressed).
ktest's commit must equal ``git am``'s (tree, author, message) or, where
git am refuses the input (plain quilt patches), hold the files ``quilt
push`` writes.
"""
from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ktest import series, tree
from ktest.errors import SeriesError
from tests.conftest import git

AUTHOR = {"GIT_AUTHOR_NAME": "Alice Dev", "GIT_AUTHOR_EMAIL": "alice@example.org",
          "GIT_AUTHOR_DATE": "Tue, 3 Feb 2015 10:00:00 +0100"}


def _raw(cwd: Path, *args: str, input: bytes | None = None, env: dict | None = None) -> bytes:
    e = dict(os.environ, GIT_COMMITTER_NAME="C", GIT_COMMITTER_EMAIL="c@example.org", **(env or {}))
    return subprocess.run(["git", "-C", str(cwd), *args], input=input, check=True, capture_output=True,
                          env=e, timeout=120).stdout


def commit_fields(repo: Path, commit: str) -> tuple[bytes, bytes, bytes]:
    """(tree, author line, message) of a commit, as bytes: what git am and ktest must agree on."""
    raw = _raw(repo, "cat-file", "commit", commit)
    head, _, message = raw.partition(b"\n\n")
    fields = dict(line.split(b" ", 1) for line in head.splitlines())
    return fields[b"tree"], fields[b"author"], message


def format_patch(fake_kernel: Path, tmp_path: Path, change, message: str, *flags: str,
                 env: dict | None = None) -> Path:
    """Commit ``change(clone)`` in a clone of the fake tree and return git format-patch's file."""
    clone = tmp_path / "author-clone"
    if clone.exists():
        shutil.rmtree(clone)
    _raw(tmp_path, "clone", "-q", str(fake_kernel), str(clone))
    change(clone)
    _raw(clone, "add", "-A")
    _raw(clone, "commit", "-q", "-F", "-", input=message.encode(), env={**AUTHOR, **(env or {})})
    out = tmp_path / "fp"
    shutil.rmtree(out, ignore_errors=True)
    name = _raw(clone, "format-patch", "-q", "-o", str(out), *flags, "-1", "HEAD").decode().strip()
    return Path(name if name else next(out.iterdir()))


def series_of(tmp_path: Path, files: dict[str, bytes], series_text: bytes) -> Path:
    d = tmp_path / "patches-under-test"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    (d / "series").write_bytes(series_text)
    return d


def ktest_apply(fake_kernel: Path, d: Path, **kw) -> tuple[tree.Tree, str]:
    t = tree.prepare_user(fake_kernel)
    return t, series.apply(t, series.load(d), force=True, **kw)


def git_am(fake_kernel: Path, tmp_path: Path, patch: bytes) -> tuple[Path, str]:
    clone = tmp_path / "am-clone"
    shutil.rmtree(clone, ignore_errors=True)
    _raw(tmp_path, "clone", "-q", str(fake_kernel), str(clone))
    (tmp_path / "am.mbox").write_bytes(patch)
    _raw(clone, "am", "-q", str(tmp_path / "am.mbox"))
    return clone, _raw(clone, "rev-parse", "HEAD").decode().strip()


def same_as_git_am(fake_kernel: Path, tmp_path: Path, data: bytes, name: str = "0001-x.patch") -> tuple:
    d = series_of(tmp_path, {name: data}, f"{name}\n".encode())
    t, tip = ktest_apply(fake_kernel, d)
    am_repo, am_tip = git_am(fake_kernel, tmp_path, data)
    assert commit_fields(t.path, tip) == commit_fields(am_repo, am_tip)
    assert git(t.path, "status", "--porcelain") == ""
    return t, tip


def _chmod(path: str, mode: int):
    def change(repo: Path):
        (repo / path).chmod(mode)
    return change


@pytest.fixture
def kernel(fake_kernel):
    """The fake tree plus an executable script and a binary file to change."""
    (fake_kernel / "scripts").mkdir()
    (fake_kernel / "scripts" / "ver.sh").write_text("#!/bin/sh\necho 6.1\n")
    (fake_kernel / "scripts" / "ver.sh").chmod(0o755)
    (fake_kernel / "firmware.bin").write_bytes(bytes(range(256)) * 8)
    git(fake_kernel, "add", "-A")
    git(fake_kernel, "commit", "-q", "-m", "scripts and firmware")
    return fake_kernel


MSG = "virtio: a change\n\nWhy it matters.\n\nSigned-off-by: Alice Dev <alice@example.org>\n"


@pytest.mark.parametrize("kind, change, flags", [
    ("mode only", _chmod("scripts/ver.sh", 0o644), []),
    ("pure rename", lambda r: (r / "scripts/ver.sh").rename(r / "scripts/version.sh"), ["-M"]),
    ("rename with changes", lambda r: ((r / "drivers/virtio/ring.c").write_text(
        (r / "drivers/virtio/virtio_ring.c").read_text().replace("line5 = 5;", "line5 = 55;")),
        (r / "drivers/virtio/virtio_ring.c").unlink()), ["-M"]),
    ("copy", lambda r: shutil.copy(r / "drivers/virtio/virtio_ring.c", r / "drivers/virtio/copy.c"),
     ["-C", "--find-copies-harder"]),
    ("delete", lambda r: (r / "scripts/ver.sh").unlink(), []),
    ("new empty file", lambda r: (r / "drivers/virtio/empty.h").write_text(""), []),
    ("new file", lambda r: (r / "drivers/virtio/new.h").write_text("#define NEW 1\n"), []),
    ("new executable file", lambda r: ((r / "scripts/run.sh").write_text("#!/bin/sh\n"),
                                       (r / "scripts/run.sh").chmod(0o755)), []),
    ("binary change", lambda r: (r / "firmware.bin").write_bytes(bytes(range(255, -1, -1)) * 8), []),
    ("new binary file", lambda r: (r / "blob.bin").write_bytes(b"\0\1\2\377" * 100), []),
])
def test_git_kinds_apply_as_git_am_applies_them(kernel, tmp_path, ktest_home, kind, change, flags):
    data = format_patch(kernel, tmp_path, change, MSG, *flags).read_bytes()
    if kind.startswith(("mode", "pure", "copy")):
        assert b"@@" not in data or kind == "copy"      # the kinds the old reader called "no diff"
    t, tip = same_as_git_am(kernel, tmp_path, data)
    assert len(git(t.path, "rev-list", f"{t.base}..{tip}").split()) == 1


def test_crlf_mail_applies_as_git_am_and_quilt_apply_it(fake_kernel, tmp_path, ktest_home):
    def change(r):
        f = r / "drivers/virtio/virtio_ring.c"
        f.write_text(f.read_text().replace("line10 = 10;", "line10 = 100;").replace("line12 = 12;", "line12 = 1;"))
    data = format_patch(fake_kernel, tmp_path, change, MSG).read_bytes().replace(b"\n", b"\r\n")
    t, tip = same_as_git_am(fake_kernel, tmp_path, data)
    assert "line10 = 100;" in git(t.path, "show", f"{tip}:drivers/virtio/virtio_ring.c")


def test_patch_to_a_crlf_file_keeps_its_carriage_returns(fake_kernel, tmp_path, ktest_home):
    """Only some lines end in CRLF: the file's own line ends, which must stay."""
    (fake_kernel / "dos.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    git(fake_kernel, "add", "dos.txt")
    git(fake_kernel, "commit", "-q", "-m", "a dos file")
    data = format_patch(fake_kernel, tmp_path, lambda r: (r / "dos.txt").write_bytes(b"one\r\n2\r\nthree\r\n"),
                        MSG).read_bytes()
    d = series_of(tmp_path, {"0001-dos.patch": data}, b"0001-dos.patch\n")
    t, tip = ktest_apply(fake_kernel, d)
    assert _raw(t.path, "show", f"{tip}:dos.txt") == b"one\r\n2\r\nthree\r\n"


def test_latin1_mail_and_bytes_reach_git_unchanged(fake_kernel, tmp_path, ktest_home):
    """A Latin-1 mail (headers, body) changing a file that is not UTF-8: git am's commit, byte for byte."""
    (fake_kernel / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    git(fake_kernel, "add", "latin1.txt")
    git(fake_kernel, "commit", "-q", "-m", "a latin-1 file")
    msg = "virtio: J\xf6rg's caf\xe9 fix\n\nNa\xefve words.\n\nSigned-off-by: J\xf6rg R\xf6del <j@example.org>\n"
    text = format_patch(fake_kernel, tmp_path,
                        lambda r: (r / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1")),
                        msg, env={"GIT_AUTHOR_NAME": "J\xf6rg R\xf6del"}).read_bytes()
    # Re-encode the UTF-8 headers and message as an 8-bit Latin-1 mail; the diff's bytes stay.
    head, sep, diff = text.partition(b"\ndiff --git")
    latin = head.decode("utf-8").encode("latin-1").replace(b"charset=UTF-8", b"charset=ISO-8859-1")
    data = latin + sep + diff
    assert b"\xf6" in data and b"\xe9" in data
    t, tip = same_as_git_am(fake_kernel, tmp_path, data)
    assert _raw(t.path, "show", f"{tip}:latin1.txt") == "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1")
    assert git(t.path, "log", "-1", "--format=%an", tip).strip() == "J\xf6rg R\xf6del"
    s = series.load(series_of(tmp_path, {"p.patch": data}, b"p.patch\n"))
    assert s.patches[0].subject == "virtio: J\xf6rg's caf\xe9 fix"


def test_quoted_printable_mail(fake_kernel, tmp_path, ktest_home):
    import quopri

    def change(r):
        f = r / "drivers/virtio/virtio_ring.c"
        f.write_text(f.read_text().replace("line10 = 10;", "line10 = 100; /* = ten times */"))
    text = format_patch(fake_kernel, tmp_path, change, MSG).read_bytes()
    head, _, body = text.partition(b"\n\n")
    assert b"Content-Transfer-Encoding" not in head
    data = (head + b"\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8"
            b"\nContent-Transfer-Encoding: quoted-printable\n\n" + quopri.encodestring(body))
    assert b"=3D" in data
    same_as_git_am(fake_kernel, tmp_path, data)


def test_plain_quilt_patches_apply_as_quilt_pushes_them(fake_kernel, tmp_path, ktest_home):
    """No mail headers, -p0 Index: style, -R and compressed entries: what quilt push makes."""
    ring = "drivers/virtio/virtio_ring.c"
    orig = (fake_kernel / ring).read_text()

    def hunk(a: str, b: str, old_prefix: str, new_prefix: str, start: int = 10) -> str:
        ctx = [f"static int line{i} = {i};" for i in range(start - 3, start)]
        after = [f"static int line{i} = {i};" for i in range(start + 1, start + 4)]
        return (f"--- {old_prefix}{ring}\n+++ {new_prefix}{ring}\n@@ -{start - 3},7 +{start - 3},7 @@\n"
                + "".join(f" {c}\n" for c in ctx) + f"-{a}\n+{b}\n" + "".join(f" {c}\n" for c in after))

    files = {
        "plain.patch": ("Make line 10 bigger.\n\nA quilt patch has a description and no headers.\n\n"
                        + hunk("static int line10 = 10;", "static int line10 = 100;", "a/", "b/")).encode(),
        "sub/p0.diff": ("Index: linux/" + ring + "\n" + "=" * 67 + "\n"
                        + hunk("static int line20 = 20;", "static int line20 = 200;", "", "", 20)).encode(),
        # Written the wrong way round: -R in the series applies it forward.
        "reversed.patch": hunk("static int line30 = 300;", "static int line30 = 30;", "a/", "b/", 30).encode(),
        "packed.patch.gz": gzip.compress(hunk("static int line35 = 35;", "static int line35 = 350;",
                                              "a/", "b/", 35).encode()),
    }
    text = b"plain.patch\nsub/p0.diff -p0\nreversed.patch -R\npacked.patch.gz\n"
    d = series_of(tmp_path, files, text)
    pristine = tmp_path / "pristine"
    shutil.copytree(fake_kernel, pristine, ignore=shutil.ignore_patterns(".git"))
    r = subprocess.run(["quilt", "push", "-a"], cwd=pristine, capture_output=True, text=True, timeout=60,
                       env={"QUILT_PATCHES": str(d), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stdout + r.stderr
    t, tip = ktest_apply(fake_kernel, d)
    assert (t.path / ring).read_text() == (pristine / ring).read_text() != orig
    log = git(t.path, "log", "--format=%an|%s", f"{t.base}..{tip}").splitlines()
    assert log[-1] == "ktest|Make line 10 bigger."
    assert git(t.path, "log", "-1", "--format=%B", f"{tip}~3").strip() == (
        "Make line 10 bigger.\n\nA quilt patch has a description and no headers.")


def test_empty_patch_and_mailbox_are_refused_by_name(fake_kernel, tmp_path, ktest_home):
    d = series_of(tmp_path, {"empty.patch": b"Subject: nothing\n\njust words\n"}, b"empty.patch\n")
    with pytest.raises(SeriesError, match="patch empty.patch: contains no diff"):
        series.load(d)
    one = format_patch(fake_kernel, tmp_path, lambda r: (r / "a.txt").write_text("a\n"), MSG).read_bytes()
    d = series_of(tmp_path, {"two.mbox": one + one}, b"two.mbox\n")
    with pytest.raises(SeriesError, match="patch two.mbox: holds 2 mails"):
        series.load(d)


def test_what_git_apply_refuses_is_refused_with_the_patch_named(kernel, tmp_path, ktest_home):
    """A binary change without its data ('Binary files differ'): git apply cannot; nor can ktest."""
    data = format_patch(kernel, tmp_path, lambda r: (r / "firmware.bin").write_bytes(b"x" * 10), MSG,
                        "--no-binary").read_bytes()
    assert b"Binary files" in data
    d = series_of(tmp_path, {"0001-fw.patch": data}, b"0001-fw.patch\n")
    t = tree.prepare_user(kernel)
    with pytest.raises(SeriesError, match=r"patch 0001-fw.patch does not apply: .*firmware.bin"):
        series.apply(t, series.load(d))
    assert git(t.path, "status", "--porcelain") == ""


def test_corrupt_patch_names_the_line_of_the_file(fake_series, fake_kernel, ktest_home):
    p = fake_series / "0002-virtio_ring-second.patch"
    lines = p.read_text().splitlines()
    lines[-2] = "this is not a diff line"
    p.write_text("\n".join(lines) + "\n")
    t = tree.prepare_user(fake_kernel)
    with pytest.raises(SeriesError) as e:
        series.apply(t, series.load(fake_series))
    assert f"(line {len(lines) - 1} of 0002-virtio_ring-second.patch)" in str(e.value)


def test_commits_do_not_depend_on_the_directory_ktest_runs_in(fake_series, tmp_path, monkeypatch):
    """git reads the cwd's repository config: a scissors setting there must not cut messages."""
    p = fake_series / "0002-virtio_ring-second.patch"
    p.write_text(p.read_text().replace("Second why.", "Quoted reply\n\n-- >8 --\n\nSecond why."))
    expected = series.load(fake_series).patches[1].message
    repo = tmp_path / "elsewhere"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "mailinfo.scissors", "true")
    monkeypatch.chdir(repo)
    assert series.load(fake_series).patches[1].message == expected
    assert b"Quoted reply" in expected
