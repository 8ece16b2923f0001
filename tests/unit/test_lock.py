"""The tree's lock: many readers or one writer, `--wait SECONDS`, nesting within one process."""
import subprocess
import sys
import time

import pytest

from ktest import export, lock, series, tree
from ktest.errors import TreeError
from tests.conftest import REPO


@pytest.fixture
def applied(fake_kernel, fake_series, ktest_home):
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    export.export(t, fake_series)
    return t


def _holder(shared: bool, seconds: float) -> subprocess.Popen:
    code = ("import sys, time; from ktest import tree, lock\n"
            f"with lock.held(tree.current(), 'holder', shared={shared}):\n"
            f"    print('locked', flush=True); time.sleep({seconds})\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert p.stdout.readline().strip() == "locked"
    return p


def _ktest(*args):
    return subprocess.run([sys.executable, "-m", "ktest", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_readers_share_and_keep_writers_out(applied, fake_series):
    holder = _holder(shared=True, seconds=30)
    try:
        with lock.held(applied, "series check", shared=True):      # a second reader: fine
            pass
        with pytest.raises(TreeError, match=rf"is locked by pid {holder.pid} \(holder: .*reading\)"):
            series.apply(applied, series.load(fake_series), force=True)
    finally:
        holder.kill()
        holder.wait()
    series.apply(applied, series.load(fake_series), force=True)


def test_a_writer_keeps_readers_out(applied):
    holder = _holder(shared=False, seconds=30)
    try:
        with pytest.raises(TreeError, match=r"\(holder: .*writing\)"):
            with lock.held(applied, "build", shared=True):
                pass
        r = _ktest("series", "status")          # a reading command, through the CLI
        assert r.returncode == 1 and "is locked by" in r.stderr and "--wait SECONDS" in r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_wait_option_waits_for_the_holder(applied):
    holder = _holder(shared=False, seconds=2)
    try:
        start = time.monotonic()
        r = _ktest("series", "status", "--wait", "60")
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - start < 60
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_nests_in_one_process(applied, fake_series):
    with lock.held(applied, "series build-each"):
        with lock.held(applied, "build", shared=True):       # a reader inside the writer
            pass
    with lock.held(applied, "run", shared=True):
        series.apply(applied, series.load(fake_series), force=True)   # a writer inside the reader
        with lock.held(applied, "bench", shared=True):
            pass
    assert lock._held == {}
