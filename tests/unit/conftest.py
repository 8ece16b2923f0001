"""A tiny fake kernel tree: a real git repo with a kernel-like Makefile and a
virtio_ring.c, so series and tree logic run on real git in milliseconds."""
from pathlib import Path

import pytest

from tests.conftest import git

RING_C = "".join(f"static int line{i} = {i};\n" for i in range(1, 41))


def make_patch(path: Path, *, subject: str, old: str, new: str, file="drivers/virtio/virtio_ring.c",
               author="Alice Dev <alice@example.org>", date="Tue, 3 Feb 2015 10:00:00 +0100",
               start=10, body="Explain why.\n\nSigned-off-by: Alice Dev <alice@example.org>"):
    """A git format-patch style mail replacing line ``start`` (old -> new)."""
    ctx_before = [f"static int line{i} = {i};" for i in range(start - 3, start)]
    ctx_after = [f"static int line{i} = {i};" for i in range(start + 1, start + 4)]
    hunk = "\n".join([f"@@ -{start - 3},7 +{start - 3},7 @@",
                      *[" " + c for c in ctx_before], "-" + old, "+" + new,
                      *[" " + c for c in ctx_after]])
    path.write_text("\n".join([
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        f"From: {author}",
        f"Date: {date}",
        f"Subject: [PATCH] {subject}",
        "",
        body,
        "---",
        f" {file} | 2 +-",
        " 1 file changed, 1 insertion(+), 1 deletion(-)",
        "",
        f"diff --git a/{file} b/{file}",
        f"--- a/{file}",
        f"+++ b/{file}",
        hunk,
    ]) + "\n")
    return path


@pytest.fixture
def fake_kernel(tmp_path):
    repo = tmp_path / "linux"
    (repo / "drivers" / "virtio").mkdir(parents=True)
    (repo / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n")
    (repo / "drivers" / "virtio" / "virtio_ring.c").write_text(RING_C)
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Linux 6.1.192")
    return repo


@pytest.fixture
def fake_series(tmp_path):
    d = tmp_path / "patches"
    d.mkdir()
    make_patch(d / "0001-virtio_ring-first.patch", subject="virtio_ring: first change",
               old="static int line10 = 10;", new="static int line10 = 100;", start=10)
    make_patch(d / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = 200;", start=20,
               author="Bob Hacker <bob@example.org>", date="Wed, 4 Feb 2015 11:30:00 +0000",
               body="Second why.\n\nSigned-off-by: Bob Hacker <bob@example.org>")
    (d / "series").write_text("# the series\n\n0001-virtio_ring-first.patch\n0002-virtio_ring-second.patch -p1\n")
    return d
