"""The machine's own faults, told in one clear line: read-only or full
KTEST_HOME, spaces in paths, bad numbers, build errors at the tree's file."""
import subprocess
import sys
from pathlib import Path

import pytest

from ktest import artifacts, build, paths, run, series, tree
from ktest.errors import CommandError, KtestError
from tests.conftest import REPO


def _ktest(*args, home):
    env = {"KTEST_HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    return subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (as root: the real file system error, not a mock)."""
    mounted = []

    def mount(opts: str) -> Path:
        d = tmp_path / f"mnt{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True, timeout=30)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(d)
        return d
    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], timeout=30)


def test_read_only_home_is_one_line(tmpfs):
    ro = tmpfs("size=1m,ro")
    r = _ktest("boot", "--modules", "none", "--dry-run", "--", "true", home=ro / "ktest")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert f"cannot write {ro}/ktest: Read-only file system" in r.stderr
    assert "point KTEST_HOME at a writable directory" in r.stderr


def test_full_home_is_one_line(tmpfs):
    full = tmpfs("size=512k")
    r = _ktest("boot", "--modules", "none", "--dry-run", "--", "true", home=full)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "No space left on device" in r.stderr and len(r.stderr.splitlines()) <= 3
    r = _ktest("tree", "prepare", home=full)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"not enough space to prepare the tree in {full}/trees" in r.stderr


def test_a_thousand_error_lines_are_summarised_and_the_fault_named():
    script = "i=0; while [ $i -lt 1000 ]; do echo \"tar: f$i: Cannot write: No space left on device\" >&2; " \
             "i=$((i+1)); done; exit 2"
    with pytest.raises(CommandError) as e:
        run.run(["sh", "-c", script], what="tar")
    text = str(e.value)
    assert text.splitlines()[0].startswith("tar failed (exit 2): No space left on device")
    assert len(text.splitlines()) <= 12 and "(990 more lines)" in text


def test_spaces_in_the_build_path_are_refused_up_front(fake_kernel, fake_series, monkeypatch, tmp_path):
    home = tmp_path / "my home"
    monkeypatch.setenv("KTEST_HOME", str(home))
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(fake_series))
    with pytest.raises(KtestError, match=r"the module build cannot build in '.*/my home/builds/kmod-.*': "
                                         r"the path has a space"):
        build.build_kmod(t)
    assert paths.space_free(tmp_path, "x") == tmp_path


def test_module_build_error_names_the_tree_file(tmp_path):
    staged = tmp_path / "builds" / "kmod-6.1"
    log = tmp_path / "build.log"
    log.write_text(f"  CC [M]  {staged}/drivers/virtio/virtio_ring.o\n"
                   f"{staged}/drivers/virtio/virtio_ring.c:560:9: error: expected ';' before 'return'\n")
    err = artifacts.summarise_failure(log, "module build", (staged, "/src/linux/"))
    assert err.message == "module build failed: /src/linux/drivers/virtio/virtio_ring.c:560: error: expected ';' before 'return'"
    err = artifacts.summarise_failure(log, "module build", (staged, "ktest/series~2:"))
    assert "ktest/series~2:drivers/virtio/virtio_ring.c:560: error" in err.message


def test_link_error_names_the_first_unresolved_reference(tmp_path):
    """Recorded from pristine 6.12.118's ringtest: collect2's own line names nothing."""
    staged = tmp_path / "builds" / "tools-x"
    log = tmp_path / "build.log"
    log.write_text("/usr/bin/ld: /tmp/ccaXsqUd.ltrans0.ltrans.o: in function `main':\n"
                   f"{staged}/tools/virtio/ringtest/../../../include/linux/ptr_ring.h:471: "
                   "undefined reference to `kvmalloc_array_noprof'\n"
                   f"{staged}/tools/virtio/ringtest/ptr_ring.c:120: undefined reference to `alloc_hooks'\n"
                   "collect2: error: ld returned 1 exit status\n")
    err = artifacts.summarise_failure(log, "tools build at v6.12.118-debian", (staged, "v6.12.118-debian:"))
    assert err.message == ("tools build at v6.12.118-debian failed: v6.12.118-debian:include/linux/ptr_ring.h:471: "
                           "undefined reference to `kvmalloc_array_noprof'")


@pytest.mark.parametrize("args,msg", [
    (["bench", "ringtest", "--run-cycles", "0"], "argument --run-cycles: must be more than 0, not 0"),
    (["bench", "ringtest", "--runs", "-1"], "argument --runs: must be more than 0, not -1"),
    (["boot", "--timeout", "0", "--", "true"], "argument --timeout: must be more than 0, not 0"),
    (["bench", "net", "--count", "x"], "argument --count: 'x' is not a number"),
])
def test_numbers_are_checked_before_anything_runs(args, msg, tmp_path):
    r = _ktest(*args, home=tmp_path / "home")
    assert r.returncode == 2 and msg in r.stderr
    assert not (tmp_path / "home").exists()      # nothing built, nothing booted
