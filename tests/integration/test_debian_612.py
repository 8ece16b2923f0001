"""Debian's 6.12 beside the default 6.1 (issue 18): `tree prepare --debian 6.12`, Debian's
6.12 image booting through the zstd PVH unpacking, the patched virtio_ring never silently
skipped where 6.12 has it built in, and a rebase taking a moved hunk on the real tree.

A KTEST_HOME of its own (KTEST_TEST_HOME_612 reuses one), so the session's 6.1 tree
stays current for the other tests.  2 min 36 s cold here (loaded machine), 18 s warm, before
test_612_guest_runs_the_patched_virtio_ring, whose cold run builds Linux 6.12 (see there)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, git

pytestmark = pytest.mark.slow

SOURCE = Path("/usr/src/linux-source-6.12.tar.xz")
if not SOURCE.exists() or not list(Path("/boot").glob("vmlinuz-6.12.*")):
    pytest.skip("linux-source-6.12 or linux-image-6.12-amd64 is not installed (scripts/setup-host installs them)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def env612(tmp_path_factory):
    home = os.environ.get("KTEST_TEST_HOME_612") or str(tmp_path_factory.mktemp("ktest-home-612"))
    return {**os.environ, "KTEST_HOME": home}


def k(env, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def tree612(env612):
    r = k(env612, "tree", "prepare", "--debian", "6.12", timeout=1800)
    assert r.returncode == 0, r.stderr
    m = re.search(r"/debian-(6\.12\.\d+)  base v(6\.12\.\d+)-debian \(\w+\), Linux (6\.12\.\d+)$", r.stdout.strip())
    assert m and m.group(1) == m.group(2) == m.group(3), r.stdout
    path = Path(k(env612, "tree", "path").stdout.strip())
    return path, m.group(1)


def test_612_tree_is_tagged_with_its_version(tree612):
    path, version = tree612
    assert path.name == f"debian-{version}"
    assert "Debian linux-source-6.12" in git(path, "log", "-1", "--format=%s", f"v{version}-debian")
    assert git(path, "rev-parse", f"v{version}-debian").strip() == git(path, "rev-list", "--max-parents=0",
                                                                      "HEAD").strip()


def test_612_debian_kernel_boots_through_zstd_pvh(env612, tree612):
    r = k(env612, "boot", "--modules", "none", "--", "uname", "-r")
    assert r.returncode == 0, r.stderr
    assert any(re.fullmatch(r"6\.12\.\d+\+deb12-amd64", ln) for ln in r.stdout.splitlines()), r.stdout
    assert "(PVH)" in r.stderr, r.stderr       # the zstd payload was unpacked, not the BIOS path


def test_612_patched_virtio_ring_is_not_skipped(env612, tree612):
    """6.12's image has virtio_ring built in: booting it with the patched modules is refused
    by name before anything is built, and the default asks for a kernel ktest builds."""
    r = k(env612, "boot", "--kernel", "debian", "--", "true")
    assert r.returncode == 1
    assert "has virtio_ring built in" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = k(env612, "boot", "--dry-run", "--", "true")
    assert r.returncode == 0, r.stderr
    if "would build it first" in r.stderr:      # no 6.12 kernel ktest built yet: boot would build one
        assert "has virtio_ring built in" in r.stderr and "bzImage modules" in r.stderr, r.stderr
    else:                                       # one is there: it is the guest, not Debian's
        assert "/builds/kernel-" in r.stdout and "vmlinuz-6.12" not in r.stdout


def test_612_rebase_takes_a_moved_hunk(env612, tree612, tmp_path):
    """A one-patch series on 6.12's virtio_ring.c, replayed onto a base that added lines
    above it: applied at an offset and listed, not refused."""
    path, version = tree612
    ring = path / "drivers/virtio/virtio_ring.c"
    text = ring.read_text()
    ring.write_text(text.replace("#include <linux/dma-mapping.h>",
                                 "#include <linux/dma-mapping.h>\n/* ktest: the series' change */", 1))
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-ring.patch").write_text("virtio_ring: a test change\n\n---\n" + git(path, "diff"))
    (patches / "series").write_text("0001-ring.patch\n")
    git(path, "checkout", "-q", "--", "drivers/virtio/virtio_ring.c")
    r = k(env612, "series", "apply", "--patches", patches)
    assert r.returncode == 0, r.stderr
    # The "new release": three lines above the patch's hunk.
    git(path, "checkout", "-q", "--detach", f"v{version}-debian")
    ring.write_text("/* new */\n" * 3 + ring.read_text())
    git(path, "commit", "-q", "-am", "new base")
    onto = git(path, "rev-parse", "HEAD").strip()
    git(path, "checkout", "-q", "-")
    r = k(env612, "series", "rebase", "--onto", onto, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "applied at offsets" in r.stderr and "offset 3 lines" in r.stderr, r.stderr
    assert f"Linux {version}" in r.stderr
    # And back onto the pristine base (the hunk moves back): the tree is as prepared.
    r = k(env612, "series", "rebase", "--onto", f"v{version}-debian", timeout=600)
    assert r.returncode == 0 and "offset -3 lines" in r.stderr, r.stderr


MARKER = "ktest_612_marker"


def test_612_guest_runs_the_patched_virtio_ring(env612, tree612, tmp_path):
    """The default --kernel auto on 6.12 builds Linux 6.12 itself (once; cached after) and
    loads the patched virtio_ring into it: a one-patch series gives virtio_ring a module
    parameter only the patched build has.  The cold kernel build is the cost (2046 s at -j2
    on this 2-core machine shared with three other builds, load ~10); with a KTEST_TEST_HOME_612
    that holds one, the whole file took 27 s."""
    path, version = tree612
    ring = path / "drivers/virtio/virtio_ring.c"
    git(path, "checkout", "-q", "--detach", f"v{version}-debian")
    ring.write_text(ring.read_text() + f"\nstatic int {MARKER} = 612;\nmodule_param({MARKER}, int, 0444);\n")
    patches = tmp_path / "patches"
    patches.mkdir()
    (patches / "0001-marker.patch").write_text("virtio_ring: a parameter only this build has\n\n---\n"
                                              + git(path, "diff"))
    (patches / "series").write_text("0001-marker.patch\n")
    git(path, "checkout", "-q", "--", "drivers/virtio/virtio_ring.c")
    r = k(env612, "series", "apply", "--patches", patches)
    assert r.returncode == 0, r.stderr
    r = k(env612, "boot", "--", "sh", "-c", f"uname -r; cat /sys/module/virtio_ring/taint "
          f"/sys/module/virtio_ring/parameters/{MARKER} /sys/devices/system/cpu/online", timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    # Ours (out of tree, with the marker), on both vCPUs: ringtest pins a thread to each.
    assert r.stdout.split() == [version, "O", "612", "0-1"], r.stdout
    assert "with patched" in r.stderr and "virtio_ring" in r.stderr, r.stderr
    # The second boot finds the kernel: nothing is built again.
    r = k(env612, "boot", "--dry-run", "--", "true")
    assert r.returncode == 0 and "would build" not in r.stderr and "/builds/kernel-" in r.stdout, r.stderr
