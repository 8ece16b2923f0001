"""Names and email addresses: as people write them, and as mail headers carry them.

ktest keeps every address as the user wrote it ("Jürgen Groß <jg@example.org>",
decoded, quoted only where RFC 5322 needs quotes) in its own data
(mail.json, recipients lists), and encodes exactly once, when a header
line is written: a display name with non-ASCII letters becomes one RFC 2047
encoded word; an address whose mailbox itself is not ASCII stays UTF-8
(RFC 6532), which needs a server that offers SMTPUTF8.
"""
from __future__ import annotations

import email.errors
import email.header
import email.utils
import re

from .errors import KtestError

# RFC 5322 specials: a display name holding one of them must be quoted.
SPECIALS = re.compile(r'[][\\()<>@,:;".]')
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


class AddressError(KtestError):
    """Text that should be an email address is not one."""


def decode(text: str) -> str:
    """``text`` with any RFC 2047 encoded words decoded (for input that was
    encoded already, e.g. copied from a mail header): never decodes twice."""
    if not ENCODED_WORD.search(text):
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (UnicodeError, LookupError, email.errors.HeaderParseError):
        return text


def split(addr: str) -> tuple[str, str]:
    """(display name, addr-spec) of ``addr``, the name decoded; raises
    AddressError when there is no ``local@domain``."""
    name, spec = email.utils.parseaddr(decode(addr) if ENCODED_WORD.search(addr) else addr)
    if not spec or "@" not in spec or spec.startswith("@") or spec.endswith("@"):
        raise AddressError(f"'{addr}' is not an email address")
    return name.strip(), spec


def plain(name: str, spec: str) -> str:
    """The readable form: ``Name <a@b>``, ``"Doe, John" <a@b>``, or ``a@b``."""
    if not name:
        return spec
    if SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{spec}>"


def normalise(addr: str) -> str:
    """One readable spelling per address (decoded, quoted only when needed)."""
    return plain(*split(addr))


def key(addr: str) -> str:
    """What identifies an address: its addr-spec, lower case."""
    return email.utils.parseaddr(decode(addr))[1].lower()


def encoded(addr: str) -> str:
    """``addr`` as it goes into a header: a non-ASCII name as one RFC 2047
    word; an ASCII one quoted when it must be; the addr-spec as is."""
    name, spec = split(addr)
    if name and not name.isascii():
        return f"{email.header.Header(name, 'utf-8').encode(maxlinelen=900)} <{spec}>"
    return plain(name, spec)


def needs_smtputf8(addr: str) -> bool:
    """True when the mailbox itself is not ASCII (RFC 6531/6532)."""
    return not split(addr)[1].isascii()


def header(field: str, addrs: list[str]) -> str:
    """A ``field: a, b, c`` header line, encoded once, folded between
    addresses to stay under 78 columns where it can (RFC 5322 2.2.3)."""
    parts = [encoded(a) for a in addrs]
    lines, line = [], f"{field}:"
    for i, p in enumerate(parts):
        word = p + ("," if i < len(parts) - 1 else "")
        if len(line) + 1 + len(word) > 78 and line != f"{field}:":
            lines.append(line)
            line = ""
        line += " " + word
    return "\n".join(lines + [line])
