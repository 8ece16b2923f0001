"""ktest mail: patch mail for the lists."""
from __future__ import annotations

from pathlib import Path

from .. import tree, ui


def cmd_mail(args) -> int:
    from .. import mail

    t = tree.current()
    if args.resume:
        if not (args.send or args.dry_run):
            raise mail.MailError("--resume finishes an interrupted --send: use it with --send (or --dry-run)")
        extra = [o for o, v in (("--version", args.version), ("--rfc", args.rfc), ("--to", args.to), ("--cc", args.cc),
                                ("--bench", args.bench), ("--signoff", args.signoff), ("--force", args.force),
                                ("--via b4", args.via == "b4")) if v]
        if extra:
            raise mail.MailError(f"--resume sends the files already written, as they are; {', '.join(extra)} "
                                 "would change them")
    # Everything that can refuse does so before a file is written.
    smtp = mail.preflight(t, send=args.send and not args.dry_run, yes=args.yes, interactive=ui.interactive(),
                          via=args.via)
    if args.dry_run and args.send:
        smtp = mail.smtp_config(t)
    if args.resume:
        ms = mail.load(mail.resume_dir(t, args.out))
    else:
        ms = mail.prepare(t, mail.MailOptions(version=args.version, rfc=args.rfc, to=args.to, cc=args.cc,
                                              out=args.out, force=args.force, signoff=args.signoff,
                                              bench=args.bench))
        ui.err.print(ms.report(), markup=False, highlight=False)
    print(ms.directory)
    if args.via == "b4":
        cmp = mail.via_b4(t, ms)
        ui.err.print(cmp.report(), markup=False, highlight=False)
        if cmp.differences:
            return 1
    if args.dry_run:
        ui.err.print(mail.preview(ms, smtp), markup=False, highlight=False)
        return 0
    if not args.send:
        return 0
    if not ms.pending:
        ui.note(f"all {len(ms.messages)} messages of v{ms.version} in {ms.directory} were delivered before; "
                "nothing sent")
        return 0
    ui.err.print(mail.send_summary(ms, smtp), markup=False, highlight=False)
    if not args.yes and not ui.confirm(f"Send these {len(ms.pending)} messages of v{ms.version}? [y/N] "):
        ui.note("nothing sent")
        return 1
    sent = mail.send(ms, smtp, tree=t)
    forced = f"; {len(ms.problems)} failed check(s) let through by --force" if ms.problems else ""
    ui.note(f"sent {sent} messages via {smtp.describe()}{forced}")
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
    p.add_argument("--send", action="store_true", help="send by SMTP (git config sendemail.*), after asking once (y/N)")
    p.add_argument("--yes", action="store_true", help="with --send: do not ask (needed without a terminal)")
    p.add_argument("--signoff", "-s", action="store_true",
                   help="add the sender's Signed-off-by where it does not end the chain (git format-patch -s)")
    p.add_argument("--dry-run", action="store_true",
                   help="write the messages and show each one's envelope and first lines; send nothing")
    p.add_argument("--resume", action="store_true",
                   help="with --send: send the messages of --out DIR (default: the last version's) not yet delivered")
    p.add_argument("--force", action="store_true", help="mail despite failed checks, or remake a recorded version")
    p.add_argument("--via", choices=["git", "b4"], default="git",
                   help="b4: also have b4 prep + b4 send -o write the series, and compare")
    p.set_defaults(func=cmd_mail)
