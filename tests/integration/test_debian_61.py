"""Debian's 6.1 beside the default 6.12 (issue 18): `tree prepare --debian 6.1` under its own
name, everything that depends on the release following that tree (the guest is Debian's 6.1
image, where virtio_ring is a module, and the patched module is built against 6.1's headers),
and a rebase taking a moved hunk on the real tree.

The series itself is 6.12's; here a one-patch series stands in.  A KTEST_HOME of its own
(KTEST_TEST_HOME_61 reuses one), so the session's 6.12 tree stays current for the other tests."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, git

pytestmark = pytest.mark.slow

SOURCE = Path("/usr/src/linux-source-6.1.tar.xz")
if not SOURCE.exists() or not list(Path("/boot").glob("vmlinuz-6.1.0-*")):
    pytest.skip("linux-source-6.1 or linux-image-amd64 (6.1) is not installed (scripts/setup-host installs them)",
                allow_module_level=True)

MARKER = "ktest_61_marker"


@pytest.fixture(scope="module")
def env61(tmp_path_factory):
    home = os.environ.get("KTEST_TEST_HOME_61") or str(tmp_path_factory.mktemp("ktest-home-61"))
    return {**os.environ, "KTEST_HOME": home}


def k(env, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tree61(env61):
    r = k(env61, "tree", "prepare", "--debian", "6.1", timeout=1800)
    assert r.returncode == 0, r.stderr
    m = re.search(r"/debian-(6\.1\.\d+)  base v(6\.1\.\d+)-debian \(\w+\), Linux (6\.1\.\d+)$", r.stdout.strip())
    assert m and m.group(1) == m.group(2) == m.group(3), r.stdout
    path = Path(k(env61, "tree", "path").stdout.strip())
    return path, m.group(1)


def _one_patch_series(path: Path, version: str, dest: Path, edit) -> Path:
    """patches/ with one patch: ``edit`` applied to virtio_ring.c at the pristine base."""
    ring = path / "drivers/virtio/virtio_ring.c"
    git(path, "checkout", "-q", "--detach", f"v{version}-debian")
    ring.write_text(edit(ring.read_text()))
    dest.mkdir()
    (dest / "0001-ring.patch").write_text("virtio_ring: a test change\n\n---\n" + git(path, "diff"))
    (dest / "series").write_text("0001-ring.patch\n")
    git(path, "checkout", "-q", "--", "drivers/virtio/virtio_ring.c")
    return dest


def test_61_tree_is_tagged_with_its_version(tree61):
    path, version = tree61
    assert path.name == f"debian-{version}"
    assert "Debian linux-source-6.1" in git(path, "log", "-1", "--format=%s", f"v{version}-debian")
    assert git(path, "rev-parse", f"v{version}-debian").strip() == git(path, "rev-list", "--max-parents=0",
                                                                      "HEAD").strip()


def test_61_guest_is_debians_61_with_the_patched_module(env61, tree61, tmp_path):
    """--kernel auto on a 6.1 tree: Debian's 6.1 image (no kernel build), and the patched
    virtio_ring, built against 6.1's headers, replacing its own module."""
    path, version = tree61
    patches = _one_patch_series(path, version, tmp_path / "patches", lambda s: s +
                                f"\nstatic int {MARKER} = 61;\nmodule_param({MARKER}, int, 0444);\n")
    r = k(env61, "series", "apply", "--patches", patches)
    assert r.returncode == 0, r.stderr
    r = k(env61, "boot", "--dry-run", "--", "true")
    assert r.returncode == 0 and "would build" not in r.stderr and "vmlinuz-6.1.0-" in r.stdout, r.stderr
    r = k(env61, "boot", "--", "sh", "-c", f"uname -r; cat /sys/module/virtio_ring/taint "
          f"/sys/module/virtio_ring/parameters/{MARKER}", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.split()
    # Out of tree (O) and, in Debian's signed kernel, unsigned (E).
    assert re.fullmatch(r"6\.1\.0-\d+-amd64", out[0]) and out[1:] == ["OE", "61"], r.stdout


def test_61_rebase_takes_a_moved_hunk(env61, tree61, tmp_path):
    """A one-patch series on virtio_ring.c, replayed onto a base that added lines above
    it: applied at an offset and listed, not refused."""
    path, version = tree61
    patches = _one_patch_series(path, version, tmp_path / "patches", lambda s: s.replace(
        "#include <linux/dma-mapping.h>", "#include <linux/dma-mapping.h>\n/* ktest: the series' change */", 1))
    r = k(env61, "series", "apply", "--patches", patches)
    assert r.returncode == 0, r.stderr
    ring = path / "drivers/virtio/virtio_ring.c"
    # The "new release": three lines above the patch's hunk.
    git(path, "checkout", "-q", "--detach", f"v{version}-debian")
    ring.write_text("/* new */\n" * 3 + ring.read_text())
    git(path, "commit", "-q", "-am", "new base")
    onto = git(path, "rev-parse", "HEAD").strip()
    git(path, "checkout", "-q", "-")
    r = k(env61, "series", "rebase", "--onto", onto, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "applied at offsets" in r.stderr and "offset 3 lines" in r.stderr, r.stderr
    assert f"Linux {version}" in r.stderr
    # And back onto the pristine base (the hunk moves back): the tree is as prepared.
    r = k(env61, "series", "rebase", "--onto", f"v{version}-debian", timeout=600)
    assert r.returncode == 0 and "offset -3 lines" in r.stderr, r.stderr
