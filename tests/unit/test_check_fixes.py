"""A Fixes: tag in a tree without history (a Debian source tree is one root
commit): checkpatch.pl cannot find the id there, so ktest says the id was
not checked instead of calling the patch wrong.  The real checkpatch.pl
from the prepared tree, on the tiny fake tree."""
from __future__ import annotations

import pytest

from ktest import check, tree
from tests.unit.conftest import make_patch
from tests.unit.mailkit import MAINTAINERS, _kernelise, kernel_scripts  # noqa: F401  (fixture)

BODY = ('The value was wrong.\n\nFixes: 0123456789ab ("virtio_ring: an old change")\n'
        "Signed-off-by: Alice Dev <alice@example.org>")


@pytest.fixture
def kernel_tree(fake_kernel, kernel_scripts, ktest_home):  # noqa: F811
    _kernelise(fake_kernel, kernel_scripts, MAINTAINERS)
    return tree.prepare_user(fake_kernel)


def _patch(tmp_path):
    return make_patch(tmp_path / "0001-fix.patch", subject="virtio_ring: fix a value", body=BODY,
                      old="static int line10 = 10;", new="static int line10 = 100;", start=10)


def test_unknown_fixes_id_is_a_note_without_history(kernel_tree, tmp_path, monkeypatch):
    # (Tree.has_history itself: tests/unit/test_fullcheck.py)
    monkeypatch.setattr(tree.Tree, "has_history", lambda self: False)
    notes = []
    monkeypatch.setattr(check.ui, "note", notes.append)
    problems = check.check_patch(kernel_tree, _patch(tmp_path))
    assert [p for p in problems if p.type == "UNKNOWN_COMMIT_ID"] == [], problems
    assert len(notes) == 1 and "0123456789ab" in notes[0] and "not checked, the tree has no history" in notes[0]


def test_unknown_fixes_id_is_a_problem_with_history(kernel_tree, tmp_path, monkeypatch):
    monkeypatch.setattr(tree.Tree, "has_history", lambda self: True)
    problems = check.check_patch(kernel_tree, _patch(tmp_path))
    assert [p.type for p in problems if p.type == "UNKNOWN_COMMIT_ID"] == ["UNKNOWN_COMMIT_ID"], problems
