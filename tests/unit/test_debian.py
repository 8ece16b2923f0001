"""One tree per Debian release: linux-source-X.Y by series, and the Debian kernel
(image, headers, built-in modules) that goes with the prepared tree.  Fake
/usr/src, /boot and /lib/modules: milliseconds, no package needed."""
import subprocess
from pathlib import Path

import pytest

from ktest import kernels, paths, tree
from ktest.errors import BuildError, KtestError, TreeError
from tests.conftest import git


def fake_source(src: Path, series: str, sublevel: int) -> Path:
    """/usr/src/linux-source-<series>.tar.xz with a one-Makefile kernel in it."""
    top = src / "work" / f"linux-source-{series}"
    top.mkdir(parents=True)
    major, minor = series.split(".")
    (top / "Makefile").write_text(f"VERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sublevel}\nEXTRAVERSION =\n")
    tarball = src / f"linux-source-{series}.tar.xz"
    subprocess.run(["tar", "-cJf", str(tarball), "-C", str(src / "work"), top.name], check=True, timeout=60)
    return tarball


@pytest.fixture
def usr_src(tmp_path, monkeypatch):
    src = tmp_path / "usr-src"
    src.mkdir()
    monkeypatch.setattr(tree, "SOURCE_DIR", src)
    return src


@pytest.fixture
def kernels_dir(tmp_path, monkeypatch):
    """Fake /boot and /lib/modules; add(release) installs an image with headers."""
    boot, mods = tmp_path / "boot", tmp_path / "modules"
    boot.mkdir()
    monkeypatch.setattr(kernels, "BOOT", boot)
    monkeypatch.setattr(kernels, "MODULES", mods)

    def add(release, headers=True, builtin=()):
        (boot / f"vmlinuz-{release}").write_bytes(b"")
        (mods / release).mkdir(parents=True)
        if headers:
            (mods / release / "build").mkdir()
            (mods / release / "build" / "Makefile").write_text("include /usr/src/x/Makefile\n")
        (mods / release / "modules.builtin").write_text(
            "".join(f"kernel/drivers/virtio/{m}.ko\n" for m in builtin))
    return add


def test_the_default_is_the_series_base():
    """tree prepare's default is the release patches/series says it is written for
    (6.1 until the whole series is moved to 6.12)."""
    first = (paths.patches_dir() / "series").read_text().splitlines()[0]
    assert f"linux-source-{tree.DEFAULT_DEBIAN} " in first
    assert tree.debian_tarball("6.12") == tree.SOURCE_DIR / "linux-source-6.12.tar.xz"


def test_each_release_under_its_own_name(usr_src, ktest_home):
    fake_source(usr_src, "6.12", 118)
    fake_source(usr_src, "6.1", 192)
    new = tree.prepare_debian()
    old = tree.prepare_debian("6.1")
    assert new.path == paths.trees() / "debian-6.12.118" and new.base_ref == "v6.12.118-debian"
    assert old.path == paths.trees() / "debian-6.1.192" and old.base_ref == "v6.1.192-debian"
    assert "Debian linux-source-6.12" in git(new.path, "log", "-1", "--format=%s")
    assert git(new.path, "rev-parse", "v6.12.118-debian").strip() == new.base
    # The last one prepared is the current tree; preparing the other again reuses it.
    assert tree.current().version == "6.1.192"
    again = tree.prepare_debian()
    assert again.base == new.base and tree.current().version == "6.12.118"


def test_missing_package_is_named(usr_src, ktest_home, monkeypatch):
    monkeypatch.setattr(tree.os, "geteuid", lambda: 1000)   # not root: nothing is installed
    fake_source(usr_src, "6.1", 192)
    with pytest.raises(TreeError) as e:
        tree.prepare_debian("6.12")
    assert "linux-source-6.12 is not installed" in e.value.message
    assert "sudo apt-get install linux-source-6.12" in e.value.hint
    assert "--debian 6.1" in e.value.hint


@pytest.mark.parametrize("bad", ["6", "6.12.117", "latest", "6.x", ""])
def test_a_bad_release_is_refused(usr_src, ktest_home, bad):
    with pytest.raises(TreeError, match="expected a kernel series like 6.12"):
        tree.prepare_debian(bad)


def test_tree_and_debian_are_two_trees(tmp_path, ktest_home):
    from ktest import job

    with pytest.raises(KtestError, match="--tree and --debian name two different trees"):
        job.prepare_tree(tmp_path, "HEAD", "6.12")


def test_the_debian_kernel_follows_the_prepared_tree(kernels_dir, usr_src, ktest_home):
    kernels_dir("6.1.0-57-amd64")
    kernels_dir("6.12.118+deb12-amd64")
    kernels_dir("6.12.9+deb12-amd64")
    kernels_dir("6.13.0-1-amd64", headers=False)          # no headers: never picked
    fake_source(usr_src, "6.1", 192)
    fake_source(usr_src, "6.12", 118)
    tree.prepare_debian("6.12")
    assert kernels.debian_release() == "6.12.118+deb12-amd64"   # 118 > 9, as numbers
    tree.prepare_debian("6.1")
    assert kernels.debian_release() == "6.1.0-57-amd64"
    with pytest.raises(BuildError) as e:
        kernels.debian_release("6.6.50")
    assert "apt-get install linux-image-6.6-amd64 linux-headers-6.6-amd64" in e.value.hint


def test_builtin_modules(tmp_path):
    (tmp_path / "modules.builtin").write_text("kernel/drivers/virtio/virtio_ring.ko\n"
                                              "kernel/drivers/virtio/virtio-mmio.ko\n")
    assert kernels.builtin_modules("x", tmp_path) == {"virtio_ring", "virtio_mmio"}
    assert kernels.builtin_modules("x", tmp_path / "none") == set()


def test_tree_prepare_debian_on_the_command_line(usr_src, ktest_home, monkeypatch, capsys):
    from ktest.cli import main

    fake_source(usr_src, "6.12", 118)
    assert main(["tree", "prepare", "--debian", "6.12"]) == 0
    out = capsys.readouterr().out
    assert "debian-6.12.118  base v6.12.118-debian" in out and "Linux 6.12.118" in out
