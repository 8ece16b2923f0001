"""Faults the boot stage must never hide: real WARN, failing module, missing
command, bad kernel image, module for another kernel.  (Panic, hang and
exit status are in test_pipeline.py.)"""
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from ktest.build import debian_release
from tests.conftest import REPO
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def test_kmods(tmp_path_factory):
    d = tmp_path_factory.mktemp("kmods")
    for f in (REPO / "tests/data/kmods").iterdir():
        shutil.copy(f, d)
    subprocess.run(["make", "-C", f"/lib/modules/{debian_release()}/build", f"M={d}", "modules"],
                   check=True, capture_output=True, timeout=600)
    return d


def test_real_warning_fails_the_boot_and_shows_its_trace(applied, test_kmods):
    r = ktest("boot", "--modules", "none", "--extra-module", test_kmods / "ktest_warn.ko", "--", "true")
    assert r.returncode != 0
    assert "WARN:" in r.stderr and "ktest_warn: deliberate warning" in r.stderr
    assert "ktest_warn_init" in r.stderr            # the call trace is shown
    ok = ktest("boot", "--allow-warn", "--modules", "none", "--extra-module", test_kmods / "ktest_warn.ko",
               "--", "true")
    assert ok.returncode == 0, ok.stderr
    assert "WARN in guest console" in ok.stderr      # still printed


def test_module_that_fails_to_load_is_named_with_dmesg(applied, test_kmods):
    r = ktest("boot", "--modules", "none", "--extra-module", test_kmods / "ktest_fail.ko", "--", "true")
    assert r.returncode != 0
    assert "module ktest_fail failed to load in the guest" in r.stderr
    assert "ktest_fail: refusing to load, as asked" in r.stderr


def test_command_not_found(applied):
    r = ktest("boot", "--modules", "none", "--", "no-such-program", "x")
    assert r.returncode != 0 and "command 'no-such-program' not found in the guest" in r.stderr


def test_bad_kernel_images(applied, tmp_path):
    r = ktest("boot", "--kernel", tmp_path / "missing", "--", "true")
    assert r.returncode != 0 and "does not exist" in r.stderr
    junk = tmp_path / "vmlinux"
    junk.write_bytes(b"\x7fELF" + b"\0" * 4096)
    r = ktest("boot", "--kernel", junk, "--", "true")
    assert r.returncode != 0 and "is not a bzImage" in r.stderr


def test_module_for_another_kernel_is_refused_before_boot(applied, tmp_path):
    ko = tmp_path / "virtio_net.ko"
    # A module whose vermagic names another release: rewrite the string in place.
    stock = Path(f"/lib/modules/{debian_release()}/kernel/drivers/net/virtio_net.ko")
    # Debian's 6.12 ships its modules xz-compressed (virtio_net.ko.xz), 6.1 plain.
    data = stock.read_bytes() if stock.exists() else lzma.decompress(stock.with_suffix(".ko.xz").read_bytes())
    rel = debian_release().encode()
    other = b"9" * len(rel)
    ko.write_bytes(data.replace(b"vermagic=" + rel, b"vermagic=" + other))
    r = ktest("boot", "--modules", "none", "--extra-module", ko, "--", "true")
    assert r.returncode != 0
    assert f"module virtio_net ({ko}) was built for kernel {other.decode()}" in r.stderr


def test_patched_virtio_net_carries_traffic(applied, tmp_path):
    """Ping the user-net gateway and fetch a few MB through the patched driver."""
    import http.server
    import threading

    blob = tmp_path / "blob"
    blob.write_bytes(b"\xa5" * (4 << 20))
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        r = ktest("boot", "--", "sh", "-c",
                  "ping -c 3 -W 5 10.0.2.2 && "
                  f"wget -q -O /tmp/blob http://10.0.2.2:{port}/blob && wc -c < /tmp/blob && "
                  "cat /sys/module/virtio_net/taint && cat /sys/class/net/eth0/statistics/rx_bytes")
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert "3 packets received" in r.stdout or "3 received" in r.stdout
    assert str(4 << 20) in out
    # Out of tree (O); Debian's kernel also marks it unsigned (E), ktest's own 6.12 build does not sign.
    assert out[-2] in ("O", "OE"), out
    assert int(out[-1]) > 4 << 20
