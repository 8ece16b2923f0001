"""ktest mail as it meets people: names in any script, terminals that are
not there, edited files, a server that fails half way, the sender's
sign-off.  The fake kernel tree with the real kernel scripts; SMTP only to
aiosmtpd on 127.0.0.1."""
import email
import email.policy
import fcntl
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time

from ktest import mail
from tests.conftest import REPO, git
from tests.unit.mailkit import (MAINTAINERS, SENDER_SOB, _ktest, _parse, _smtp_config,  # noqa: F401
                                git_identity, kernel_scripts, mail_tree, make_tree, smtp_server)


def _headers(path) -> bytes:
    return path.read_bytes().partition(b"\n\n")[0]


def test_names_in_any_script_are_encoded_once(make_tree, git_identity, smtp_server, tmp_path, capsys):
    git_identity.write_text("[user]\n\tname = Jürgen Groß\n\temail = jg@example.org\n")
    t = make_tree(maintainers=MAINTAINERS.replace("Jason Wang <jasowang@redhat.com>", "Jörg Rödel <joro@example.org>"))
    port, inbox = smtp_server
    _smtp_config(t, port)
    git(t.path, "config", "--unset", "sendemail.from")
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--signoff", "--to", '"Doe, John" <jd@example.org>',
                            "--cc", "Zoë Ζαχαρίου <zz@example.org>", "--cc", "=?utf-8?q?Ren=C3=A9_R?= <rr@example.org>",
                            "--send", "--yes")
    assert code == 0, err
    files = sorted((tmp_path / "o").glob("*.patch"))
    want_to = ["Michael S. Tsirkin", "Jörg Rödel", "Doe, John"]
    for f in files:
        assert _headers(f).isascii(), f       # every name encoded, none raw
        m = _parse(f)
        assert str(m["From"]) == "Jürgen Groß <jg@example.org>"
        assert [a.display_name for a in m["To"].addresses] == want_to
        assert [a.display_name for a in m["Cc"].addresses][-2:] == ["Zoë Ζαχαρίου", "René R"]
        assert "=?" not in str(m["From"]) + str(m["To"]) + str(m["Cc"])
    for f in files[1:]:
        body = _parse(f).get_content()
        assert body.split("\n---\n")[0].rstrip().endswith("Signed-off-by: Jürgen Groß <jg@example.org>")
    doc = json.loads((tmp_path / "o" / "mail.json").read_text())
    assert doc["from"] == "Jürgen Groß <jg@example.org>"
    assert doc["to"][1:] == ["Jörg Rödel <joro@example.org>", '"Doe, John" <jd@example.org>']
    assert doc["cc"][-2:] == ["Zoë Ζαχαρίου <zz@example.org>", "René R <rr@example.org>"]
    # What arrived is what was written, and git am gives the names back.
    assert len(inbox.envelopes) == 3 and inbox.envelopes[0].mail_from == "jg@example.org"
    got = email.message_from_bytes(inbox.envelopes[1].original_content, policy=email.policy.default)
    assert str(got["From"]) == "Jürgen Groß <jg@example.org>"
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(t.path), str(clone))
    git(clone, "checkout", "-q", "--detach", t.base)
    git(clone, "am", "-q", *map(str, files[1:]))
    sobs = git(clone, "log", "-1", "--format=%(trailers:key=Signed-off-by,valueonly)").split()
    assert " ".join(sobs[-3:]) == "Jürgen Groß <jg@example.org>"


