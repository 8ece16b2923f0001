"""ktest series trailers on the tiny fake tree: real git, real format-patch
mail, replies written into an mbox or a maildir by the test."""
import email.message
import email.policy
import email.utils
import mailbox
import subprocess
from pathlib import Path

import pytest

from ktest import cli, export, mail, series, trailers, tree
from tests.conftest import git
from tests.unit.conftest import make_patch
from tests.unit.mailkit import git_identity, kernel_scripts, mail_tree, make_tree  # noqa: F401 (fixtures)

RITA = "Rita Reviewer <rita@example.org>"
TOM = "Tom Tester <tom@example.org>"
JASON = "Jason Wang <jasowang@redhat.com>"


@pytest.fixture
def review_series(tmp_path):
    """Two patches; the second already carries Rita's review."""
    d = tmp_path / "review-patches"
    d.mkdir()
    make_patch(d / "0001-virtio_ring-first.patch", subject="virtio_ring: first change",
               old="static int line10 = 10;", new="static int line10 = 100;", start=10)
    make_patch(d / "0002-virtio_ring-second.patch", subject="virtio_ring: second change",
               old="static int line20 = 20;", new="static int line20 = 200;", start=20,
               author="Bob Hacker <bob@example.org>", date="Wed, 4 Feb 2015 11:30:00 +0000",
               body=f"Second why.\n\nReviewed-by: {RITA}\nSigned-off-by: Bob Hacker <bob@example.org>")
    (d / "series").write_text("0001-virtio_ring-first.patch\n0002-virtio_ring-second.patch\n")
    return d


def _applied(fake_kernel, patches) -> tree.Tree:
    t = tree.prepare_user(fake_kernel)
    series.apply(t, series.load(patches))
    return t


def _sent(t: tree.Tree, out: Path, prefix: str = "PATCH") -> list[email.message.EmailMessage]:
    """The series as git format-patch mails it: cover letter, shallow thread."""
    git(t.path, "format-patch", "-q", "--cover-letter", "--thread=shallow", f"--subject-prefix={prefix}",
        "-o", str(out), f"{t.base}..{t.branch}")
    msgs = []
    for f in sorted(out.glob("*.patch")):
        with open(f, "rb") as fh:
            msgs.append(email.message_from_binary_file(fh, policy=email.policy.default))
    return msgs


_n = [0]


def _reply(parent, sender: str, text: str, *, in_reply_to: str | None = None, refs: str | None = None,
           subject: str | None = None) -> email.message.EmailMessage:
    _n[0] += 1
    m = email.message.EmailMessage()
    m["From"] = sender
    m["Subject"] = subject or f"Re: {parent['Subject']}"
    m["Date"] = email.utils.formatdate(1_700_000_000 + 60 * _n[0])
    m["Message-Id"] = f"<reply-{_n[0]}@example.org>"
    if parent is not None or in_reply_to:
        pid = in_reply_to or parent["Message-Id"]
        m["In-Reply-To"] = pid
        m["References"] = refs if refs is not None else " ".join(filter(None, [parent and parent["References"], pid]))
    m.set_content(text)
    return m


def _mbox(path: Path, msgs) -> Path:
    box = mailbox.mbox(str(path))
    for m in msgs:
        box.add(m)
    box.close()
    return path


def _message(t, rev) -> str:
    return git(t.path, "log", "-1", "--format=%B", rev)


