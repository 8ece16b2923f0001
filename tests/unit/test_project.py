"""The series project is the one the user stands in (quilt's rule), not ktest's checkout."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktest import project
from ktest.errors import ProjectError
from tests.conftest import REPO, git


def ktest(*args, cwd, env=None, check=None):
    e = dict(os.environ)
    for k in ("KTEST_PATCHES", "QUILT_PATCHES"):
        e.pop(k, None)
    e.update(env or {})
    # Run the checkout's ktest from anywhere, as an installed one would be.
    e["PYTHONPATH"] = str(REPO)
    r = subprocess.run([sys.executable, "-m", "ktest", *map(str, args)], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=300)
    if check is not None:
        assert r.returncode == check, r.stdout + r.stderr
    return r


@pytest.fixture
def proj(tmp_path, fake_series):
    root = tmp_path / "proj"
    root.mkdir()
    shutil.move(str(fake_series), root / "patches")
    (root / "a" / "b").mkdir(parents=True)
    return root


def test_found_upward_from_a_subdirectory(proj):
    p = project.find(proj / "a" / "b", env={})
    assert (p.root, p.patches_dir, p.how) == (proj, proj / "patches", "cwd")
    assert p.kmod_dir is None and p.fragments_dir is None


def test_overrides_in_order(proj, tmp_path):
    for d in ("one", "two", "three"):
        (tmp_path / d).mkdir()
    env = {"KTEST_PATCHES": str(tmp_path / "two"), "QUILT_PATCHES": str(tmp_path / "three")}
    assert project.find(proj, patches=tmp_path / "one", env=env).patches_dir == tmp_path / "one"
    assert project.find(proj, env=env).how == "KTEST_PATCHES"
    del env["KTEST_PATCHES"]
    assert project.find(proj, env=env).patches_dir == tmp_path / "three"


def test_relative_quilt_patches_is_found_upward_like_quilt(proj):
    (proj / "my-patches").mkdir()
    p = project.find(proj / "a" / "b", env={"QUILT_PATCHES": "my-patches"})
    assert p.patches_dir == proj / "my-patches" and p.how == "QUILT_PATCHES"


def test_no_series_is_one_line_and_exit_2(tmp_path):
    r = ktest("series", "list", cwd=tmp_path, check=2)
    assert "Traceback" not in r.stderr
    assert f"no series found: no patches/series in {tmp_path} or any directory above it" in r.stderr
    assert "ktest init" in r.stderr


def test_the_series_used_is_named_when_not_under_the_cwd(proj):
    r = ktest("series", "list", cwd=proj / "a", check=0)
    assert r.stderr.count(f"series {proj / 'patches'} (from cwd)") == 1
    assert "0002-virtio_ring-second.patch" in r.stdout
    r = ktest("series", "list", cwd=proj, check=0)
    assert "(from cwd)" not in r.stderr


def test_init_starts_a_project_and_never_overwrites(tmp_path):
    r = ktest("init", "new", cwd=tmp_path, check=0)
    assert (tmp_path / "new/patches/series").is_file() and (tmp_path / "new/patches/cover-letter.txt").is_file()
    ktest("series", "list", cwd=tmp_path / "new", check=0)
    (tmp_path / "new/patches/series").write_text("mine.patch\n")
    r = ktest("init", "new", cwd=tmp_path, check=2)
    assert "already exists" in r.stderr
    assert (tmp_path / "new/patches/series").read_text() == "mine.patch\n"


def test_apply_uses_the_copy_the_user_stands_in(proj, fake_kernel, tmp_path):
    """A copy of patches/ with one patch removed, applied from a subdirectory of it."""
    home = {"KTEST_HOME": str(tmp_path / "home")}
    ktest("tree", "prepare", "--tree", fake_kernel, cwd=tmp_path, env=home, check=0)
    ktest("series", "apply", cwd=proj / "a" / "b", env=home, check=0)
    copy = tmp_path / "copy"
    shutil.copytree(proj / "patches", copy / "patches")
    (copy / "patches" / "series").write_text("0002-virtio_ring-second.patch -p1\n")
    (copy / "sub").mkdir()
    ktest("series", "apply", cwd=copy / "sub", env=home, check=0)
    wt = Path(ktest("tree", "path", cwd=tmp_path, env=home, check=0).stdout.strip())
    subjects = git(wt, "log", "--format=%s", "HEAD~1..HEAD").splitlines()
    assert subjects == ["virtio_ring: second change"]
    assert git(wt, "rev-list", "--count", "HEAD").strip() == "2"     # base + the one patch left
    # ... and the other project's series file is untouched.
    assert "0001" in (proj / "patches" / "series").read_text()


def test_project_files_resolve_without_the_checkout(tmp_path):
    """ktest's own files are package data, next to the package, not the checkout."""
    from ktest import paths

    assert paths.tools_dir().is_relative_to(Path(project.__file__).parent)
    assert (paths.tools_dir() / "Makefile").is_file()
    assert (paths.configs_dir() / "ktest.config").is_file()
    assert paths.kbuild_head().is_file()


def test_find_raises_project_error(tmp_path):
    with pytest.raises(ProjectError) as e:
        project.find(tmp_path, env={})
    assert e.value.exit_code == 2
