"""What every part of ``ktest mail`` shares: the error, the messages, and
``mail.json``, the record of one version's messages in their directory.

mail.json (format 2), all names and addresses decoded as the user wrote them::

    {"format": 2, "version": N, "rfc": bool, "tree", "branch", "base_ref", "base_commit", "tip",
     "previous_version": N | null, "from": "Name <addr>", "to": [...], "cc": [...],
     "cover_source": where the cover letter's text came from, "bench": path | null,
     "messages": [{"file", "subject", "message_id", "in_reply_to", "commit", "sha256",
                   "recipients": [addr-spec, ...],
                   "delivered": null | {"time": ISO 8601 UTC, "server": "host:port", "refused": {...}}}],
     "gate_ignored": ["problem", ...], "sent": null | {"time", "server", "messages": delivered count}}

``sha256`` is of the file as ktest wrote it: a file whose bytes no longer
match was edited, and is never overwritten or sent.
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import addresses
from ..check import Problem
from ..errors import KtestError

MAIL_JSON = "mail.json"
FORMAT = 2


class MailError(KtestError):
    """The series cannot be mailed as asked."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Message:
    path: Path
    subject: str                # decoded
    message_id: str
    in_reply_to: str = ""
    commit: str = ""            # empty for the cover letter
    recipients: list[str] = field(default_factory=list)    # addr-specs: To + Cc
    sha256: str = ""
    delivered: dict | None = None


def read_message(path: Path) -> Message:
    """A written message file, its headers decoded."""
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    unixfrom = (msg.get_unixfrom() or "").split()
    rcpts = []
    for name in ("To", "Cc"):
        for h in msg.get_all(name, []):
            rcpts += [a.addr_spec for a in h.addresses]
    return Message(path, " ".join(str(msg.get("Subject", "")).split()), str(msg.get("Message-Id", "")).strip(),
                   str(msg.get("In-Reply-To", "") or "").strip(), unixfrom[1] if len(unixfrom) > 1 else "",
                   rcpts, sha256(path))


@dataclass
class MailSet:
    directory: Path
    version: int
    rfc: bool
    base: str
    tip: str
    sender: str                 # "Name <addr>", decoded
    to: list[str]
    cc: list[str]
    messages: list[Message]     # the cover letter first
    title: str = ""
    blurb: str = ""
    previous: int | None = None
    bench: Path | None = None
    problems: list[Problem] = field(default_factory=list)   # let through by --force
    cover_source: str = ""

    @property
    def cover(self) -> Message:
        return self.messages[0]

    @property
    def patches(self) -> list[Message]:
        return self.messages[1:]

    @property
    def pending(self) -> list[Message]:
        return [m for m in self.messages if not m.delivered]

    def report(self) -> str:
        since = f", changes since v{self.previous}" if self.previous else ""
        lines = [f"v{self.version}{' RFC' if self.rfc else ''}: {len(self.patches)} patches and a cover letter"
                 f"{since}, base-commit {self.base[:12]}"]
        lines += [f"  {m.path.name}  {m.subject}" for m in self.messages]
        lines += [f"From: {self.sender}", f"To: {', '.join(self.to)}", f"Cc: {', '.join(self.cc) or '-'}"]
        if self.cover_source:
            lines.append(f"cover letter from {self.cover_source}")
        if self.bench:
            lines.append(f"benchmark table from {self.bench}")
        # Said before anything is sent, so it must not claim mail went out.
        lines += [f"check failed, written anyway (--force): {p}" for p in self.problems]
        return "\n".join(lines)


def summary_doc(ms: MailSet, tree) -> dict:
    return {
        "format": FORMAT, "version": ms.version, "rfc": ms.rfc, "tree": str(tree.path), "branch": tree.branch,
        "base_ref": tree.base_ref, "base_commit": ms.base, "tip": ms.tip, "previous_version": ms.previous,
        "from": ms.sender, "to": ms.to, "cc": ms.cc, "cover_source": ms.cover_source,
        "bench": str(ms.bench) if ms.bench else None,
        "messages": [{"file": m.path.name, "subject": m.subject, "message_id": m.message_id,
                      "in_reply_to": m.in_reply_to or None, "commit": m.commit or None, "sha256": m.sha256,
                      "recipients": m.recipients, "delivered": m.delivered} for m in ms.messages],
        "gate_ignored": [str(p) for p in ms.problems],
        "sent": None,
    }


def write_json(path: Path, doc: dict) -> None:
    """Replace ``path`` atomically: a crash mid-send never leaves half a record."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def read_json(directory: Path) -> dict:
    path = directory / MAIL_JSON
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MailError(f"{directory} holds no {MAIL_JSON}: not a directory ktest mail wrote") from None
    except (OSError, ValueError) as e:
        raise MailError(f"{path}: cannot be read: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
        raise MailError(f"{path}: not a ktest mail record (no message list)")
    return doc


def edited(directory: Path, doc: dict) -> list[str]:
    """Files listed in ``doc`` whose bytes differ from what ktest wrote."""
    out = []
    for m in doc.get("messages", []):
        f = directory / Path(m.get("file", "")).name
        if m.get("sha256") and f.is_file() and sha256(f) != m["sha256"]:
            out.append(str(f))
    return out


def load(directory: Path) -> MailSet:
    """The version recorded in ``directory``'s mail.json, its files checked:
    a missing or edited file is refused by name, never sent."""
    doc = read_json(directory)
    changed = edited(directory, doc)
    if changed:
        raise MailError(f"{changed[0]} was edited after ktest mail wrote it (its sha256 differs from "
                        f"{directory / MAIL_JSON}); ktest sends only the files it wrote",
                        hint="Put the change where it belongs (patches/cover-letter.txt for the cover letter, "
                             "the patch for a patch), then write a new version.")
    messages = []
    for m in doc["messages"]:
        f = directory / Path(m.get("file", "")).name
        if not f.is_file():
            raise MailError(f"{f} is listed in {directory / MAIL_JSON} but does not exist")
        msg = read_message(f)
        msg.commit, msg.delivered = m.get("commit") or "", m.get("delivered")
        messages.append(msg)
    if not messages:
        raise MailError(f"{directory / MAIL_JSON} lists no messages")
    return MailSet(directory, doc.get("version", 0), bool(doc.get("rfc")), doc.get("base_commit", ""),
                   doc.get("tip", ""), doc.get("from", ""), doc.get("to", []), doc.get("cc", []), messages,
                   previous=doc.get("previous_version"), cover_source=doc.get("cover_source", ""))


def sender_address(ms: MailSet) -> str:
    return addresses.split(ms.sender)[1]
