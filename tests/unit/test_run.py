import os
import time

import pytest

from ktest import run
from ktest.errors import CommandError, CommandTimeout


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
