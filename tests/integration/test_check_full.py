"""series check --full on the real tree: the series passes; a patch that
adds a W=1 warning, a sparse warning and a kernel-doc mismatch fails,
named, with each check named."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ktest import series as kseries
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Cold: the check worktree, three configs, each build directory's prepare
# (objtool, modpost), then every touched object before and after its patch.
TIMEOUT = 2 * 3600

BAD = """\

/**
 * vring_ktest_bad() - made by ktest's check test
 * @_vq: the queue
 */
int vring_ktest_bad(struct virtqueue *_vq, int extra)
{
	__le16 v = 5;

	return v + extra + _vq->index;
}
"""


def _git(path, *args):
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True,
                          timeout=600).stdout


def _report(stderr: str) -> dict:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("check.json: "))
    return json.loads(Path(line.split()[1]).read_text())


def test_the_series_passes(applied):
    r = ktest("series", "check", "--full", timeout=TIMEOUT)
    assert r.returncode == 0, f"{r.stdout[-6000:]}\n{r.stderr[-3000:]}"
    rep = _report(r.stderr)
    n = len(kseries.load(REPO / "patches").patches)
    assert len(rep["patches"]) == n
    by_name = {p["name"]: {c["check"]: c["result"] for c in p["checks"]} for p in rep["patches"]}
    ring = by_name["0006-virtio_ring-cache-avail-ring-entries.patch"]
    # Really built and checked, not skipped.
    assert ring["W=1"] == ring["sparse"] == ring["clang"] == ring["i386"] == ring["kernel-doc"] == "pass"
    tools = by_name["0001-tools-virtio-fix-the-userspace-build-on-6.12.patch"]
    assert tools["W=1"] == "skip" and tools["signoff"] == "pass"
    hdr = next(p for p in rep["patches"] if "-virtio_net-add-VIRTIO_NET_F_TX_HDR_BLOCK" in p["name"])
    assert "net/packet/af_packet.o" in hdr["objects"]      # a user of the changed header
    assert f"{n} patches: no new W=1, sparse, clang or i386 warnings" in r.stdout


def test_a_patch_that_adds_warnings_fails_named(applied, tmp_path):
    tree = applied
    tip = _git(tree, "rev-parse", "HEAD").strip()
    patches = tmp_path / "patches"
    shutil.copytree(REPO / "patches", patches)
    try:
        f = tree / "drivers/virtio/virtio_ring.c"
        f.write_text(f.read_text() + BAD)
        _git(tree, "commit", "-q", "-a", "-m", "virtio_ring: a patch with warnings\n\n"
             "Made by the check test.\n\nSigned-off-by: Test Author <test@example.org>",
             "--author", "Test Author <test@example.org>")
        name = _git(tree, "format-patch", "-1", "--zero-commit", "--start-number", str(len(kseries.load(REPO / "patches").patches) + 1), "-o", str(patches),
                    "HEAD").strip().rsplit("/", 1)[1]
        with open(patches / "series", "a") as s:
            s.write(name + "\n")
        r = ktest("series", "check", "--full", "--no-checkpatch", "--patches", patches, timeout=TIMEOUT)
        assert r.returncode == 1, r.stdout[-4000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("ktest: series check --full failed: ") and name in last, r.stderr[-3000:]
        for check in ("W=1", "sparse", "kernel-doc"):
            assert check in last.split(name, 1)[1], last
        rep = _report(r.stderr)
        bad = rep["patches"][-1]
        assert bad["name"] == name
        msgs = {c["check"]: c["message"] for c in bad["checks"]}
        assert "drivers/virtio/virtio_ring.c" in msgs["W=1"] and "vring_ktest_bad" in msgs["W=1"]
        assert "drivers/virtio/virtio_ring.c" in msgs["sparse"]
        assert "'extra' not described in 'vring_ktest_bad'" in msgs["kernel-doc"]
        # Only the patch's own warnings: the 17 before it still pass.
        assert all(c["result"] != "fail" for p in rep["patches"][:-1] for c in p["checks"])
        assert bad["objects"] == ["drivers/virtio/virtio_ring.o"]
    finally:
        _git(tree, "reset", "-q", "--hard", tip)
