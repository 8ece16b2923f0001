"""ktest mail: patch mail for the lists."""
from __future__ import annotations

import sys
from pathlib import Path

from .. import tree, ui


def cmd_mail(args) -> int:
    from .. import mail

    t = tree.current()
    # Everything that can refuse does so before a file is written.
    smtp = mail.preflight(t, send=args.send, yes=args.yes, interactive=sys.stdin.isatty(), via=args.via)
    ms = mail.prepare(t, mail.MailOptions(version=args.version, rfc=args.rfc, to=args.to, cc=args.cc,
                                          out=args.out, force=args.force, bench=args.bench))
    ui.err.print(ms.report(), markup=False, highlight=False)
    print(ms.directory)
    if args.via == "b4":
        cmp = mail.via_b4(t, ms)
        ui.err.print(cmp.report(), markup=False, highlight=False)
        if cmp.differences:
            return 1
    if not args.send:
        return 0
    ui.err.print(mail.send_summary(ms, smtp), markup=False, highlight=False)
    if not args.yes:
        answer = ui.err.input(f"Send these {len(ms.messages)} messages? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            ui.note("nothing sent")
            return 1
    ui.note(f"sent {mail.send(ms, smtp)} messages via {smtp.describe()}")
    return 0


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
    p = sub.add_parser("mail", help="patch mail for the lists: cover letter, threading, recipients, checks")
    p.add_argument("--version", type=int, metavar="N", help="series version (default: the next one; v1 has no 'v1')")
    p.add_argument("--rfc", action="store_true", help="[RFC PATCH ...] subjects")
    p.add_argument("--to", action="append", default=[], metavar="ADDR", help="add a To: address (repeatable)")
    p.add_argument("--cc", action="append", default=[], metavar="ADDR", help="add a Cc: address (repeatable)")
    p.add_argument("--out", type=Path, metavar="DIR", help="where to write the messages (default: the ktest cache)")
    p.add_argument("--bench", type=Path, metavar="RESULTS.json",
                   help="results for the cover letter's table (default: the latest ktest bench of this series)")
    p.add_argument("--send", action="store_true", help="send by SMTP (git config sendemail.*), after asking")
    p.add_argument("--yes", action="store_true", help="with --send: do not ask")
    p.add_argument("--force", action="store_true", help="mail despite failed checks, or remake a recorded version")
    p.add_argument("--via", choices=["git", "b4"], default="git",
                   help="b4: also have b4 prep + b4 send -o write the series, and compare")
    p.set_defaults(func=cmd_mail)