def _thread(t, tmp_path):
    cover, p1, p2 = _sent(t, tmp_path / "v1")
    on_p2 = _reply(p2, "Michael Tsirkin <mst@redhat.com>", "> +static int line20 = 200;\n\nWhy 200?\n")
    msgs = [
        cover, p1, p2,
        _reply(cover, TOM, "Booted it in QEMU.\n\nTested-by: Tom Tester <tom@example.org>\n"),
        _reply(p1, RITA, "Looks right.\n\n> Acked-by: Quoted Person <quoted@example.org>\n\n"
                         "Reviewed-by: Rita Reviewer <rita@example.org>\n"),
        on_p2,
        # Answers the reply above, naming only it: the chain leads to patch 2.
        _reply(on_p2, JASON, "Because.\n\nAcked-by: Jason Wang <jasowang@redhat.com>\n",
               refs=on_p2["Message-Id"]),
        # Rita reviews the whole series from the cover letter; patch 2 has it already.
        _reply(cover, RITA, "Reviewed-by: Rita Reviewer <rita@example.org>\n"),
        # Said twice for patch 1.
        _reply(p1, RITA, "Still fine.\n\nReviewed-by: Rita Reviewer <rita@example.org>\n"),
        _reply(p1, "Mallory <mallory@example.org>", "Reviewed-by: Linus Torvalds <torvalds@linux-foundation.org>\n"),
        _reply(None, "Nina <nina@example.org>", "Acked-by: Nina <nina@example.org>\n",
               in_reply_to="<elsewhere@example.org>", subject="Re: [PATCH] net: an unrelated patch"),
    ]
    return msgs


def test_replies_reach_their_commits(fake_kernel, review_series, ktest_home, tmp_path):
    t = _applied(fake_kernel, review_series)
    box = _mbox(tmp_path / "thread.mbox", _thread(t, tmp_path))
    old_tip = git(t.path, "rev-parse", t.branch).strip()
    old_tree = git(t.path, "rev-parse", f"{t.branch}^{{tree}}").strip()

    plan = trailers.plan(t, [box])
    assert git(t.path, "rev-parse", t.branch).strip() == old_tip     # reading changes nothing
    first, second = plan.additions
    assert [(tr.line, tr.how) for tr in first.add] == [
        (f"Tested-by: {TOM}", "thread (cover letter)"),
        (f"Reviewed-by: {RITA}", "thread")]
    assert [(tr.line, tr.how) for tr in second.add] == [
        (f"Tested-by: {TOM}", "thread (cover letter)"),
        (f"Acked-by: {JASON}", "thread")]
    assert [tr.line for tr in second.present] == [f"Reviewed-by: {RITA}"]
    assert plan.count == 4
    assert [(s.subject, s.trailers) for s in plan.unmatched] == [
        ("Re: [PATCH] net: an unrelated patch", ["Acked-by: Nina <nina@example.org>"])]
    assert "reaches no patch" in plan.unmatched[0].reason
    assert [(s.sender, s.trailers) for s in plan.not_taken] == [
        ("Mallory <mallory@example.org>", ["Reviewed-by: Linus Torvalds <torvalds@linux-foundation.org>"])]

    tip = trailers.apply(t, plan)
    assert tip != old_tip
    assert git(t.path, "rev-parse", f"{tip}^{{tree}}").strip() == old_tree
    one, two = git(t.path, "rev-list", "--reverse", f"{t.base}..{t.branch}").split()
    assert _message(t, one).endswith(
        f"Explain why.\n\nTested-by: {TOM}\nReviewed-by: {RITA}\nSigned-off-by: Alice Dev <alice@example.org>\n\n")
    assert _message(t, two).endswith(
        f"Second why.\n\nReviewed-by: {RITA}\nTested-by: {TOM}\nAcked-by: {JASON}\n"
        "Signed-off-by: Bob Hacker <bob@example.org>\n\n")
    # Authors and dates stay; the old tip is kept.
    assert git(t.path, "log", "-1", "--format=%an %ad %cn %cd", two) == \
        git(t.path, "log", "-1", "--format=%an %ad %cn %cd", old_tip)
    assert old_tip in git(t.path, "for-each-ref", "--format=%(objectname)", f"{t.refs}/backup/")
    # The branch is checked out and stays clean.
    assert git(t.path, "status", "--porcelain", "--untracked-files=no") == ""

    again = trailers.plan(t, [box])
    assert again.count == 0 and len(again.additions[0].present) == 2

    res = export.export(t, review_series)
    assert sorted(res.written) == ["0001-virtio_ring-first.patch", "0002-virtio_ring-second.patch"]
    text = (review_series / "0001-virtio_ring-first.patch").read_text()
    assert f"Tested-by: {TOM}\nReviewed-by: {RITA}\nSigned-off-by: Alice Dev" in text


