"""ktest series ...: the patch series."""
from __future__ import annotations

from pathlib import Path

from .. import job, paths, series, tree, ui
from ..errors import KtestError


def cmd_series_apply(args) -> int:
    t = tree.current()
    tip = job.apply_series(t, args.patches, force=args.force, fuzz=args.fuzz)
    ui.out.print(f"{t.branch} at {tip[:12]} in {t.path}")
    return 0


def cmd_series_export(args) -> int:
    from .. import export

    res = export.export(tree.current(), args.patches or paths.patches_dir())
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
        return 0
    table = Table(title=f"series check: {len(problems)} problem(s)")
    for col in ("patch", "kind", "where", "problem"):
        table.add_column(col)
    for p in problems:
        where = f"{p.file}:{p.line}" if p.file else (f"patch line {p.line}" if p.line else "")
        table.add_row(p.patch, p.kind, where, p.message)
    ui.out.print(table)
    return 1


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

    results = buildeach.build_each(tree.current(), keep_going=not args.stop, full=args.full)
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
        tip = rebase.proceed(t)
    elif args.onto:
        tip = rebase.start(t, args.onto, fuzz=args.fuzz)
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
    pp.set_defaults(func=cmd_series_check)
    pp = ssub.add_parser("status", help="base, branch, and which patches differ from patches/")
    pp.add_argument("--patches", type=Path)
    pp.set_defaults(func=cmd_series_status)
    pp = ssub.add_parser("build-each", help="build after every patch (bisectability)")
    pp.add_argument("--stop", action="store_true", help="stop at the first patch that fails")
    pp.add_argument("--full", action="store_true",
                    help="also build the whole kernel (ktest's minimal guest config) after every patch")
    pp.set_defaults(func=cmd_series_build_each)
    pp = ssub.add_parser("rebase", help="replay the series onto another base")
    g = pp.add_mutually_exclusive_group()
    g.add_argument("--onto", help="a ref in the tree, or another prepared tree's directory")
    g.add_argument("--continue", dest="cont", action="store_true", help="after fixing a stopped patch")
    g.add_argument("--abort", action="store_true", help="drop the rebase; the old branch is untouched")
    pp.add_argument("--fuzz", action="store_true", help="accept hunks that apply with offset or fuzz")
    pp.set_defaults(func=cmd_series_rebase)
    pp = ssub.add_parser("export", help="write the series branch back to patches/ (byte-stable)")
    pp.add_argument("--patches", type=Path, help="patch directory (default: the repo's patches/)")
    pp.set_defaults(func=cmd_series_export)
    pp = ssub.add_parser("list", help="list the patches in series order")
    pp.add_argument("--patches", type=Path)
    pp.set_defaults(func=cmd_series_list)
