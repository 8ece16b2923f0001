"""Debian's 6.12, the default base (issue 18), in the session's tree: Debian's 6.12 image
booting through the zstd PVH unpacking, and the patched virtio_ring never silently skipped
where that image has it built in (the guest is the Linux 6.12 ktest builds, once)."""
import re
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

if not list(Path("/boot").glob("vmlinuz-6.12.*")):
    pytest.skip("linux-image-6.12-amd64 is not installed (scripts/setup-host installs it)",
                allow_module_level=True)


def test_612_debian_kernel_boots_through_zstd_pvh(prepared):
    r = ktest("boot", "--modules", "none", "--", "uname", "-r")
    assert r.returncode == 0, r.stderr
    assert any(re.fullmatch(r"6\.12\.\d+\+deb12-amd64", ln) for ln in r.stdout.splitlines()), r.stdout
    assert "(PVH)" in r.stderr, r.stderr       # the zstd payload was unpacked, not the BIOS path


def test_612_patched_virtio_ring_is_not_skipped(applied):
    """6.12's image has virtio_ring built in: booting it with the patched modules is refused
    by name before anything is built, and the default is a kernel ktest builds."""
    r = ktest("boot", "--kernel", "debian", "--", "true")
    assert r.returncode == 1
    assert "has virtio_ring built in" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = ktest("boot", "--dry-run", "--", "true")
    assert r.returncode == 0, r.stderr
    if "would build it first" in r.stderr:      # no 6.12 kernel ktest built yet: boot would build one
        assert "has virtio_ring built in" in r.stderr and "bzImage modules" in r.stderr, r.stderr
    else:                                       # one is there: it is the guest, not Debian's
        # (its vmlinux unpacked for the PVH entry, which guest.config gives it)
        assert "bzImage.pvh-" in r.stdout and "vmlinuz-6.12" not in r.stdout, r.stdout
