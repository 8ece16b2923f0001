"""series rebase --build on the real 6.12 tree: a patch that merges cleanly onto a base
where a struct member it reads was renamed, as 6.1 -> 6.12's patch 11 did, is taken
without --build and stopped at, by file and line, with it; the fix is amended in and
built again by --continue.  The modules build against the 6.12 guest kernel ktest builds
(Debian's has virtio_ring built in), so the session's KTEST_HOME needs that kernel."""
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

RING = "drivers/virtio/virtio_ring.c"
# In virtqueue_enable_cb_delayed(): the patch adds a line after the broken check; the
# new base renames the member in the lines below it, inside the hunk's context, so
# `git apply` refuses and the three-way merge succeeds.
ANCHOR = "\t\treturn true;\n\n\tif (vq->event_triggered)\n"
ADDED = '\tpr_debug("ktest: cb delayed, triggered %d\\n", vq->event_triggered);\n'


def _series(path: Path, base_tag: str, dest: Path) -> Path:
    ring = path / RING
    git(path, "checkout", "-q", "--detach", base_tag)
    text = ring.read_text()
    assert text.count(ANCHOR) == 1
    ring.write_text(text.replace(ANCHOR, "\t\treturn true;\n" + ADDED + ANCHOR[len("\t\treturn true;\n"):]))
    dest.mkdir()
    (dest / "0001-ring.patch").write_text(
        "From: Alice Dev <alice@example.org>\nSubject: [PATCH] virtio_ring: trace delayed callbacks\n\n"
        "Why.\n\nSigned-off-by: Alice Dev <alice@example.org>\n---\n" + git(path, "diff"))
    (dest / "series").write_text("0001-ring.patch\n")
    git(path, "checkout", "-q", "--", RING)
    return dest


def _renamed_base(path: Path, base_tag: str) -> str:
    """A commit on the base renaming vring_virtqueue.event_triggered (the work tree is left on it)."""
    git(path, "checkout", "-q", "--detach", base_tag)
    ring = path / RING
    ring.write_text(ring.read_text().replace("event_triggered", "cb_triggered"))
    git(path, "commit", "-q", "-am", "virtio_ring: rename event_triggered")
    return git(path, "rev-parse", "HEAD").strip()


def test_rebase_build_stops_at_a_clean_merge_that_does_not_compile(prepared, base_tag, tmp_path):
    path = prepared[0]
    patches = _series(path, base_tag, tmp_path / "patches")
    ktest("series", "apply", "--force", "--patches", patches, check=0)
    old_tip = git(path, "rev-parse", "ktest/series").strip()
    onto = _renamed_base(path, base_tag)
    git(path, "checkout", "-q", "ktest/series")
    try:
        # Without --build: merged three ways, taken, and only named at the end.
        r = ktest("series", "rebase", "--onto", onto, check=0)
        assert "merged three ways without conflict" in r.stderr and "built (" not in r.stderr, r.stderr
        assert "run `ktest series build-each`" in r.stderr
        assert ADDED.strip() in git(path, "show", f"ktest/series:{RING}")
        r = ktest("series", "rebase", "--onto", base_tag, check=0)
        assert git(path, "diff", old_tip, "ktest/series") == ""

        # With --build: stopped at the patch, by its first compiler error.
        r = ktest("series", "rebase", "--onto", onto, "--build")
        assert r.returncode == 1, r.stderr
        err = " ".join(r.stderr.split())
        line = (path / RING).read_text().splitlines().index(ADDED.rstrip("\n")) + 1
        assert (f"rebase stopped at patch 1/1 'virtio_ring: trace delayed callbacks': it does not build: "
                f"module build failed: {path}/{RING}:{line}: error: ") in err, r.stderr
        assert "event_triggered" in err.split(f"{RING}:{line}: error: ", 1)[1].split(" ktest/", 1)[0], r.stderr
        log = Path(r.stderr.split("log: ", 1)[1].split()[0])
        assert log.is_file() and f"{RING}:{line}" in log.read_text()
        assert "git add the files, and run: ktest series rebase --continue" in err
        # Nothing lost: the series is untouched, the patch committed on the rebase branch.
        assert git(path, "rev-parse", "ktest/series").strip() == old_tip
        assert git(path, "log", "-1", "--format=%s").strip() == "virtio_ring: trace delayed callbacks"
        assert git(path, "rev-parse", "HEAD~1").strip() == onto

        # The fix, staged: --continue amends the patch with it and builds it again.
        ring = path / RING
        ring.write_text(ring.read_text().replace("vq->event_triggered);", "vq->cb_triggered);"))
        git(path, "add", RING)
        r = ktest("series", "rebase", "--continue", check=0)
        assert "patch 1/1: built" in r.stderr and "patch 1: build fixed by hand" in r.stderr, r.stderr
        assert "each built once committed (--build)" in r.stderr
        assert git(path, "rev-parse", "ktest/series~1").strip() == onto
        assert "triggered %d\\n\", vq->cb_triggered);" in git(path, "show", f"ktest/series:{RING}")
    finally:
        # Back to the base and the real series, for the tests after this one.
        ktest("series", "rebase", "--abort")
        ktest("series", "rebase", "--onto", base_tag)
        ktest("series", "apply", "--force", check=0)