def _run_ktest(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "ktest", "mail", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_closed_stdin_is_no_terminal(mail_tree, smtp_server, tmp_path):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    closed = {"preexec_fn": lambda: os.close(0)}       # as `ktest mail ... <&-`
    p = _run_ktest(["--out", tmp_path / "o"], **closed)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0 and b"Traceback" not in err, err.decode()
    p = _run_ktest(["--out", tmp_path / "p", "--send"], **closed)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1 and b"Traceback" not in err, err.decode()
    assert b"no terminal" in err and b"nothing sent" in err and b"--yes" in err
    assert inbox.envelopes == [] and not (tmp_path / "p").exists()


def _at_the_prompt(tmp_path, key: bytes):
    """Run ``ktest mail --send`` with a pseudo-terminal as its controlling
    terminal, and type ``key`` once it asks."""
    master, slave = pty.openpty()

    def own_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = _run_ktest(["--out", tmp_path / "o", "--send"], stdin=slave, preexec_fn=own_terminal)
    os.close(slave)
    err, deadline = b"", time.monotonic() + 300
    while b"[y/N]" not in err and time.monotonic() < deadline and p.poll() is None:
        ready, _, _ = select.select([p.stderr], [], [], 1)
        if ready:
            err += os.read(p.stderr.fileno(), 65536)
    assert b"[y/N]" in err, err.decode()
    os.write(master, key)
    out, rest = p.communicate(timeout=120)
    os.close(master)
    return p.returncode, (err + rest).decode()


def test_eof_or_ctrl_c_at_the_prompt_sends_nothing(mail_tree, smtp_server, tmp_path):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    for key in (b"\x04", b"\x03"):          # Ctrl-D, Ctrl-C
        code, err = _at_the_prompt(tmp_path, key)
        assert code == 1 and "nothing sent" in err and "Traceback" not in err, (key, err)
        assert "Send these 3 messages of v1? [y/N]" in err
    assert inbox.envelopes == []


def test_an_edited_file_is_never_overwritten_or_sent(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    assert _ktest(capsys, "--out", tmp_path / "o")[0] == 0
    cover = tmp_path / "o" / "0000-cover-letter.patch"
    edited = cover.read_text().replace("These make the fake ring better.", "Edited by hand.")
    cover.write_text(edited)
    for extra in ([], ["--send", "--yes"]):
        code, out, err = _ktest(capsys, "--out", tmp_path / "o", *extra)
        assert code == 1 and f"{cover} was edited after ktest mail wrote it" in err
        assert "patches/cover-letter.txt" in err
        assert cover.read_text() == edited and inbox.envelopes == []
    # Edited between writing and sending (at the prompt): that file is not sent.
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "p"))
    ms.patches[1].path.write_text(ms.patches[1].path.read_text() + "\nP.S. changed\n")
    cfg = mail.smtp_config(mail_tree)
    try:
        mail.send(ms, cfg)
        raise AssertionError("an edited file was sent")
    except mail.MailError as e:
        assert str(ms.patches[1].path) in str(e)
    assert len(inbox.envelopes) == 2 and b"P.S. changed" not in b"".join(
        e.original_content for e in inbox.envelopes)


