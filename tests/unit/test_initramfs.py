import subprocess
from pathlib import Path

import pytest

from ktest.build import debian_release
from ktest.errors import BootError
from ktest.qemu import initramfs as irfs

# Debian's 6.1 kernel: virtio and virtio_ring are modules there (6.12 has them
# built in), so the patched-first ordering has a chain to order.
RELEASE = debian_release("6.1")


def test_newc_archive_is_read_by_cpio(tmp_path, ktest_home):
    img = irfs.build(["echo", "it's ok"], [], {"bin/tool": Path("/bin/true"), "a/b/c": Path("/bin/true")},
                     net=False)
    listing = subprocess.run(["cpio", "-it", "--quiet"], stdin=open(img.path, "rb"),
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
    for name in ("init", "bin/busybox", "ktest/cmd", "ktest/bin/tool", "dev/console",
                 "etc/udhcpc/default.script", "ktest/modules.order", "ktest/a", "ktest/a/b", "ktest/a/b/c"):
        assert name in listing
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "ktest/cmd", "init"], cwd=out, stdin=open(img.path, "rb"),
                   check=True, timeout=60)
    assert (out / "ktest/cmd").read_text() == "echo 'it'\"'\"'s ok'\n"
    assert f"KTEST-EXIT-{img.nonce}" in (out / "init").read_text()
    # Parents come before what they hold, as the kernel's unpacker needs.
    assert listing.index("ktest/a") < listing.index("ktest/a/b") < listing.index("ktest/a/b/c")


def test_same_contents_same_cached_archive(ktest_home):
    a = irfs.build(["true"], [], net=False)
    b = irfs.build(["true"], [], net=False)
    c = irfs.build(["false"], [], net=False)
    assert a.path == b.path and a.nonce == b.nonce
    assert c.path != a.path and c.nonce != a.nonce


def test_modules_in_dependency_order_patched_first_choice(tmp_path):
    stock = irfs.stock_modules(RELEASE)
    fake_patched = {"virtio_ring": stock["virtio_ring"]}
    mods = irfs.resolve_modules(["virtio_net"], fake_patched, RELEASE)
    names = [m.name for m in mods]
    assert names.index("virtio_ring") < names.index("virtio") < names.index("virtio_net")
    assert names.index("failover") < names.index("net_failover") < names.index("virtio_net")
    assert [m.name for m in mods if m.patched] == ["virtio_ring"]


def test_unknown_module(tmp_path):
    with pytest.raises(BootError, match="module no_such_mod not found"):
        irfs.resolve_modules(["no_such_mod"], {}, RELEASE)


def test_vermagic_mismatch_is_named():
    mods = irfs.resolve_modules(["virtio_ring"], {}, RELEASE)
    with pytest.raises(BootError, match=f"module virtio_ring .* was built for kernel {RELEASE}, "
                                        "but the guest kernel is 5.10.0-99-amd64"):
        irfs.check_vermagic(mods, "5.10.0-99-amd64")


def test_not_a_module(tmp_path):
    f = tmp_path / "junk.ko"
    f.write_text("not elf")
    with pytest.raises(BootError, match="junk.ko: not a kernel module"):
        irfs.modinfo(f, "depends")
