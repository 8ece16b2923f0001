"""ktest mail on the tiny fake kernel tree, with the real kernel scripts.

get_maintainer.pl and checkpatch.pl (with its data files) are copied from
the prepared Debian tree, so recipients and the gate are the kernel's own.
"""
import email
import email.policy
import json
import os
import shutil

import pytest

from ktest import bench, check, mail, series
from tests.conftest import git
from tests.unit.conftest import make_patch
from tests.unit.mailkit import (COVER, SENDER_SOB, _ktest, _parse, _smtp_config, git_identity,  # noqa: F401
                                kernel_scripts, mail_tree, make_tree, smtp_server)

def test_messages_are_threaded_with_numbered_subjects(mail_tree, tmp_path, capsys):
    code, out, err = _ktest(capsys, "--out", tmp_path / "v1")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "v1")
    files = sorted((tmp_path / "v1").glob("*.patch"))
    assert [f.name for f in files] == ["0000-cover-letter.patch", "0001-virtio_ring-first-change.patch",
                                       "0002-virtio_ring-second-change.patch"]
    cover, *patches = [_parse(f) for f in files]
    assert cover["Subject"] == "[PATCH 0/2] virtio_ring: two small changes"
    assert [p["Subject"] for p in patches] == ["[PATCH 1/2] virtio_ring: first change",
                                              "[PATCH 2/2] virtio_ring: second change"]
    ids = [m["Message-Id"] for m in (cover, *patches)]
    assert len(set(ids)) == 3 and all(i.startswith("<") and i.endswith(">") for i in ids)
    for p in patches:
        assert p["In-Reply-To"] == cover["Message-Id"] and p["References"] == cover["Message-Id"]
    assert cover["In-Reply-To"] is None
    # Sent by the user; the patches keep their authors for git am.
    assert cover["From"] == "Sam Sender <sam@example.org>"
    assert "From: Bob Hacker <bob@example.org>" in patches[1].get_content()
    body = cover.get_content()
    assert "These make the fake ring better." in body
    assert f"base-commit: {mail_tree.base}" in body
    assert "Changes in v" not in body and "Range-diff" not in body
    # Maintainers To, reviewers and lists Cc; the same on every message.
    for m in (cover, *patches):
        assert [a.addr_spec for a in m["To"].addresses] == ["mst@redhat.com", "jasowang@redhat.com"]
        assert [a.addr_spec for a in m["Cc"].addresses] == [
            "rita@example.org", "virtualization@lists.linux-foundation.org", "linux-kernel@vger.kernel.org"]
    doc = json.loads((tmp_path / "v1" / "mail.json").read_text())
    assert doc["version"] == 1 and doc["base_commit"] == mail_tree.base
    assert [m["message_id"] for m in doc["messages"]] == ids
    assert doc["messages"][1]["in_reply_to"] == ids[0] and doc["messages"][0]["commit"] is None
    assert doc["to"] == ['"Michael S. Tsirkin" <mst@redhat.com>', "Jason Wang <jasowang@redhat.com>"]
    tip = git(mail_tree.path, "rev-parse", mail_tree.branch).strip()
    assert git(mail_tree.path, "rev-parse", f"{mail_tree.refs}/mail/v1").strip() == tip
    assert git(mail_tree.path, "rev-parse", f"{mail_tree.refs}/mail/v1-base").strip() == mail_tree.base


def test_rfc_version_and_extra_recipients(mail_tree, tmp_path):
    ms = mail.prepare(mail_tree, mail.MailOptions(version=3, rfc=True, out=tmp_path / "o",
                                                  to=["Extra <extra@example.org>", "Jason Wang <jasowang@redhat.com>"],
                                                  cc=["mst@redhat.com", "list@example.org"]))
    assert [m.subject for m in ms.messages] == ["[RFC PATCH v3 0/2] virtio_ring: two small changes",
                                               "[RFC PATCH v3 1/2] virtio_ring: first change",
                                               "[RFC PATCH v3 2/2] virtio_ring: second change"]
    assert [p.path.name for p in ms.messages][1] == "v3-0001-virtio_ring-first-change.patch"
    # De-duplicated: an address already in To is not copied again.
    assert ms.to == ['"Michael S. Tsirkin" <mst@redhat.com>', "Jason Wang <jasowang@redhat.com>",
                     "Extra <extra@example.org>"]
    assert ms.cc[-1] == "list@example.org" and not any("mst@" in a for a in ms.cc)


