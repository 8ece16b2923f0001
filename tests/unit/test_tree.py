import shutil

import pytest

from ktest import tree
from ktest.errors import TreeError
from tests.conftest import FIXTURES, git


def test_makefile_version(tmp_path):
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION = -rc3\nNAME = x\n")
    assert tree.makefile_version(tmp_path) == "6.1.192-rc3"


def test_makefile_version_not_a_kernel(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(TreeError, match="no VERSION line"):
        tree.makefile_version(tmp_path)


def test_debian_ignore_block_is_dropped(tmp_path):
    """Debian's .gitignore (recorded from linux-source-6.1) hides new top-level files."""
    ign = tmp_path / ".gitignore"
    shutil.copy(FIXTURES / "debian-linux-source-6.1.gitignore", ign)
    git(tmp_path, "init", "-q")
    (tmp_path / "newfile").write_text("x\n")
    assert "newfile" not in git(tmp_path, "status", "--porcelain")
    assert tree.drop_debian_ignore_block(ign)
    text = ign.read_text()
    assert "/*\n!/debian/" not in text and "Debian packaging" not in text
    assert "/compile_commands.json" in text          # the kernel's own rules stay
    assert "newfile" in git(tmp_path, "status", "--porcelain")


def test_user_tree_bad_ref(fake_kernel, ktest_home):
    with pytest.raises(TreeError, match="base ref 'v9.9' does not name a commit"):
        tree.prepare_user(fake_kernel, "v9.9")


def test_user_tree_not_git(tmp_path, ktest_home):
    with pytest.raises(TreeError, match="is not a git repository"):
        tree.prepare_user(tmp_path)


def test_current_remembers_prepared_tree(fake_kernel, ktest_home):
    with pytest.raises(TreeError, match="no prepared kernel tree"):
        tree.current()
    t = tree.prepare_user(fake_kernel)
    assert tree.current() == t
    assert t.version == "6.1.192" and t.kind == "user"
