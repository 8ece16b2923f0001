"""Sending a version's messages by SMTP, one at a time, each recorded.

Each message's delivery is written to mail.json as soon as the server took
it, so a send that fails half way says what went out, and ``--resume``
sends only the rest: no message is ever sent twice by ktest.  The files
sent are the files in the directory, byte for byte (their sha256 checked
just before each goes out).
"""
from __future__ import annotations

import email
import email.policy
import smtplib
from dataclasses import dataclass, field
from pathlib import Path

from .. import addresses
from ..tree import Tree
from .b4 import b4_version
from .common import MAIL_JSON, MailError, MailSet, now, read_json, sha256, write_json
from .versions import record_delivery, recorded


@dataclass
class SmtpConfig:
    server: str
    port: int
    encryption: str = ""        # "", "tls" (STARTTLS) or "ssl"
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""            # sendemail.from

    def describe(self) -> str:
        how = {"tls": " with STARTTLS", "ssl": " over SSL"}.get(self.encryption, "")
        return f"{self.server}:{self.port}{how}" + (f" as {self.user}" if self.user else "")


def smtp_config(tree: Tree) -> SmtpConfig:
    """SMTP settings from git config sendemail.*, as git send-email reads them."""
    def get(key: str) -> str:
        return tree.git("config", "--get", f"sendemail.{key}", check=False).stdout.strip()

    server = get("smtpServer")
    if not server:
        raise MailError("--send needs an SMTP server, and git config has no sendemail.smtpServer",
                        hint="git config --global sendemail.smtpServer HOST (and smtpServerPort, "
                             "smtpEncryption, smtpUser, smtpPass, from)")
    if "/" in server:
        raise MailError(f"sendemail.smtpServer is a local command ({server}); ktest sends by SMTP only")
    enc = get("smtpEncryption").lower()
    enc = {"starttls": "tls", "smtps": "ssl", "none": ""}.get(enc, enc)
    if enc not in ("", "tls", "ssl"):
        raise MailError(f"sendemail.smtpEncryption={enc}: use tls, ssl or nothing")
    port_text = get("smtpServerPort") or {"ssl": "465", "tls": "587"}.get(enc, "25")
    if not port_text.isdigit():
        raise MailError(f"sendemail.smtpServerPort={port_text} is not a port number")
    user, password = get("smtpUser"), get("smtpPass")
    if user and not password:
        raise MailError("sendemail.smtpUser is set but sendemail.smtpPass is not; ktest does not ask for passwords")
    return SmtpConfig(server, int(port_text), enc, user, password, get("from"))


def preflight(tree: Tree, *, send: bool, yes: bool, interactive: bool, via: str = "git") -> SmtpConfig | None:
    """What must hold before anything is written: b4 for --via b4, SMTP
    settings and a way to confirm for --send."""
    if via == "b4":
        b4_version()
    if not send:
        return None
    cfg = smtp_config(tree)
    if not yes and not interactive:
        raise MailError("--send asks for confirmation and there is no terminal to ask on; nothing sent",
                        hint="Pass --yes to send without asking.")
    return cfg


def resume_dir(tree: Tree, out: Path | None) -> Path:
    """The directory ``--resume`` sends from: ``out``, else the one the
    newest recorded version was written to."""
    if out is not None:
        return out
    history = recorded(tree)
    if not history:
        raise MailError("--resume: no version of this series was mailed from this tree")
    directory = history[max(history)].meta.get("directory")
    if not directory:
        raise MailError(f"--resume: v{max(history)} has no recorded directory", hint="Name it with --out DIR.")
    return Path(directory)


def envelope_from(ms: MailSet, cfg: SmtpConfig | None) -> str:
    return addresses.split((cfg.sender if cfg and cfg.sender else "") or ms.sender)[1]


def send_summary(ms: MailSet, cfg: SmtpConfig) -> str:
    pending = ms.pending
    done = len(ms.messages) - len(pending)
    rcpts = {r.lower() for m in pending for r in m.recipients}
    lines = [f"About to send {len(pending)} messages of v{ms.version}"
             + (f" ({done} were sent before)" if done else "")
             + f" from {addresses.decode(cfg.sender) if cfg.sender else ms.sender} via {cfg.describe()}",
             f"to {len(rcpts)} recipients (To: {', '.join(ms.to)}" + (f"; Cc: {', '.join(ms.cc)})" if ms.cc else ")")]
    lines += [f"  {m.subject}" for m in pending]
    return "\n".join(lines)