def test_git_am_of_the_set_gives_the_series_tree(mail_tree, tmp_path):
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mail_tree.path), str(clone))
    git(clone, "checkout", "-q", "--detach", ms.base)
    git(clone, "am", "-q", *[str(m.path) for m in ms.patches])
    assert git(clone, "rev-parse", "HEAD^{tree}") == git(mail_tree.path, "rev-parse", f"{mail_tree.branch}^{{tree}}")
    assert git(clone, "log", "--format=%an|%s", f"{ms.base}..HEAD").splitlines() == [
        "Bob Hacker|virtio_ring: second change", "Alice Dev|virtio_ring: first change"]


def _change_series(t, fake_series):
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = 222;", start=20,
               author="Bob Hacker <bob@example.org>",
               body="Second why.\n\nSigned-off-by: Bob Hacker <bob@example.org>\n" + SENDER_SOB)
    make_patch(fake_series / "0003-virtio_ring-third.patch", subject="virtio_ring: third change",
               old="static int line30 = 30;", new="static int line30 = 300;", start=30,
               body="Third why.\n\nSigned-off-by: Alice Dev <alice@example.org>\n" + SENDER_SOB)
    with open(fake_series / "series", "a") as f:
        f.write("0003-virtio_ring-third.patch\n")
    series.apply(t, series.load(fake_series))


