"""ktest series ...: the patch series."""
from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape

from .. import job, paths, series, tree, ui
from ..errors import KtestError
from .common import positive


def cmd_series_apply(args) -> int:
    t = tree.current()
    tip = job.apply_series(t, args.patches, force=args.force, fuzz=args.fuzz)
    ui.out.print(f"{t.branch} at {tip[:12]} in {t.path}")
    return 0


def cmd_series_export(args) -> int:
    from .. import export

    res = export.export(tree.current(), args.patches or paths.patches_dir(), force=args.force)
    for name in res.written:
        ui.out.print(f"written  {name}", markup=False)
    for name in res.removed:
        ui.out.print(f"removed  {name}", markup=False)
    return 0


def cmd_series_check(args) -> int:
    from rich.table import Table

    from .. import check

    s = series.load(args.patches or paths.patches_dir())
    problems = check.check(tree.current(), s, run_checkpatch=not args.no_checkpatch)
    if not problems:
        ui.out.print(f"{len(s.patches)} patches: all apply cleanly, checkpatch --strict clean, "
                     "messages complete")
    else:
        table = Table(title=f"series check: {len(problems)} problem(s)")
        for col in ("patch", "kind", "where", "problem"):
            table.add_column(col)
        for p in problems:
            where = f"{p.file}:{p.line}" if p.file else (f"patch line {p.line}" if p.line else "")
            table.add_row(p.patch, p.kind, where, p.message)
        ui.out.print(table)
    if args.full:
        return _series_check_full(args) or (1 if problems else 0)
    return 1 if problems else 0


def _series_check_full(args) -> int:
    from rich.table import Table

    from .. import fullcheck

    rep = fullcheck.full_check(tree.current(), patches_dir=args.patches or paths.patches_dir(),
                               mail_dir=args.mail, use_cache=not args.no_cache, jobs=args.jobs)
    colour = {"pass": "green", "fail": "red", "skip": "dim"}
    for p in rep.patches:
        table = Table(title=f"{p.index}/{len(rep.patches)} {p.name} ({p.commit[:12]}, {p.seconds:.0f} s)",
                      title_justify="left")
        for col in ("check", "result", "first message"):
            table.add_column(col)
        for c in p.checks:
            table.add_row(c.check, f"[{colour[c.result]}]{c.result}[/]", escape(c.message))
        ui.out.print(table)
        for n in p.notes:
            ui.out.print(f"  note: {n}", markup=False)
    ui.note(f"check.json: {rep.json}  ({rep.seconds:.0f} s)")
    if rep.failed:
        ui.err.print("[bold red]ktest:[/] series check --full failed: "
                     + "; ".join(f"{escape(p.name)} ({', '.join(p.failed)})" for p in rep.failed), highlight=False)
        return 1
    ui.out.print(f"{len(rep.patches)} patches: no new W=1, sparse, clang or i386 warnings, kernel-doc clean, "
                 "sign-offs, Fixes: tags and Cc complete")
    return 0


def cmd_series_trailers(args) -> int:
    from rich.table import Table

    from .. import trailers

    t = tree.current()
    plan = trailers.plan(t, args.mbox, sloppy=args.sloppy)
    con = ui.err if args.json else ui.out       # stdout carries only the JSON then
    table = Table(title=f"series trailers: {plan.count} to add from {plan.messages} message(s)")
    for col in ("#", "commit", "trailer", "from", "matched by"):
        table.add_column(col)
    for i, a in enumerate(plan.additions, 1):
        for tr in a.add:
            table.add_row(str(i), f"{a.commit[:12]} {a.subject}", f"[green]+[/] {escape(tr.line)}",
                          escape(tr.sender), tr.how)
        for tr in a.present:
            table.add_row(str(i), f"{a.commit[:12]} {a.subject}", f"[dim]= {escape(tr.line)} (already there)[/]",
                          escape(tr.sender), tr.how)
    if plan.count or any(a.present for a in plan.additions):
        con.print(table)
    for s in plan.unmatched:
        con.print(f"no patch: {s.subject} from {s.sender} <{s.msgid}>: {s.reason}"
                     + (f" (carries {'; '.join(s.trailers)})" if s.trailers else ""), markup=False)
    for s in plan.not_taken:
        con.print(f"not added: {'; '.join(s.trailers)} in {s.subject} from {s.sender}: {s.reason}", markup=False)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    if args.dry_run or not plan.count:
        ui.note(f"{'dry run: ' if args.dry_run else ''}{t.branch} unchanged at {plan.tip[:12]}")
        return 0
    tip = trailers.apply(t, plan)
    ui.note(f"{plan.count} trailer(s) added: {t.branch} at {tip[:12]} (was {plan.tip[:12]}); "
            "`ktest series export` writes them into patches/")
    return 0


def cmd_series_status(args) -> int:
    from rich.table import Table

    from .. import status

    t = tree.current()
    st = status.status(t, args.patches or paths.patches_dir())
    ui.out.print(f"base {st.base_ref} ({st.base[:12]}); branch {st.branch} "
                 f"{'at ' + st.tip[:12] if st.tip else 'does not exist'}"
                 f"{'' if st.checked_out else ' (not checked out)'}")
    table = Table()
    for col in ("#", "patch", "subject", "in branch", "same as file"):
        table.add_column(col)
    for i, p in enumerate(st.patches, 1):
        table.add_row(str(i), p.name or "(not exported)", p.subject, "yes" if p.in_branch else "no",
                      "yes" if p.same else "[red]no[/]")
    ui.out.print(table)
    if st.differs:
        ui.out.print(f"{len(st.differs)} patch(es) differ between {st.branch} and patches/: "
                     "`ktest series export` writes the branch out, `ktest series apply --force` reads patches/ in")
    return 0