def test_patch_id_and_subject_fallbacks(fake_kernel, review_series, ktest_home, tmp_path):
    t = _applied(fake_kernel, review_series)
    cover, p1, p2 = _sent(t, tmp_path / "v1", prefix="PATCH v1")
    # Since v1, patch 1's subject was reworded: its v1 mail still matches by diff.
    one = git(t.path, "rev-list", "--reverse", f"{t.base}..{t.branch}").split()[0]
    git(t.path, "checkout", "-q", one)
    git(t.path, "commit", "-q", "--amend", "-m", "virtio_ring: make line 10 a hundred\n\nExplain why.\n\n"
        "Signed-off-by: Alice Dev <alice@example.org>")
    git(t.path, "cherry-pick", t.branch)
    git(t.path, "checkout", "-q", "-B", t.branch)
    stranger = make_patch(tmp_path / "other.patch", subject="virtio_ring: a patch not in the series",
                          old="static int line30 = 30;", new="static int line30 = 3;", start=30)
    other = email.message_from_bytes(stranger.read_bytes(), policy=email.policy.default)
    other["Message-Id"] = "<other-patch@example.org>"
    msgs = [
        p1, other,
        _reply(p1, RITA, "Reviewed-by: Rita Reviewer <rita@example.org>\n"),
        # The patch it answers is not in this mailbox; its subject names patch 2.
        _reply(None, TOM, "Tested-by: Tom Tester <tom@example.org>\n", in_reply_to="<not-here@example.org>",
               subject="Re: [PATCH v1 2/2] virtio_ring: second change"),
        _reply(other, JASON, "Acked-by: Jason Wang <jasowang@redhat.com>\n"),
    ]
    plan = trailers.plan(t, [_mbox(tmp_path / "v1.mbox", msgs)])
    assert [(tr.line, tr.how) for tr in plan.additions[0].add] == [(f"Reviewed-by: {RITA}", "thread")]
    assert [(tr.line, tr.how) for tr in plan.additions[1].add] == [(f"Tested-by: {TOM}", "subject")]
    assert len(plan.unmatched) == 1
    assert "virtio_ring: a patch not in the series" in plan.unmatched[0].reason
    assert plan.unmatched[0].trailers == [f"Acked-by: {JASON}"]


def test_maildir_and_a_single_message(fake_kernel, review_series, ktest_home, tmp_path):
    t = _applied(fake_kernel, review_series)
    cover, p1, p2 = _sent(t, tmp_path / "v1")
    md = mailbox.Maildir(str(tmp_path / "inbox"))
    for m in (p1, _reply(p1, RITA, "Reviewed-by: Rita Reviewer <rita@example.org>\n")):
        md.add(m)
    md.close()
    plan = trailers.plan(t, [tmp_path / "inbox"])
    assert [tr.line for tr in plan.additions[0].add] == [f"Reviewed-by: {RITA}"]
    eml = tmp_path / "reply.eml"
    eml.write_bytes(bytes(_reply(p2, TOM, "Tested-by: Tom Tester <tom@example.org>\n")))
    plan = trailers.plan(t, [eml])
    assert [tr.line for tr in plan.additions[1].add] == [f"Tested-by: {TOM}"]


