"""No file name reaches a shell inside the kernel's own perl scripts.

checkpatch.pl runs ``git ls-files -- $filename`` and ``get_maintainer.pl
... -f $realfile`` in backticks; get_maintainer.pl opens patch files with
perl's two-argument open and asks git about them through a shell.  The
real scripts (from the prepared Debian tree) run here on names made to
create a file in $HOME if a shell ever sees them.
"""
from __future__ import annotations

import shutil

import pytest

from ktest import check, maintainers, tree
from tests.unit.conftest import make_patch
from tests.unit.mailkit import MAINTAINERS, _kernelise, kernel_scripts  # noqa: F401  (fixture)

EVIL = "foo;touch${IFS}$HOME.pwned;.patch"          # the name from issue 14


@pytest.fixture
def kernel_tree(fake_kernel, kernel_scripts, ktest_home, tmp_path, monkeypatch):  # noqa: F811
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    _kernelise(fake_kernel, kernel_scripts, MAINTAINERS)
    return tree.prepare_user(fake_kernel), home


def _pwned(home):
    return list(home.iterdir()) + list(home.parent.glob("home.pwned"))


def _good_patch(path):
    return make_patch(path, subject="virtio_ring: a change", old="static int line10 = 10;",
                      new="static int line10 = 100;", start=10)


def test_checkpatch_never_sees_the_patch_file_name(kernel_tree, tmp_path):
    t, home = kernel_tree
    p = _good_patch(tmp_path / EVIL)
    problems = check.checkpatch(t, p, p.name)
    assert not _pwned(home), "a shell ran the patch file's name"
    assert all(x.patch == EVIL for x in problems)
    # Still a real checkpatch run: a long line is reported at the tree's file and line.
    long = make_patch(tmp_path / "long.patch", subject="virtio_ring: long", old="static int line10 = 10;",
                      new="static int line10 = 10;" + " " * 90 + "/* long */", start=10)
    got = check.checkpatch(t, long, "long.patch")
    assert any(x.type == "LONG_LINE" and x.file == "drivers/virtio/virtio_ring.c" and x.line == 10 for x in got)


@pytest.mark.parametrize("bad", ["drivers/virtio/x;touch${IFS}$HOME/pwned;.c", "drivers/virtio/$(touch x).c"])
def test_a_diff_naming_a_shell_word_is_not_handed_to_the_scripts(kernel_tree, tmp_path, bad):
    t, home = kernel_tree
    p = tmp_path / "0001-new-file.patch"
    shutil.copy(_good_patch(tmp_path / "base.patch"), p)
    p.write_text(p.read_text() + f"diff --git a/{bad} b/{bad}\nnew file mode 100644\n--- /dev/null\n"
                 f"+++ b/{bad}\n@@ -0,0 +1 @@\n+int x;\n")
    problems = check.checkpatch(t, p, p.name)
    assert [(x.kind, x.message.split(":")[0]) for x in problems] == [("checkpatch", "not run")]
    assert repr(bad) in problems[0].message
    with pytest.raises(maintainers.MaintainersError, match=r"0001-new-file.patch: .* in the diff could reach a shell"):
        maintainers.recipients(t, [p])
    assert not _pwned(home)


def test_get_maintainer_reads_patches_on_stdin(kernel_tree, tmp_path):
    t, home = kernel_tree
    p = _good_patch(tmp_path / EVIL)
    r = maintainers.recipients(t, [p])
    assert not _pwned(home), "a shell ran the patch file's name"
    assert '"Michael S. Tsirkin" <mst@redhat.com>' in r.to
    assert "virtualization@lists.linux-foundation.org" in r.cc


def test_an_spdx_line_with_shell_syntax_is_not_handed_to_checkpatch(kernel_tree, tmp_path):
    """checkpatch.pl runs `echo "$license" | scripts/spdxcheck.py -` on a new file's SPDX line."""
    t, home = kernel_tree
    # checkpatch only builds that command when the tree has an executable
    # spdxcheck.py; what it does does not matter, the shell runs first.
    spdx = t.path / "scripts/spdxcheck.py"
    spdx.write_text("#!/bin/sh\nexit 0\n")
    spdx.chmod(0o755)
    p = tmp_path / "0001-spdx.patch"
    shutil.copy(_good_patch(tmp_path / "base.patch"), p)
    line = "// SPDX-License-Identifier: GPL-2.0 $(touch ${HOME}/pwned)"
    p.write_text(p.read_text() + "diff --git a/drivers/virtio/n.c b/drivers/virtio/n.c\nnew file mode 100644\n"
                 f"--- /dev/null\n+++ b/drivers/virtio/n.c\n@@ -0,0 +1,2 @@\n+{line}\n+int x;\n")
    problems = check.checkpatch(t, p, p.name)
    assert [(x.kind, x.message.split(":")[0]) for x in problems] == [("checkpatch", "not run")]
    assert "SPDX-License-Identifier: GPL-2.0 $(touch ${HOME}/pwned)" in problems[0].message
    assert not _pwned(home)
    # A plain SPDX line is checked as usual.
    p.write_text(p.read_text().replace(" $(touch ${HOME}/pwned)", ""))
    assert all(x.message.split(":")[0] != "not run" for x in check.checkpatch(t, p, p.name))
    assert not _pwned(home)