def test_a_send_that_fails_half_way_resumes_without_sending_twice(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    inbox.reject = {2}
    out_dir = tmp_path / "o"
    code, out, err = _ktest(capsys, "--out", out_dir, "--send", "--yes")
    assert code == 1 and "sending 0001-virtio_ring-first-change.patch" in err and "failed after 1 of 3" in err
    assert f"ktest mail --out {out_dir} --send --resume" in err
    doc = json.loads((out_dir / "mail.json").read_text())
    assert [bool(m["delivered"]) for m in doc["messages"]] == [True, False, False]
    assert doc["sent"]["complete"] is False
    # Writing over a partly sent version is refused.
    code, out, err = _ktest(capsys, "--out", out_dir)
    assert code == 1 and "1 of its 3 messages were sent" in err and "--resume" in err
    code, out, err = _ktest(capsys, "--send", "--yes", "--resume")      # the last version's directory
    assert code == 0, err
    assert "About to send 2 messages of v1 (1 were sent before)" in err and "sent 2 messages" in err
    ids = [str(email.message_from_bytes(e.original_content)["Message-Id"]).strip() for e in inbox.envelopes]
    doc = json.loads((out_dir / "mail.json").read_text())
    assert ids == [m["message_id"] for m in doc["messages"]]      # each once, in order
    assert all(m["delivered"]["server"].startswith("127.0.0.1") for m in doc["messages"])
    code, out, err = _ktest(capsys, "--out", out_dir, "--send", "--yes", "--resume")
    assert code == 0 and "were delivered before; nothing sent" in err and len(inbox.envelopes) == 3
    # The version's record says who it went to, for the next version.
    meta = mail.recorded(mail_tree)[1].meta
    assert meta["sent"]["complete"] is True and meta["message_ids"] == ids
    assert "jasowang@redhat.com" in meta["delivered"][0]["recipients"]
    assert meta["to"] == doc["to"] and meta["cc"] == doc["cc"]
    # The same series again under v1 would go out twice: refused.
    code, out, err = _ktest(capsys, "--out", tmp_path / "again", "--send", "--yes")
    assert code == 1 and "v1 of this very series was already sent" in err and len(inbox.envelopes) == 3


def test_resume_takes_no_options_that_would_change_the_files(mail_tree, tmp_path, capsys):
    code, out, err = _ktest(capsys, "--resume", "--send", "--yes", "--signoff", "--to", "x@example.org")
    assert code == 1 and "--to, --signoff would change them" in err
    code, out, err = _ktest(capsys, "--resume")
    assert code == 1 and "use it with --send" in err


def test_the_sender_signs_off_last(make_tree, tmp_path, capsys):
    t = make_tree(signed=False)
    code, out, err = _ktest(capsys, "--out", tmp_path / "o")
    assert code == 1 and not (tmp_path / "o").exists()
    assert ("0001-virtio_ring-first-change.patch: signoff: the Signed-off-by chain ends with "
            "Alice Dev <alice@example.org>, not with the sender Sam Sender <sam@example.org>") in err
    assert "0002-virtio_ring-second-change.patch: signoff: the Signed-off-by chain ends with Bob Hacker" in err
    assert "Pass --signoff" in err
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--signoff")
    assert code == 0, err
    for f, author in zip(sorted((tmp_path / "o").glob("000[12]-*.patch")), ["Alice Dev", "Bob Hacker"]):
        msg = _parse(f).get_content().split("\n---\n")[0]
        sobs = [ln for ln in msg.splitlines() if ln.startswith("Signed-off-by:")]
        assert sobs[0].startswith(f"Signed-off-by: {author} <") and sobs[-1] == SENDER_SOB
    # The tree's commits are not touched: -s is applied to the mail only.
    assert SENDER_SOB not in git(t.path, "log", "--format=%B", f"{t.base}..{t.branch}")


def test_signoff_adds_nothing_where_the_sender_is_last(mail_tree, tmp_path):
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o", signoff=True))
    for m in ms.patches:
        assert m.path.read_text().count(SENDER_SOB) == 1


def test_checkpatch_from_signoff_checks_read_the_messages_as_sent(mail_tree, tmp_path):
    ms = mail.prepare(mail_tree, mail.MailOptions(out=tmp_path / "o"))
    f = ms.patches[0].path
    assert mail.identity.check_messages(mail_tree, [f], [f.name]) == []
    # Patch 1's in-body From: is Alice; as a double-encoded header (the
    # old bug) the author checkpatch sees has no sign-off.
    text = f.read_text().replace("From: Alice Dev <alice@example.org>\n\n", "")
    bad = tmp_path / "bad.patch"
    bad.write_text(text.replace("From: Sam Sender <sam@example.org>",
                                "From: =?UTF-8?q?=3D=3Futf-8=3Fb=3FU2Ft?= <alice@example.org>", 1))
    got = mail.identity.check_messages(mail_tree, [bad], ["bad.patch"])
    assert {p.type for p in got} & mail.identity.FROM_SOB_TYPES, got


def test_dry_run_shows_envelope_and_first_lines(mail_tree, smtp_server, tmp_path, capsys):
    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--dry-run", "--send")
    assert code == 0 and inbox.envelopes == []
    assert f"dry run: 3 of 3 messages would be sent via 127.0.0.1:{port} as sam; nothing sent" in err
    cover = err.split("0000-cover-letter.patch\n", 1)[1].splitlines()
    assert cover[0] == "MAIL FROM:<sam@example.org>" and "RCPT TO:<mst@redhat.com>" in cover
    block = err.split("0001-virtio_ring-first-change.patch\n", 1)[1]
    lines = block.splitlines()
    assert lines[:2] == ["MAIL FROM:<sam@example.org>", "RCPT TO: the same 5 as above"]
    assert "Subject: [PATCH 1/2] virtio_ring: first change" in lines
    assert "From: Alice Dev <alice@example.org>" in lines and "Explain why." in lines
    assert mail.read_json(tmp_path / "o")["sent"] is None


def test_ctrl_c_while_sending_says_what_went_and_how_to_finish(mail_tree, smtp_server, tmp_path, capsys,
                                                                monkeypatch):
    import smtplib

    port, inbox = smtp_server
    _smtp_config(mail_tree, port)
    real, calls = smtplib.SMTP.sendmail, []

    def sendmail(self, *a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(smtplib.SMTP, "sendmail", sendmail)
    code, out, err = _ktest(capsys, "--out", tmp_path / "o", "--send", "--yes")
    assert code == 1 and "failed after 2 of 3 messages: interrupted (Ctrl-C)" in err and "--resume" in err
    monkeypatch.setattr(smtplib.SMTP, "sendmail", real)
    assert _ktest(capsys, "--out", tmp_path / "o", "--send", "--yes", "--resume")[0] == 0
    assert len(inbox.envelopes) == 3