def test_replies_to_what_ktest_mail_sent(mail_tree, tmp_path):
    """Only the replies are in the mailbox; their threads lead to the Message-Ids
    ktest mail recorded, even where a reply's subject was edited."""
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "v1"))
    cover, p1, p2 = (email.message_from_bytes(m.path.read_bytes(), policy=email.policy.default)
                     for m in ms.messages)
    msgs = [_reply(p2, RITA, "Reviewed-by: Rita Reviewer <rita@example.org>\n", subject="Re: your patch"),
            _reply(cover, TOM, "Tested-by: Tom Tester <tom@example.org>\n", subject="Re: the series")]
    plan = trailers.plan(mail_tree, [_mbox(tmp_path / "replies.mbox", msgs)])
    assert [(tr.line, tr.how) for tr in plan.additions[0].add] == [(f"Tested-by: {TOM}", "thread (cover letter)")]
    assert [(tr.line, tr.how) for tr in plan.additions[1].add] == [
        (f"Reviewed-by: {RITA}", "thread"), (f"Tested-by: {TOM}", "thread (cover letter)")]


def test_cli_dry_run_and_bad_input(fake_kernel, review_series, ktest_home, tmp_path, capsys):
    t = _applied(fake_kernel, review_series)
    box = _mbox(tmp_path / "thread.mbox", _thread(t, tmp_path))
    tip = git(t.path, "rev-parse", t.branch)
    assert cli.main(["series", "trailers", "--dry-run", str(box)]) == 0
    out, err = capsys.readouterr()
    assert "+ Reviewed-by: Rita Reviewer <rita@example.org>" in out
    assert "already there" in out
    assert "no patch: Re: [PATCH] net: an unrelated patch from Nina <nina@example.org>" in out
    assert "not added: Reviewed-by: Linus Torvalds" in out
    assert "dry run" in err
    assert git(t.path, "rev-parse", t.branch) == tip

    assert cli.main(["series", "trailers", str(box)]) == 0
    out, err = capsys.readouterr()
    assert "4 trailer(s) added" in err
    assert git(t.path, "rev-parse", t.branch) != tip

    assert cli.main(["series", "trailers", str(tmp_path / "missing.mbox")]) == 1
    assert "missing.mbox: no such mbox file or maildir" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert cli.main(["series", "trailers", str(tmp_path / "plain")]) == 1
    assert "not a maildir" in capsys.readouterr().err
    (tmp_path / "empty.mbox").write_text("just some text\n")
    assert cli.main(["series", "trailers", str(tmp_path / "empty.mbox")]) == 1
    assert "no messages in it" in capsys.readouterr().err


def test_trailer_block_placement():
    msg = "virtio: x\n\nWhy.\n\nSigned-off-by: A <a@x.org>\n"
    assert trailers.with_trailers(msg, ["Reviewed-by: R <r@x.org>"]) == \
        "virtio: x\n\nWhy.\n\nReviewed-by: R <r@x.org>\nSigned-off-by: A <a@x.org>\n"
    # No trailer block yet: a new one; prose ending in "Note: ..." is not a block.
    assert trailers.with_trailers("virtio: x\n\nWhy.\nNote: this.\n", ["Acked-by: R <r@x.org>"]) == \
        "virtio: x\n\nWhy.\nNote: this.\n\nAcked-by: R <r@x.org>\n"
    assert trailers.with_trailers("virtio: x\n", ["Acked-by: R <r@x.org>"]) == "virtio: x\n\nAcked-by: R <r@x.org>\n"
    # The last signer is the submitter; a chain keeps its order above the new trailers' place.
    chain = "virtio: x\n\nWhy.\n\nSigned-off-by: B <b@x.org>\nLink: https://x\nSigned-off-by: A <a@x.org>\n"
    assert trailers.with_trailers(chain, ["Tested-by: T <t@x.org>"]).endswith(
        "Signed-off-by: B <b@x.org>\nLink: https://x\nTested-by: T <t@x.org>\nSigned-off-by: A <a@x.org>\n")
    assert trailers.trailer_key("Reviewed-by", "Rita <RITA@example.org>") == \
        trailers.trailer_key("reviewed-by", "Rita R. <rita@example.org>")
