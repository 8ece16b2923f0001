"""The guest's two channels and ktest's signals, on real QEMU boots.

The program's output and exit status come on their own virtio-serial port,
so nothing it prints is taken for a kernel report or hides its status; the
kernel's own reports still fail the boot.  Every signal that stops ktest
stops its QEMU too.
"""
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

BOOT = ["boot", "--modules", "none", "--net", "none", "--accel", "tcg"]


def _qemus(home) -> list[str]:
    # Only this session's QEMUs: their initramfs lives in the test's KTEST_HOME.
    r = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64 .*{home}/"], capture_output=True, text=True)
    return r.stdout.split()


def test_printf_without_newline_exits_0(home):
    r = ktest(*BOOT, "--", "printf", "hello", check=0)
    assert r.stdout == "hello\n"


def test_report_like_program_output_is_no_report(home):
    r = ktest(*BOOT, "--", "sh", "-c", "echo 'DEBUG: ring size 256'; echo 'BUG: no'; "
              "echo 'Kernel panic - not syncing: no'; echo 'WARNING: CPU: 0 PID: 1 at no'; exit 3")
    assert r.returncode == 3, r.stderr
    assert "DEBUG: ring size 256" in r.stdout and "reported" not in r.stderr


def test_echo_debug_line_exits_0(home):
    r = ktest(*BOOT, "--", "echo", "DEBUG: ring size 256", check=0)
    assert r.stdout == "DEBUG: ring size 256\n"


def test_stderr_background_children_and_dev_stderr(home):
    """stderr comes along; /dev/stderr can be opened; a child left in the
    background does not hold the exit status back."""
    r = ktest(*BOOT, "--timeout", "120", "--", "sh", "-c",
              "echo out; echo err >&2; echo again > /dev/stderr; sleep 600 & exit 5")
    assert r.returncode == 5, r.stderr
    assert r.stdout.splitlines() == ["out", "err", "again"]


def test_real_sysrq_panic_still_fails_the_boot(home):
    r = ktest(*BOOT, "--", "sh", "-c", "echo c > /proc/sysrq-trigger")
    assert r.returncode != 0
    assert "PANIC" in r.stderr and "sysrq triggered crash" in r.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_signal_to_ktest_boot_leaves_no_qemu(home, sig):
    assert _qemus(home) == []
    p = subprocess.Popen([sys.executable, "-m", "ktest", *BOOT, "--", "sleep", "100"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if _qemus(home):
                break
            time.sleep(0.1)
        assert _qemus(home), "QEMU never started"
        time.sleep(2)
        signum = getattr(signal, sig)
        p.send_signal(signum)
        p.wait(timeout=60)
        if signum != signal.SIGKILL:
            assert p.returncode == 128 + signum, p.stderr.read()
        for _ in range(100):
            if not _qemus(home):
                break
            time.sleep(0.1)
        assert _qemus(home) == []
    finally:
        if p.poll() is None:
            p.kill()
        for pid in _qemus(home):
            subprocess.run(["kill", "-KILL", pid])
