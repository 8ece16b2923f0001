"""ktest mail on the real Debian tree with the real series: real
get_maintainer.pl, real checkpatch.pl, real git am, real b4."""
import email
import email.policy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ktest import mail, maintainers, tree
from tests.conftest import REPO, git
from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow


def _parse(path: Path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    assert not msg.defects, (path, msg.defects)
    return msg


def _series_commits(t: tree.Tree) -> list[str]:
    return git(t.path, "rev-list", "--reverse", f"{t.base}..ktest/series").split()


@pytest.fixture(scope="module")
def series_author_sends(tmp_path_factory):
    """The sender is the series' author, who signed off every patch last,
    whatever this machine's own git identity is (ktest mail refuses a chain
    that ends with someone other than the sender)."""
    cfg = tmp_path_factory.mktemp("gitconfig") / "config"
    cfg.write_text("[user]\n\tname = ktest developers\n\temail = ktest-dev@example.org\n")
    old = os.environ.get("GIT_CONFIG_GLOBAL")
    os.environ["GIT_CONFIG_GLOBAL"] = str(cfg)
    yield cfg
    if old is None:
        del os.environ["GIT_CONFIG_GLOBAL"]
    else:
        os.environ["GIT_CONFIG_GLOBAL"] = old


@pytest.fixture(scope="module")
def mailed(applied, series_author_sends, tmp_path_factory):
    out = tmp_path_factory.mktemp("mail") / "out"
    r = ktest("mail", "--out", out, timeout=600, check=0)
    return out, r


def test_another_sender_must_sign_off(applied, mailed, tmp_path):
    """Mailed by someone else, the real series fails on its sign-offs until
    --signoff, which checkpatch then passes on the messages as sent."""
    env = dict(os.environ, GIT_CONFIG_GLOBAL=str(tmp_path / "config"))
    (tmp_path / "config").write_text("[user]\n\tname = Åsa Öberg\n\temail = asa@example.org\n")
    run = (lambda *a: subprocess.run([sys.executable, "-m", "ktest", "mail", "--out", str(tmp_path / "o"), *a],
                                     capture_output=True, text=True, timeout=900, env=env))
    r = run()
    assert r.returncode == 1 and "not with the sender Åsa Öberg <asa@example.org>" in r.stderr
    assert re.search(r"0001-\S+\.patch: signoff: the Signed-off-by chain ends with ktest developers", r.stderr)
    r = run("--signoff")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "o" / "mail.json").read_text())
    assert doc["from"] == "Åsa Öberg <asa@example.org>" and not doc["gate_ignored"]
    last = _parse(tmp_path / "o" / doc["messages"][-1]["file"])
    assert str(last["From"]) == "Åsa Öberg <asa@example.org>"
    assert "Signed-off-by: Åsa Öberg <asa@example.org>\n---" in last.get_content()


def test_mail_of_the_real_series(applied, mailed):
    out, r = mailed
    assert r.stdout.strip() == str(out)
    t = tree.current()
    doc = json.loads((out / "mail.json").read_text())
    subjects = git(t.path, "log", "--reverse", "--format=%s", f"{t.base}..ktest/series").splitlines()
    n = len(subjects)
    title = (REPO / "patches" / "cover-letter.txt").read_text().splitlines()[0]
    w = len(str(n))      # format-patch pads: [PATCH 00/16]
    assert [m["subject"] for m in doc["messages"]] == [f"[PATCH {0:0{w}}/{n}] {title}"] + [
        f"[PATCH {k:0{w}}/{n}] {s}" for k, s in enumerate(subjects, 1)]
    cover = _parse(out / doc["messages"][0]["file"])
    for m in doc["messages"][1:]:
        msg = _parse(out / m["file"])
        assert msg["In-Reply-To"] == msg["References"] == cover["Message-Id"]
    assert f"base-commit: {t.base}" in cover.get_content()
    assert "mst@redhat.com" in cover["To"] and "virtualization@lists.linux.dev" in cover["Cc"]


