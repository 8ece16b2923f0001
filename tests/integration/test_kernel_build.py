"""A real minimal kernel (tinyconfig + configs/guest.config + ringtest.config) built once, cached, and booted."""
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow
RING = "drivers/virtio/virtio_ring.c"


@pytest.fixture(scope="session")
def kernel(applied):
    """The one cold kernel build of the session (about 5 min on 2 cores)."""
    start = time.monotonic()
    r = ktest("build", "--kernel", check=0, timeout=3600)
    return Path(r.stdout.strip().splitlines()[-1]), time.monotonic() - start, r


def test_build_makes_the_artifacts_and_records(kernel, applied, version):
    bzimage, seconds, r = kernel
    d = bzimage.parent
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["result"] == "pass" and meta["kind"] == "kernel"
    assert meta["commit"] == git(applied, "rev-parse", "HEAD").strip()
    # No +, -g<hash> or -dirty: the modules are installed under the plain version.
    assert meta["release"] == version
    assert meta["inputs"]["fragments"][-1].endswith("configs/ktest.config")
    assert meta["compiles"] > 500
    for name in ("bzImage", "System.map", "config", "build.log", "reproducer.sh"):
        assert (d / name).is_file(), name
    mods = d / "modules/lib/modules" / version
    kos = {p.name for p in mods.rglob("*.ko")}
    assert {"virtio_pci.ko", "virtio_net.ko", "virtio_ring.ko", "vhost.ko", "vhost_net.ko"} <= kos
    assert (mods / "modules.dep").exists()
    repro = (d / "reproducer.sh").read_text()
    assert "O=" in repro and "'CC=ccache gcc'" in repro and "LOCALVERSION=" in repro and "modules_install" in repro
    # The build ran on the series: the patched virtio_ring is in it.
    assert git(applied, "status", "--porcelain", "--untracked-files=no") == ""


def test_repeat_is_cached_without_make(kernel):
    bzimage, _, _ = kernel
    start = time.monotonic()
    r = ktest("build", "--kernel", check=0)
    took = time.monotonic() - start
    assert r.stdout.strip() == str(bzimage)
    assert "(cached)" in r.stderr
    assert took < 5, f"cached build took {took:.1f} s"


def test_dry_run_prints_the_make_commands(kernel, applied):
    r = ktest("build", "--kernel", "--dry-run", check=0)
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"make -C {applied} O=") and "'CC=ccache gcc' LOCALVERSION= bzImage modules" in first
    assert "modules_install INSTALL_MOD_PATH=" in r.stdout.splitlines()[1]


def test_built_kernel_boots_with_its_own_and_patched_modules(kernel, version):
    r = ktest("boot", "--kernel", "built", "--", "sh", "-c",
              "uname -r; cat /sys/module/virtio_ring/taint; ls /sys/module; ip -o link show eth0", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split()
    assert lines[0] == version
    assert lines[1] == "O"                     # kmod/ built against the build dir: out of tree
    for m in ("virtio_net", "virtio_pci", "vhost_net", "vhost_test"):
        assert m in lines, m
    assert "eth0" in r.stdout


def test_built_kernel_boots_by_image_path_with_stock_modules(kernel, version):
    bzimage, _, _ = kernel
    r = ktest("boot", "--kernel", bzimage, "--modules", "none", "--net", "none", "--", "uname", "-r", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == version


def test_build_failure_shows_the_first_error_and_keeps_the_cache(kernel, applied):
    bzimage, _, _ = kernel
    before = bzimage.read_bytes()
    path = applied / RING
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\nthis is not C;\n")
        r = ktest("build", "--kernel", timeout=1800)
        assert r.returncode != 0
        assert f"{RING}:" in r.stderr and "error" in r.stderr, r.stderr[-2000:]
        assert "log:" in r.stderr
    finally:
        path.write_bytes(original)
        subprocess.run(["git", "-C", str(applied), "update-index", "--refresh"], capture_output=True, timeout=120)
    assert bzimage.read_bytes() == before
    # Back at the committed source, the cached kernel is the answer again, at once.
    r = ktest("build", "--kernel", check=0)
    assert r.stdout.strip() == str(bzimage) and "(cached)" in r.stderr
