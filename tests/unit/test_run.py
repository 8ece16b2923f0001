import os
import time

import pytest

from ktest import run
from ktest.errors import CommandError, CommandTimeout
from tests.conftest import REPO


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    with pytest.raises(CommandTimeout, match="timed out after 1 s"):
        run.run(["sh", "-c", script], timeout=1)
    child = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def test_failure_names_command_and_keeps_log(tmp_path):
    log = tmp_path / "x.log"
    with pytest.raises(CommandError) as e:
        run.run(["sh", "-c", "echo boom; exit 3"], log=log, what="thing")
    assert "thing failed (exit 3)" in str(e.value) and "boom" in str(e.value)
    assert e.value.log == log and "boom" in log.read_text()


def test_missing_program():
    with pytest.raises(CommandError, match="command not found: no-such-prog"):
        run.run(["no-such-prog"])


def test_stream_reports_deadline_and_kills():
    with run.Stream(["sh", "-c", "echo one; sleep 30"]) as s:
        got = list(s.lines(time.monotonic() + 1.5))
        pid = s.proc.pid
    assert got == ["one", None]
    assert s.proc.poll() is not None
    assert not _alive(pid)


# A ktest-like process: signal handlers as cli.main installs them, one child
# started through run.py, its pid written out, then it waits.
HOLDER = """
import sys
from ktest import run
run.install_signal_handlers()
try:
    run.run(["sh", "-c", "echo $$ > " + sys.argv[1] + "; exec sleep 60"], timeout=120)
except run.Interrupted as e:
    sys.exit(e.exit_code)
"""


def _start_holder(tmp_path):
    import subprocess
    import sys

    pidfile = tmp_path / "child"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(pidfile)], cwd=str(REPO))
    for _ in range(300):
        if pidfile.exists() and pidfile.read_text().strip():
            return holder, int(pidfile.read_text())
        time.sleep(0.05)
    holder.kill()
    raise AssertionError("the child never started")


def _gone(pid: int) -> bool:
    for _ in range(100):
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
def test_every_stop_signal_is_ctrl_c_and_kills_the_child(tmp_path, sig):
    import signal

    holder, child = _start_holder(tmp_path)
    signum = getattr(signal, sig)
    holder.send_signal(signum)
    assert holder.wait(timeout=30) == 128 + signum
    assert _gone(child)


def test_children_die_with_a_sigkilled_ktest(tmp_path):
    """SIGKILL reaches no handler: the child's PR_SET_PDEATHSIG does the work."""
    holder, child = _start_holder(tmp_path)
    holder.kill()
    holder.wait(timeout=30)
    assert _gone(child)


def test_stream_reads_a_second_channel_to_its_last_unterminated_line():
    """What boot does with QEMU: the child writes a second channel through a passed pipe."""
    r, w = os.pipe()
    try:
        with run.Stream(["sh", "-c", f"echo console; printf 'one\\ntwo' >/proc/self/fd/{w}; echo more"],
                        pass_fds=[w]) as s:
            os.close(w)
            w = -1
            got = list(s.channels(time.monotonic() + 30, {"prog": r}))
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert [g for g in got if g[0] == "stdout"] == [("stdout", "console"), ("stdout", "more")]
    assert [g for g in got if g[0] == "prog"] == [("prog", "one"), ("prog", "two")]
