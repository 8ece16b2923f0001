import subprocess
import sys

import pytest

from ktest.errors import BootError
from ktest.qemu import boot as qboot


def test_not_a_bzimage(tmp_path):
    f = tmp_path / "vmlinux"
    f.write_bytes(b"\x7fELF" + b"\0" * 1000)
    with pytest.raises(BootError, match="is not a bzImage"):
        qboot.check_kernel(f)
    with pytest.raises(BootError, match="does not exist"):
        qboot.check_kernel(tmp_path / "nope")


def test_qemu_argv_has_what_the_guest_needs(tmp_path):
    spec = qboot.BootSpec(tmp_path / "bzImage", tmp_path / "i.cpio", "n", accel="tcg", smp=2, mem="512M")
    argv = qboot.qemu_argv(spec)
    assert argv[:3] == ["qemu-system-x86_64", "-accel", "tcg"]
    assert "-no-reboot" in argv and argv[argv.index("-m") + 1] == "512M"
    assert "virtio-net-pci,netdev=n0" in argv
    assert "panic=-1" in argv[argv.index("-append") + 1]


def test_dry_run_prints_the_exact_command(ktest_home):
    r = subprocess.run([sys.executable, "-m", "ktest", "boot", "--modules", "none", "--dry-run",
                        "--", "echo", "hi"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("qemu-system-x86_64 -accel tcg") and "-initrd" in first
    assert "  ktest/cmd" in r.stdout and "  bin/busybox" in r.stdout


def test_boot_without_command_is_an_error(ktest_home):
    r = subprocess.run([sys.executable, "-m", "ktest", "boot", "--modules", "none", "--"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no command to run in the guest" in r.stderr