def preview(ms: MailSet, cfg: SmtpConfig | None, body_lines: int = 8) -> str:
    """What ``--send`` would do, message by message: the SMTP envelope, the
    headers (decoded) and the first lines of the body."""
    sender = envelope_from(ms, cfg)
    via = f" via {cfg.describe()}" if cfg else ""
    out = [f"dry run: {len(ms.pending)} of {len(ms.messages)} messages would be sent{via}; nothing sent"]
    before = None
    for m in ms.pending:
        msg = email.message_from_bytes(m.path.read_bytes(), policy=email.policy.default)
        out += ["", f"--- {m.path}", f"MAIL FROM:<{sender}>"]
        same = m.recipients == before
        out += [f"RCPT TO: the same {len(before)} as above"] if same else [f"RCPT TO:<{r}>" for r in m.recipients]
        before = m.recipients
        out += [f"{h}: {' '.join(str(msg[h]).split())}" for h in ("From", "To", "Cc", "Subject", "Message-Id",
                                                                  "In-Reply-To") if msg[h] is not None]
        body = msg.get_content().splitlines() if not msg.is_multipart() else []
        out += ["", *body[:body_lines]] + (["[...]"] if len(body) > body_lines else [])
    return "\n".join(out)


def _wire(raw: bytes) -> bytes:
    """The file as an SMTP message: no mbox "From " line, CRLF line ends."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _options(smtp: smtplib.SMTP, raw: bytes, sender: str, rcpts: list[str], name: str) -> list[str]:
    opts = []
    if not raw.isascii() and smtp.has_extn("8bitmime"):
        opts.append("BODY=8BITMIME")
    if not all(a.isascii() for a in (sender, *rcpts)):
        if not smtp.has_extn("smtputf8"):
            raise MailError(f"{name}: an address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531)")
        opts.append("SMTPUTF8")
    return opts


def send(ms: MailSet, cfg: SmtpConfig, *, tree: Tree | None = None, timeout: float = 60) -> int:
    """Deliver the messages not yet delivered, cover letter first, recording
    each in mail.json (and, with ``tree``, the version's meta ref).
    Returns how many were sent now."""
    path = ms.directory / MAIL_JSON
    doc = read_json(ms.directory)
    entries = {e.get("file"): e for e in doc["messages"]}
    sender = envelope_from(ms, cfg)
    sent = 0
    pending = ms.pending
    current = pending[0].path.name if pending else ""
    try:
        if not pending:
            return 0
        cls = smtplib.SMTP_SSL if cfg.encryption == "ssl" else smtplib.SMTP
        with cls(cfg.server, cfg.port, timeout=timeout) as smtp:
            if cfg.encryption == "tls":
                smtp.starttls()
            if cfg.user:
                smtp.login(cfg.user, cfg.password)
            for m in pending:
                current = m.path.name
                raw = m.path.read_bytes()
                if m.sha256 and sha256(m.path) != m.sha256:
                    raise MailError(f"{m.path} was edited after ktest mail wrote it; it was not sent, and "
                                    f"{sent} message(s) before it were")
                opts = _options(smtp, raw, sender, m.recipients, m.path.name)
                refused = smtp.sendmail(sender, m.recipients, _wire(raw), mail_options=opts)
                m.delivered = {"time": now(), "server": cfg.describe()}
                if refused:
                    m.delivered["refused"] = {a: f"{c} {r.decode(errors='replace')}" for a, (c, r) in refused.items()}
                entries[m.path.name]["delivered"] = m.delivered
                write_json(path, doc)
                sent += 1
    except (smtplib.SMTPException, OSError, KeyboardInterrupt) as e:
        done = sum(1 for m in ms.messages if m.delivered)
        why = "interrupted (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else str(e)
        raise MailError(f"sending {current} via {cfg.server}:{cfg.port} failed after {done} of "
                        f"{len(ms.messages)} messages: {why}",
                        hint=(f"{path} records the {done} delivered; send the rest with: "
                              f"ktest mail --out {ms.directory} --send --resume") if done else None) from e
    finally:
        done = sum(1 for m in ms.messages if m.delivered)
        if sent:
            doc["sent"] = {"time": now(), "server": cfg.describe(), "messages": done,
                           "complete": done == len(ms.messages)}
            write_json(path, doc)
            if tree is not None:
                record_delivery(tree, ms.version, doc)
    return sent
