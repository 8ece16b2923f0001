"""Replies read from an mbox file, a maildir or one saved message, with b4's parser.

b4's ``LoreMessage`` knows subject prefixes, threading headers and reply
trailers; ktest reuses it rather than parse mail of its own.
"""
from __future__ import annotations

import logging
import mailbox
from pathlib import Path

from .errors import SeriesError


class MailboxError(SeriesError):
    """A path that is no mbox, maildir or message, or holds none."""


def b4_module():
    import b4

    # b4 logs its parsing decisions at INFO/DEBUG; ktest reports its own.
    logging.getLogger("b4").setLevel(logging.WARNING)
    return b4


def read_mailbox(path: Path) -> list:
    """The messages of an mbox file or a maildir, as b4 LoreMessages.

    Raises MailboxError for a path that is neither or holds no message.
    A message without a Message-Id cannot be threaded and is left out.
    """
    b4 = b4_module()
    path = Path(path)
    if not path.exists():
        raise MailboxError(f"{path}: no such mbox file or maildir")
    if path.is_dir() and not b4.is_maildir(str(path)):
        raise MailboxError(f"{path} is a directory but not a maildir (no cur/, new/, tmp/)")
    try:
        msgs = b4.get_msgs_from_mailbox_or_maildir(str(path))
    except (OSError, mailbox.Error, UnicodeError) as e:
        raise MailboxError(f"{path}: cannot read it as an mbox or maildir: {e}") from e
    if not msgs and path.is_file():
        # A single message saved on its own (an .eml) has no "From " line.
        import email.parser

        one = email.parser.BytesParser(policy=b4.emlpolicy, _class=b4.EmailMessage).parsebytes(path.read_bytes())
        msgs = [one] if one.get("Message-Id") else []
    if not msgs:
        raise MailboxError(f"{path}: no messages in it (an mbox starts each message with a 'From ' line)")
    out = []
    for m in msgs:
        try:
            out.append(b4.LoreMessage(m))
        except ValueError:
            continue
    return out