def cmd_series_build_each(args) -> int:
    from rich.table import Table

    from .. import buildeach

    t = tree.current()
    if not args.full:
        # The modules build against the kernel that boots them: on 6.12 a
        # kernel ktest builds of the tree, built here the first time.
        job.ensure_guest_kernel(t)
    results = buildeach.build_each(t, keep_going=not args.stop, full=args.full)
    table = Table(title="series build-each")
    for col in ("#", "commit", "subject", "result", "new warnings"):
        table.add_column(col)
    for i, r in enumerate(results, 1):
        res = "built" if r.result == "built" else f"[red]failed[/]: {r.error}"
        table.add_row(str(i), r.commit[:12], r.subject, res, "\n".join(r.new_warnings) or "0")
    ui.out.print(table)
    return 1 if any(r.result != "built" for r in results) else 0


def cmd_series_rebase(args) -> int:
    from .. import rebase

    t = tree.current()
    if args.abort:
        rebase.abort(t)
        return 0
    if args.cont:
        tip = rebase.proceed(t, build=args.build)
    elif args.onto:
        tip = rebase.start(t, args.onto, fuzz=args.fuzz, build=args.build)
    else:
        raise KtestError("say where to: --onto REF, --continue or --abort")
    ui.out.print(f"{t.branch} at {tip[:12]}")
    return 0


def cmd_series_list(args) -> int:
    s = series.load(args.patches or paths.patches_dir())
    for p in s.patches:
        ui.out.print(f"{p.name}  -p{p.strip}{' -R' if p.reverse else ''}  {p.subject}", markup=False)
    return 0


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
    p = sub.add_parser("series", help="the patch series in patches/")
    ssub = p.add_subparsers(dest="series_command", required=True)
    pp = ssub.add_parser("apply", help="make the series branch: base + one commit per patch")
    pp.add_argument("--patches", type=Path, help="patch directory (default: the repo's patches/)")
    pp.add_argument("--force", action="store_true", help="re-apply even if already applied")
    pp.add_argument("--fuzz", action="store_true", help="accept hunks that apply with offset or fuzz")
    pp.set_defaults(func=cmd_series_apply)
    pp = ssub.add_parser("check", help="every patch: applies without offset, checkpatch --strict, message")
    pp.add_argument("--patches", type=Path)
    pp.add_argument("--no-checkpatch", action="store_true", help="skip checkpatch.pl")
    pp.add_argument("--full", action="store_true",
                    help="also, per commit of the series branch: new W=1/sparse/clang/i386 warnings in the "
                         "objects it touches, kernel-doc, Signed-off-by, Fixes:, Cc vs get_maintainer")
    pp.add_argument("--mail", type=Path, metavar="DIR",
                    help="with --full: the patch mails whose To/Cc to check (default: the last `ktest mail`)")
    pp.add_argument("--no-cache", action="store_true",
                    help="with --full: compile every object again instead of reusing earlier results")
    pp.add_argument("-j", "--jobs", type=positive(int), help="with --full: make -j (default: the number of cores)")
    pp.set_defaults(func=cmd_series_check)
    pp = ssub.add_parser("status", help="base, branch, and which patches differ from patches/")
    pp.add_argument("--patches", type=Path)
    pp.set_defaults(func=cmd_series_status)
    pp = ssub.add_parser("build-each", help="build after every patch (bisectability)")
    pp.add_argument("--stop", action="store_true", help="stop at the first patch that fails")
    pp.add_argument("--full", action="store_true",
                    help="also build the whole kernel (ktest's minimal guest config) after every patch")
    pp.set_defaults(func=cmd_series_build_each)
    pp = ssub.add_parser("rebase", help="replay the series onto another base: offsets taken, three-way merges, "
                                        "conflicts left to resolve")
    g = pp.add_mutually_exclusive_group()
    g.add_argument("--onto", help="a ref in the tree, or another prepared tree's directory")
    g.add_argument("--continue", dest="cont", action="store_true",
                   help="after resolving a stopped patch: commits what is staged as that patch")
    g.add_argument("--abort", action="store_true", help="drop the rebase; the old branch is untouched")
    pp.add_argument("--fuzz", action="store_true", help="also accept hunks that apply with fuzz (offsets always are)")
    pp.add_argument("--build", action="store_true",
                    help="with --onto: build what each patch touches once it is committed, as build-each does, "
                         "and stop at the first that does not build (remembered across --continue)")
    pp.set_defaults(func=cmd_series_rebase)
    pp = ssub.add_parser("export", help="write the series branch back to patches/ (byte-stable)")
    pp.add_argument("--patches", type=Path, help="patch directory (default: the series project's patches/)")
    pp.add_argument("--force", action="store_true",
                    help="export even after an apply that stopped half way, during a rebase, or into another "
                         "series directory than the branch was applied from")
    pp.set_defaults(func=cmd_series_export)
    pp = ssub.add_parser("list", help="list the patches in series order")
    pp.add_argument("--patches", type=Path)
    pp.set_defaults(func=cmd_series_list)
    pp = ssub.add_parser("trailers", help="add Reviewed-by/Acked-by/Tested-by/Reported-by from replies "
                                          "(an mbox or maildir) to the series branch")
    pp.add_argument("mbox", type=Path, nargs="+", metavar="MBOX|MAILDIR", help="replies: an mbox file or a maildir")
    pp.add_argument("--dry-run", action="store_true", help="show what would be added; change nothing")
    pp.add_argument("--sloppy", action="store_true",
                    help="also take trailers that name someone other than the reply's sender")
    pp.add_argument("--json", action="store_true", help="also print the plan as JSON on stdout")
    pp.set_defaults(func=cmd_series_trailers)
