"""Every stage of the walking skeleton, for real, in pipeline order."""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ktest import series as kseries
from ktest import tree as ktree
from ktest.build import RINGTEST_VARIANTS, debian_release
from tests.conftest import REPO, git
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow
PATCHES = REPO / "patches"


def test_tree_prepare_cold_then_warm(prepared, version, base_tag):
    path, cold = prepared
    assert version.startswith(ktree.DEFAULT_DEBIAN + ".")
    assert f"Linux {version}" in cold.stdout
    assert git(path, "tag", "--list", f"v{version}-*").split() == [base_tag]
    assert git(path, "status", "--porcelain", "--untracked-files=no") == ""
    assert "Debian packaging" not in (path / ".gitignore").read_text()
    start = time.monotonic()
    warm = ktest("tree", "prepare", check=0)
    assert time.monotonic() - start < 15
    assert "reusing prepared tree" in warm.stderr


def test_series_apply_one_commit_per_patch(applied, base_tag):
    s = kseries.load(PATCHES)
    assert s.patches, "patches/series is empty"
    subjects = git(applied, "log", "--reverse", "--format=%s", f"{base_tag}..ktest/series").splitlines()
    assert subjects == [p.subject for p in s.patches]
    assert git(applied, "status", "--porcelain", "--untracked-files=no") == ""
    again = ktest("series", "apply", check=0)
    assert "already applied" in again.stderr


