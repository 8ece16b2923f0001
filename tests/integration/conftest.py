"""The integration tier: the real Debian tree, real builds, real QEMU.

All tests share one fresh KTEST_HOME, so the tree is extracted and
committed cold once per session, as on a new machine.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SLOW_TIMEOUT = 1800


@pytest.fixture(scope="session")
def home(tmp_path_factory):
    h = Path(os.environ.get("KTEST_TEST_HOME") or tmp_path_factory.mktemp("ktest-home"))
    old = os.environ.get("KTEST_HOME")
    os.environ["KTEST_HOME"] = str(h)
    yield h
    if old is None:
        del os.environ["KTEST_HOME"]
    else:
        os.environ["KTEST_HOME"] = old


def ktest(*args, timeout=SLOW_TIMEOUT, check=None):
    r = subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    if check is not None:
        assert r.returncode == check, f"ktest {' '.join(map(str, args))} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="session")
def prepared(home):
    r = ktest("tree", "prepare", check=0)
    return Path(ktest("tree", "path", check=0).stdout.strip()), r


@pytest.fixture(scope="session")
def version(prepared):
    """The prepared default tree's kernel version, e.g. "6.12.118" (its Makefile)."""
    from ktest import tree as ktree

    return ktree.makefile_version(prepared[0])


@pytest.fixture(scope="session")
def base_tag(version):
    """The tag ktest gives the default tree's pristine base, e.g. "v6.12.118-debian"."""
    return f"v{version}-debian"


@pytest.fixture(scope="session")
def tools_base(applied, base_tag):
    """The series' first commit (base + the tools/virtio build fix): the base a
    benchmark of tools/virtio's programs compares with, as pristine 6.12.118's
    tools/virtio does not build."""
    r = subprocess.run(["git", "-C", str(applied), "rev-list", "--reverse", f"{base_tag}..ktest/series"],
                       capture_output=True, text=True, timeout=60, check=True)
    return r.stdout.split()[0]


@pytest.fixture(scope="session")
def applied(prepared):
    ktest("series", "apply", check=0)
    return prepared[0]