def test_v2_has_changes_and_range_diff(mail_tree, fake_series, tmp_path):
    mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v1"))
    _change_series(mail_tree, fake_series)
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v2"))    # the next version by default
    assert ms.version == 2 and ms.previous == 1
    assert ms.cover.subject == "[PATCH v2 0/3] virtio_ring: two small changes"
    body = _parse(ms.cover.path).get_content()
    assert ("Changes in v2:\n- virtio_ring: second change: changed code.\n"
            "- New patch: virtio_ring: third change\n") in body
    assert "Range-diff against v1:" in body
    assert "-+static int line20 = 200;" in body and "++static int line20 = 222;" in body
    # v3 carries v2's changelog under its own.
    (fake_series / "series").write_text("0001-virtio_ring-first.patch\n0003-virtio_ring-third.patch\n")
    series.apply(mail_tree, series.load(fake_series))
    v3 = _parse(mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v3")).cover.path).get_content()
    assert "Changes in v3:\n- Dropped: virtio_ring: second change\n\nChanges in v2:\n" in v3


def test_a_changelog_kept_in_the_template_is_used_as_written(mail_tree, fake_series, tmp_path):
    mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v1"))
    _change_series(mail_tree, fake_series)
    (fake_series / "cover-letter.txt").write_text(COVER + "\nChanges in v2:\n- Took Jason's review.\n")
    body = _parse(mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v2")).cover.path).get_content()
    assert "Changes in v2:\n- Took Jason's review.\n" in body and "New patch" not in body


def test_non_ascii_cover_letter_is_encoded(mail_tree, fake_series, tmp_path):
    (fake_series / "cover-letter.txt").write_text("virtio_ring: två ändringar\n\nTack, Jürgen.\n")
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o"))
    assert ms.cover.path.read_bytes().isascii() is False     # 8bit body, encoded subject
    cover = _parse(ms.cover.path)
    assert cover["Subject"] == "[PATCH 0/2] virtio_ring: två ändringar"
    assert "Tack, Jürgen." in cover.get_content()


def test_version_not_above_the_last_is_refused(mail_tree, fake_series, tmp_path, capsys):
    assert _ktest(capsys, "--out", tmp_path / "v1")[0] == 0
    _change_series(mail_tree, fake_series)
    assert _ktest(capsys, "--version", 2, "--out", tmp_path / "v2")[0] == 0
    code, out, err = _ktest(capsys, "--version", 1, "--out", tmp_path / "again")
    assert code == 1 and "v1 is lower than v2, the last version recorded" in err
    assert not (tmp_path / "again").exists()
    # The same version again with the same series is fine; with another series it is not.
    assert _ktest(capsys, "--version", 2, "--out", tmp_path / "v2")[0] == 0
    (fake_series / "series").write_text("0001-virtio_ring-first.patch\n")
    series.apply(mail_tree, series.load(fake_series))
    code, out, err = _ktest(capsys, "--version", 2, "--out", tmp_path / "v2b")
    assert code == 1 and "v2 was already mailed with a different series" in err
    assert not (tmp_path / "v2b").exists()
    assert _ktest(capsys, "--version", 2, "--force", "--out", tmp_path / "v2b")[0] == 0


@pytest.mark.parametrize("history, requested, same, expected", [
    ({}, None, False, 1),
    ({1: "a"}, None, True, 1),
    ({1: "a"}, None, False, 2),
    ({1: "a", 2: "b"}, 5, False, 5),
])
def test_choose_version(history, requested, same, expected):
    h = {n: mail.Mailed(n, tip, "base") for n, tip in history.items()}
    tip = h[max(h)].tip if (h and same) else "new"
    assert mail.choose_version(h, requested, tip, "base") == expected


def test_gate_lists_every_failing_patch(mail_tree, fake_series, tmp_path, capsys):
    make_patch(fake_series / "0002-virtio_ring-second.patch", subject="second change, no prefix",
               old="static int line20 = 20;", new="static int line20 = 200; ", start=20,
               body="Second why.")
    series.apply(mail_tree, series.load(fake_series))
    code, out, err = _ktest(capsys, "--out", tmp_path / "o")
    assert code == 1
    assert "fails the mail gate" in err
    assert "0002-second-change-no-prefix.patch: subject: 'second change, no prefix' has no subsystem prefix" in err
    assert "0002-second-change-no-prefix.patch: signoff: no Signed-off-by: line" in err
    assert ("0002-second-change-no-prefix.patch: drivers/virtio/virtio_ring.c:20: checkpatch ERROR: "
            "trailing whitespace") in err
    assert "0001-" not in err
    assert not (tmp_path / "o").exists()
    assert git(mail_tree.path, "for-each-ref", f"{mail_tree.refs}/mail/") == ""
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o", force=True))
    assert len(ms.messages) == 3 and {p.kind for p in ms.problems} >= {"subject", "signoff"}
    # Written, not sent: --force says so and claims nothing else.
    code, out, err = _ktest(capsys, "--out", tmp_path / "f", "--force")
    assert code == 0 and "check failed, written anyway (--force): 0002-" in err
    assert "mailed" not in err and "sent" not in err


def test_gate_on_commits_and_patch_files(mail_tree, fake_series):
    commits = git(mail_tree.path, "rev-list", "--reverse", f"{mail_tree.base}..{mail_tree.branch}").split()
    assert mail.gate(mail_tree, commits) == []
    nobody = fake_series / "nobody.patch"
    make_patch(nobody, subject="virtio_ring: terse", old="static int line10 = 10;",
               new="static int line10 = 100;", body="Signed-off-by: Alice Dev <alice@example.org>")
    assert [str(p) for p in mail.gate(mail_tree, [nobody])] == [
        "nobody.patch: body: no commit message body: say what the patch does and why"]


def test_parse_checkpatch_output():
    out = ("WARNING:LONG_LINE: line length of 120 exceeds 100 columns\n"
           "#30: FILE: drivers/virtio/virtio_ring.c:412:\n+\tfoo();\n\n"
           "WARNING:COMMIT_LOG_LONG_LINE: Possible unwrapped commit description\n#9: \nlong line\n\n"
           "CHECK:MACRO_ARG_REUSE: Macro argument reuse 'x' - possible side-effects?\n")
    got = check.parse_checkpatch(out, "p.patch")
    assert [str(p) for p in got] == [
        "p.patch: drivers/virtio/virtio_ring.c:412: checkpatch WARNING: line length of 120 exceeds 100 columns",
        "p.patch: patch line 9: checkpatch WARNING: Possible unwrapped commit description",
        "p.patch: checkpatch CHECK: Macro argument reuse 'x' - possible side-effects?"]


def test_no_recipients_is_an_error(make_tree, tmp_path, capsys):
    make_tree(maintainers="NOBODY\nS:\tOrphan\nF:\tnothing/\n")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o")
    assert code == 1 and "no recipients" in err
    assert not (tmp_path / "o").exists()
    # --to alone is enough.
    assert _ktest(capsys, "--out", tmp_path / "o", "--to", "me@example.org")[0] == 0


def test_cover_letter_from_the_template_or_the_branch_description(make_tree, fake_series, tmp_path, capsys):
    t = make_tree(cover=None)
    code, out, err = _ktest(capsys, "--out", tmp_path / "o")
    assert code == 1 and f"no cover letter: {fake_series / 'cover-letter.txt'} does not exist" in err
    # Where b4 prep keeps it: the branch description.
    key = f"branch.{t.branch}.description"
    git(t.path, "config", key, "virtio_ring: from the branch\n\nKept where b4 keeps it.\n")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o")
    assert code == 0, err
    cover = _parse(tmp_path / "o" / "0000-cover-letter.patch")
    assert cover["Subject"] == "[PATCH 0/2] virtio_ring: from the branch"
    assert "Kept where b4 keeps it." in cover.get_content()
    assert json.loads((tmp_path / "o" / "mail.json").read_text())["cover_source"] == f"git config {key}"


def test_bench_table_from_the_latest_results_of_this_series(mail_tree, ktest_home, tmp_path):
    tip = git(mail_tree.path, "rev-parse", mail_tree.branch).strip()
    recs = [bench.RunRecord("ringtest", "ring", i, 0, 1.0 + i / 10, 0.5, 0.1, 1, 2, 3) for i in (1, 2, 3)]
    inputs = {"commit": tip, "accel": "tcg", "cpu": "Fake CPU", "kernel": "debian 6.1.0-99-amd64",
              "program": "ringtest", "where": "guest",
              "spec": {"variants": ["ring"], "runs": 3, "run_cycles": 1000, "batch": None, "sleep": False}}
    bench.write_results(ktest_home / "results" / "a", recs, bench.summarise(recs), inputs)
    other = dict(inputs, commit="0" * 40)
    bench.write_results(ktest_home / "results" / "b", recs[:1], bench.summarise(recs[:1]), other)
    os.utime(ktest_home / "results" / "a" / "results.json", (1, 1))    # older, but of this series
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o"))
    assert ms.bench == ktest_home / "results" / "a" / "results.json"
    body = _parse(ms.cover.path).get_content()
    assert "tools/virtio/ringtest in a QEMU guest (TCG, Fake CPU)" in body
    assert "  ring                    3      0    1.200    1.100    1.300  ok" in body


def test_send_delivers_the_files_over_smtp(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--send", "--yes")
    assert code == 0, err
    assert len(inbox.envelopes) == 3
    files = sorted((tmp_path / "o").glob("*.patch"))
    for env, f in zip(inbox.envelopes, files):
        assert env.mail_from == "sam@example.org"
        assert set(env.rcpt_tos) == {"mst@redhat.com", "jasowang@redhat.com", "rita@example.org",
                                     "virtualization@lists.linux-foundation.org", "linux-kernel@vger.kernel.org"}
        got = email.message_from_bytes(env.original_content, policy=email.policy.default)
        assert got["Message-Id"] == _parse(f)["Message-Id"]
        assert got.get_content().replace("\r\n", "\n") == _parse(f).get_content()
    assert "About to send 3 messages" in err and "to 5 recipients" in err and "sent 3 messages" in err
    doc = (tmp_path / "o" / "mail.json").read_text()
    assert json.loads(doc)["sent"]["messages"] == 3
    assert "s3cret-pw" not in out + err + doc


def test_nothing_is_sent_without_send(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    assert _ktest(capsys, "--out", tmp_path / "o")[0] == 0
    assert inbox.envelopes == []
    # --send without a terminal and without --yes: refused before anything is written.
    code, out, err = _ktest(capsys, "--out", tmp_path / "p", "--send")
    assert code == 1 and "no terminal" in err and "--yes" in err
    assert inbox.envelopes == [] and not (tmp_path / "p").exists()


def test_send_asks_first_on_a_terminal(mail_tree, smtp_server, tmp_path, capsys, monkeypatch):
    from ktest import ui

    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr(ui.err, "input", lambda prompt, **kw: next(answers))
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--send")
    assert code == 1 and "nothing sent" in err and inbox.envelopes == []
    assert _ktest(capsys, "--out", tmp_path / "o", "--send")[0] == 0
    assert len(inbox.envelopes) == 3


def test_a_refused_login_names_the_server_not_the_password(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    git(mail_tree.path, "config", "sendemail.smtpPass", "wr0ng-pw")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--send", "--yes")
    assert code == 1 and f"via 127.0.0.1:{port} failed after 0 of 3 messages" in err
    assert "wr0ng-pw" not in out + err and inbox.envelopes == []


def test_send_without_smtp_config_is_an_error(mail_tree, tmp_path, capsys):
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--send", "--yes")
    assert code == 1 and "no sendemail.smtpServer" in err
    assert not (tmp_path / "o").exists()


def test_smtp_password_is_never_shown():
    cfg = mail.SmtpConfig("smtp.example.org", 587, "tls", "sam", "s3cret-pw")
    assert "s3cret-pw" not in repr(cfg) + cfg.describe()


def test_missing_b4_names_the_package(mail_tree, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--via", "b4")
    assert code == 1 and "PyPI package 'b4'" in err
    assert not (tmp_path / "o").exists()


def test_b4_writes_the_same_patches_and_subjects(mail_tree, tmp_path, capsys):
    if shutil.which("b4") is None:
        pytest.fail("b4 is a declared dependency of ktest and is not installed: pip install -e .")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--via", "b4", "--rfc", "--version", "2")
    assert code == 0, err
    b4_files = sorted((tmp_path / "o" / "b4").glob("*.eml"))
    assert len(b4_files) == 3
    assert _parse(b4_files[1])["Subject"] == "[PATCH RFC v2 1/2] virtio_ring: first change"
    assert "same patches and subjects as ktest's" in err
    # b4 worked in a scratch clone: ktest's tree has no b4 branches or config.
    assert "b4/" not in git(mail_tree.path, "branch", "--list")
    assert "b4" not in [k.split(".")[0] for k in git(mail_tree.path, "config", "--list", "--name-only").split()]