def test_quilt_pushes_the_series_on_the_pristine_tree(applied, base_tag, tmp_path):
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    archive = tmp_path / "base.tar"
    git(applied, "archive", "-o", str(archive), base_tag)
    subprocess.run(["tar", "-xf", str(archive), "-C", str(pristine)], check=True, timeout=600)
    r = subprocess.run(["quilt", "push", "-a"], cwd=pristine, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "QUILT_PATCHES": str(PATCHES)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "fuzz" not in r.stdout and "offset" not in r.stdout, r.stdout
    changed = git(applied, "diff", "--name-only", base_tag, "ktest/series").split()
    for f in changed:
        assert (pristine / f).read_bytes() == (applied / f).read_bytes(), f


def test_patch_that_does_not_apply_is_named(applied, base_tag, tmp_path):
    broken = tmp_path / "patches"
    shutil.copytree(PATCHES, broken)
    s = kseries.load(broken)
    last = s.patches[-1]
    text = last.path.read_text().splitlines(keepends=True)
    # Damage the first context line of the first hunk of the last patch.
    i = next(n for n, ln in enumerate(text) if ln.startswith("@@ ")) + 1
    while not text[i].startswith(" "):
        i += 1
    text[i] = " this line is not in the tree\n"
    last.path.write_text("".join(text))
    h = last.hunks[0]
    r = ktest("series", "apply", "--patches", broken)
    assert r.returncode != 0
    assert f"patch {last.name} does not apply: {h.file}: hunk #1" in r.stderr, r.stderr
    good = [p.subject for p in s.patches[:-1]]
    head = git(applied, "log", "-1", "--format=%s").strip()
    assert head == (good[-1] if good else git(applied, "log", "-1", "--format=%s", base_tag).strip())
    assert git(applied, "status", "--porcelain", "--untracked-files=no") == ""
    ktest("series", "apply", check=0)        # the real series comes back


def test_kmod_build(applied):
    r = ktest("build", "--kmod", check=0)
    kos = [Path(p) for p in r.stdout.split()]
    assert sorted(k.name for k in kos) == sorted(
        ["virtio_ring.ko", "virtio_net.ko", "vhost.ko", "vhost_net.ko", "vhost_test.ko",
         "vringh.ko", "vdpa.ko", "vdpa_sim.ko", "vdpa_sim_net.ko", "virtio_vdpa.ko", "vhost_vdpa.ko"])
    # Built against the guest's own release: on 6.12 the kernel ktest builds
    # (Debian's image has virtio_ring built in), on 6.1 Debian's.
    from ktest.qemu import guest

    release = guest.resolve_kernel("auto")[1]
    for k in kos:
        magic = subprocess.run(["modinfo", "-F", "vermagic", str(k)], capture_output=True, text=True,
                               timeout=30).stdout.split()[0]
        assert magic == release
    meta = json.loads((kos[0].parent / "metadata.json").read_text())
    assert meta["result"] == "pass" and meta["commit"] == git(applied, "rev-parse", "HEAD").strip()
    assert (kos[0].parent / "reproducer.sh").read_text().count("make -C ") == 1
    # The staged source is the patched one.
    assert (kos[0].parent / "drivers/virtio/virtio_ring.c").read_bytes() == \
        (applied / "drivers/virtio/virtio_ring.c").read_bytes()
    # Nothing changed: make is not even started.
    again = ktest("build", "--kmod", check=0)
    assert "building modules" not in again.stderr and again.stdout == r.stdout
    # An edit to a source is built.
    src = applied / "drivers/virtio/virtio_ring.c"
    try:
        src.write_text(src.read_text() + "\n/* ktest test edit */\n")
        edited = ktest("build", "--kmod", check=0)
        assert "building modules" in edited.stderr
        assert (kos[0].parent / "drivers/virtio/virtio_ring.c").read_text().endswith("/* ktest test edit */\n")
    finally:
        git(applied, "checkout", "--", "drivers/virtio/virtio_ring.c")
    ktest("build", "--kmod", check=0)


def test_accel_probe_is_bounded_and_cached(applied):
    from ktest.qemu import boot as qboot

    kernel = Path(f"/boot/vmlinuz-{debian_release()}")
    start = time.monotonic()
    accel = qboot.probe_accel(kernel, timeout=20, force=True)
    assert accel in ("kvm", "tcg")
    assert time.monotonic() - start < 60
    assert qboot.probe_accel(kernel) == accel           # cached: no second boot


def test_boot_runs_cmd_with_patched_modules_and_exit_status(applied):
    r = ktest("boot", "--", "sh", "-c", "cat /sys/module/virtio_ring/taint; ip -o link show eth0; exit 7")
    assert r.returncode == 7, r.stderr
    # Out of tree: our build (E too in Debian's signed kernel; ktest's own 6.12 guest does not sign).
    assert re.search(r"^OE?$", r.stdout, re.M), r.stdout
    assert "eth0" in r.stdout
    log = Path(r.stderr.split("console log ")[1].split()[0])
    assert re.search(r"virtio_ring taint=OE?$", log.read_text(), re.M)


def test_boot_reports_panic(applied):
    r = ktest("boot", "--", "sh", "-c", "echo c > /proc/sysrq-trigger")
    assert r.returncode != 0
    assert "PANIC" in r.stderr and "sysrq triggered crash" in r.stderr and "log:" in r.stderr


def test_boot_timeout_leaves_nothing_running(applied, home):
    r = ktest("boot", "--timeout", "20", "--", "sleep", "600")
    assert r.returncode != 0
    assert "timed out after 20 s" in r.stderr
    # Only this session's QEMUs: their initramfs lives in the test's KTEST_HOME.
    leftover = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64 .*{home}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_main_job_prints_a_ringtest_table(applied, tmp_path):
    r = ktest("run", "--runs", "2", "--run-cycles", "20000", "--variants", "ring", "virtio_ring_inorder",
              "--out", tmp_path, check=0)
    assert "ring " in r.stdout and "virtio_ring_inorder" in r.stdout and "median s" in r.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [(x["variant"], x["run"], x["status"]) for x in doc["records"]] == [
        ("ring", 1, 0), ("virtio_ring_inorder", 1, 0), ("ring", 2, 0), ("virtio_ring_inorder", 2, 0)]
    assert all(x["wall_s"] > 0 for x in doc["records"])
    assert "virtio_ring" in doc["inputs"]["modules_out_of_tree"]
    assert doc["inputs"]["commit"] == git(applied, "rev-parse", "ktest/series").strip()


def test_unknown_variant(applied):
    r = ktest("bench", "ringtest", "--variants", "nosuch")
    assert r.returncode != 0 and "unknown ringtest variant(s): nosuch" in r.stderr
    assert set(RINGTEST_VARIANTS) <= set(r.stderr.replace(",", " ").replace(")", " ").split())


def test_export_of_the_real_series_is_byte_stable(applied, tmp_path):
    copy = tmp_path / "patches"
    shutil.copytree(PATCHES, copy)
    r = ktest("series", "export", "--patches", copy, check=0)
    assert "0 written" in r.stderr and "0 removed" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == {p.name: p.read_bytes() for p in PATCHES.iterdir()}


def test_series_check_on_the_real_series(applied):
    r = ktest("series", "check", check=0)
    n = len(kseries.load(PATCHES).patches)
    assert f"{n} patches: all apply cleanly, checkpatch --strict clean" in r.stdout


def test_checkpatch_problem_names_the_patch(applied, tmp_path):
    broken = tmp_path / "patches"
    shutil.copytree(PATCHES, broken)
    last = kseries.load(broken).patches[-1]
    lines = last.path.read_text().splitlines(keepends=True)
    i = next(n for n, ln in enumerate(lines) if ln.startswith("+") and not ln.startswith("+++") and ln.strip() != "+")
    lines[i] = lines[i].rstrip("\n") + "   \n"
    last.path.write_text("".join(lines))
    r = ktest("series", "check", "--patches", broken)
    assert r.returncode == 1
    assert last.name[:20] in r.stdout and "trailing whitespace" in r.stdout, r.stdout


def test_build_each_builds_every_patch(applied):
    r = ktest("series", "build-each", check=0)
    n = len(kseries.load(PATCHES).patches)
    assert r.stdout.count(" built ") == n, r.stdout
    assert git(applied, "branch", "--show-current").strip() == "ktest/series"


def test_status_of_the_real_series(applied, base_tag):
    r = ktest("series", "status", check=0)
    n = len(kseries.load(PATCHES).patches)
    assert f"base {base_tag}" in r.stdout
    assert r.stdout.count(" yes ") == 2 * n and "differ" not in r.stdout, r.stdout


def test_pvh_entry_and_bzimage_both_boot(applied):
    """The default boots the unpacked vmlinux through its PVH entry; --bzimage the BIOS way."""
    dry = ktest("boot", "--modules", "none", "--dry-run", "--", "true", check=0)
    kernel = dry.stdout.split(" -kernel ")[1].split()[0]
    assert ".pvh-" in kernel and Path(kernel).read_bytes()[:4] == b"\x7fELF"
    for extra in ([], ["--bzimage"]):
        r = ktest("boot", "--modules", "none", *extra, "--", "sh", "-c", "uname -r; exit 3")
        assert r.returncode == 3, r.stderr
        assert ("(PVH)" in r.stderr) == (not extra)


def test_nic_options_reach_the_device(applied):
    r = ktest("boot", "--nic-opt", "event_idx=off", "--nic-opt", "mrg_rxbuf=off", "--",
              "sh", "-c", "cat /sys/class/net/eth0/device/features", check=0)
    bits = r.stdout.split()[0]
    assert bits[29] == "0" and bits[15] == "0"          # VIRTIO_RING_F_EVENT_IDX, VIRTIO_NET_F_MRG_RXBUF
    r = ktest("boot", "--", "sh", "-c", "cat /sys/class/net/eth0/device/features", check=0)
    assert r.stdout.split()[0][29] == "1" and r.stdout.split()[0][15] == "1"
    bad = ktest("boot", "--nic-opt", "event_idx=off,x=1", "--", "true")
    assert bad.returncode != 0 and "is not PROP=VALUE" in bad.stderr