def test_git_am_round_trip_on_the_real_tree(applied, mailed, tmp_path):
    """git am in a clean clone at the base gives the series branch's tree,
    authors, dates and messages.  The clone checks out only the files the
    series touches (sparse): the index still holds the whole kernel."""
    out, _ = mailed
    t = tree.current()
    doc = json.loads((out / "mail.json").read_text())
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--shared", "--no-checkout", str(t.path), str(clone))
    touched = git(t.path, "diff", "--name-only", t.base, "ktest/series").split()
    git(clone, "sparse-checkout", "set", "--no-cone", *[f"/{f}" for f in touched])
    git(clone, "checkout", "-q", "--detach", t.base)
    git(clone, "am", "-q", *[str(out / m["file"]) for m in doc["messages"][1:]])
    assert git(clone, "rev-parse", "HEAD^{tree}") == git(t.path, "rev-parse", "ktest/series^{tree}")
    fmt = "--format=%an <%ae>|%ad|%B"
    assert git(clone, "log", fmt, f"{t.base}..HEAD") == git(t.path, "log", fmt, f"{t.base}..ktest/series")


def _diff_touching(path: Path, files: list[str]) -> Path:
    """A patch that only needs to name files: get_maintainer.pl reads the diff headers."""
    text = "Subject: [PATCH] test\n\n---\n" + "".join(
        f"diff --git a/{f} b/{f}\n--- a/{f}\n+++ b/{f}\n@@ -1,1 +1,1 @@\n-a\n+b\n" for f in files)
    path.write_text(text)
    return path


# What 6.12.118's MAINTAINERS says (6.1's had no reviewers here and the old list address).
@pytest.mark.parametrize("file, to, cc", [
    ("drivers/virtio/virtio_ring.c", ["mst@redhat.com", "jasowang@redhat.com"],
     ["xuanzhuo@linux.alibaba.com", "eperezma@redhat.com", "virtualization@lists.linux.dev",
      "linux-kernel@vger.kernel.org"]),
    ("drivers/vhost/vhost.c", ["mst@redhat.com", "jasowang@redhat.com"],
     ["eperezma@redhat.com", "kvm@vger.kernel.org", "virtualization@lists.linux.dev", "netdev@vger.kernel.org",
      "linux-kernel@vger.kernel.org"]),
])
def test_get_maintainer_recipients_from_the_trees_maintainers_file(applied, tmp_path, file, to, cc):
    r = maintainers.recipients(tree.current(), [_diff_touching(tmp_path / "x.patch", [file])])
    assert [maintainers.key(a) for a in r.to] == to
    assert [maintainers.key(a) for a in r.cc] == cc
    assert '"Michael S. Tsirkin" <mst@redhat.com>' in r.to


def test_gate_runs_the_real_checkpatch(applied, tmp_path):
    t = tree.current()
    commits = _series_commits(t)
    assert commits, "the series branch is empty"
    assert [str(p) for p in mail.gate(t, commits)] == []
    # The same check catches a damaged copy of the last patch, by file and line.
    out = git(t.path, "format-patch", "-1", "-o", str(tmp_path), commits[-1]).strip()
    patch = Path(out)
    lines = patch.read_text().splitlines(keepends=True)
    i = next(n for n, ln in enumerate(lines) if ln.startswith("+") and not ln.startswith("+++"))
    lines[i] = lines[i].rstrip("\n") + "   \n"
    lines = [ln for ln in lines if not ln.startswith("Signed-off-by:")]
    patch.write_text("".join(lines))
    problems = mail.gate(t, [patch])
    kinds = {p.kind for p in problems}
    assert "signoff" in kinds and "checkpatch ERROR" in kinds, problems
    ws = next(p for p in problems if p.message == "trailing whitespace")
    assert ws.patch == patch.name and ws.file and ws.line > 0


def test_b4_makes_the_same_series(applied, mailed, tmp_path):
    if shutil.which("b4") is None:
        pytest.fail("b4 is a declared dependency of ktest and is not installed: pip install -e .")
    r = ktest("mail", "--out", tmp_path / "o", "--via", "b4", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "same patches and subjects as ktest's" in r.stderr
    n = len(_series_commits(tree.current()))
    assert len(list((tmp_path / "o" / "b4").glob("*.eml"))) == n + 1
    # Nothing of b4's is left in ktest's tree.
    t = tree.current()
    assert "b4/" not in git(t.path, "branch", "--list")
    assert subprocess.run(["git", "-C", str(t.path), "config", "--get-regexp", r"^b4\."],
                          capture_output=True).returncode == 1
