"""ktest lava: the same boot and bench jobs on LAVA, KernelCI's lab engine (ktest/lava/)."""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from rich.markup import escape

from .. import paths, ui
from ..errors import KtestError
from .benchcmd import _bench_report, _bench_spec
from .common import positive


def cmd_lava_job(args) -> int:
    from ..lava import jobdef

    if args.lava_kind == "boot":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        lj = jobdef.write_boot(cmd, args.out, kernel=args.kernel, modules=args.modules, load=args.load,
                               name=args.name, artifacts_url=args.artifacts_url, timeout=args.timeout)
    else:
        lj = jobdef.write_bench(_bench_spec(args, args.program), args.out, artifacts_url=args.artifacts_url)
    ui.note(f"{len(lj.manifest['cases'])} test case(s): {', '.join(lj.manifest['cases'])}")
    ui.note("valid against LAVA's job schema (lava_common)" if lj.validated else
            "not checked against LAVA's job schema: lava-dispatcher is not installed (scripts/setup-host)")
    if not lj.manifest["local"]:
        ui.note(f"upload {lj.directory / 'artifacts'}/* to {args.artifacts_url}/ before submitting")
    print(lj.definition)
    return 0


def _lava_report(res, info: dict, out: Path | None) -> int:
    """Print a read-back job: ktest bench's tables for runs, else the cases; problems last."""
    from rich.table import Table

    from ..lava import results

    if res.records:
        outcome = results.outcome(res, out or res.log.parent / "results",
                                  info.get("inputs", {"title": "LAVA job", "where": "lava"}), info.get("variants"))
        _bench_report(outcome, outcome.inputs["title"])
    else:
        table = Table(title=f"LAVA test cases ({res.log})")
        for col in ("case", "result", "exit status", "measurement"):
            table.add_column(col)
        for c in res.cases:
            m = "-" if c.measurement is None else f"{c.measurement:g} {c.units or ''}".strip()
            table.add_row(c.name, c.result if c.result == "pass" else f"[red]{c.result}[/]",
                          "-" if c.status is None else str(c.status), m)
        ui.out.print(table)
        ui.note(f"job log: {res.log}")
    problems = res.problems()
    for p in problems:
        ui.err.print(f"[red]failed:[/] {escape(p)}", highlight=False)
    return 1 if problems else 0


def cmd_lava_run(args) -> int:
    from ..lava import local, results

    info = local.manifest(args.dir.resolve())
    lr = local.run_local(args.dir, accel=args.accel)
    res = results.parse(lr.log, expected=info["cases"], patched=info.get("patched", []))
    if lr.returncode != 0 and not res.problems():
        ui.err.print(f"[red]lava-run exited {lr.returncode}[/]; log: {lr.log}")
        return 1
    if "inputs" in info:
        info["inputs"].update(accel=lr.accel, lava_run_s=round(lr.seconds, 1))
    return _lava_report(res, info, args.out or lr.directory / "results")


def cmd_lava_submit(args) -> int:
    from ..lava import submit

    if args.dry_run:
        job = submit.check_submittable(args.dir.resolve())
        print(shlex.join(submit.submit_argv(job, submit.identity(args.server))))
        return 0
    for url in submit.submit(args.dir, args.server):
        print(url)
    ui.note("results when it has run: ktest lava results JOB_ID --server " + args.server)
    return 0


def cmd_lava_results(args) -> int:
    from ..lava import results, submit

    src = Path(args.job)
    out = args.out
    if not src.is_file():
        if not args.server:
            raise KtestError(f"{args.job}: no such log file; for a lab's job id say --server URL|IDENTITY")
        src = submit.fetch_log(args.job, args.server, paths.results() / f"lava-{args.job}" / "lava.log")
        out = out or src.parent
    info = {}
    if args.job_dir:
        from ..lava import local

        info = local.manifest(args.job_dir.resolve())
    res = results.parse(src, expected=info.get("cases"), patched=info.get("patched"))
    return _lava_report(res, info, out or paths.results() / f"lava-{src.stem}-{time.strftime('%Y%m%d-%H%M%S')}")


def add(sub) -> None:
    """Add ``ktest lava`` to the top-level subparsers."""
    p = sub.add_parser("lava", help="ktest's boot and bench jobs on LAVA: write, run locally, submit, read back")
    lsub = p.add_subparsers(dest="lava_command", required=True)
    pj = lsub.add_parser("job", help="write a LAVA v2 job definition and its artifacts into DIR")
    jsub = pj.add_subparsers(dest="lava_kind", required=True)
    for kind in ("boot", "bench"):
        pp = jsub.add_parser(kind, help="ktest boot -- CMD as a job" if kind == "boot"
                             else "ktest bench PROGRAM as a job: one lava-test-case per run")
        if kind == "bench":
            pp.add_argument("program", choices=["ringtest", "virtio_test", "vringh_test"])
            pp.add_argument("--variants", nargs="+", metavar="VARIANT")
            pp.add_argument("--runs", type=positive(int), default=3, help="runs per variant (default 3)")
            pp.add_argument("--param", action="append", default=[], metavar="ARGS",
                            help="extra arguments for every run (repeatable)")
            pp.add_argument("--run-cycles", type=positive(int), default=1_000_000, help="ringtest: buffers per run")
            pp.add_argument("--batch", type=positive(int), help="ringtest --batch")
            pp.add_argument("--sleep", action="store_true", help="ringtest --sleep")
        else:
            pp.add_argument("--kernel", default="auto",
                            help="auto (default: as ktest boot), debian, built, or a bzImage path")
            pp.add_argument("--modules", choices=["kmod", "stock", "none"], default="kmod")
            pp.add_argument("--load", action="append", default=[], metavar="MODULE",
                            help="also load this module (the patched build if kmod/ has it); repeatable")
            pp.add_argument("--name", help="the command's test case name (default: the program's name)")
            pp.add_argument("--timeout", type=positive(float), default=300.0, help="seconds for the command")
            pp.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
        pp.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="where job.yaml, ktest-job.json and artifacts/ go")
        pp.add_argument("--artifacts-url", metavar="BASE",
                        help="deploy from BASE/bzImage and BASE/initramfs.cpio (a lab; upload DIR/artifacts "
                             "there) instead of file:// URLs (lava-run here)")
        pp.set_defaults(func=cmd_lava_job)
    pp = lsub.add_parser("run", help="run a written job here with lava-run (root) and print its results")
    pp.add_argument("dir", type=Path, metavar="DIR")
    pp.add_argument("--accel", choices=["kvm", "tcg"], help="the qemu device's accelerator (default: probed)")
    pp.add_argument("--out", type=Path, help="where results.json goes (default: DIR/runs/ID/results)")
    pp.set_defaults(func=cmd_lava_run)
    pp = lsub.add_parser("submit", help="submit a written job to a LAVA lab with lavacli")
    pp.add_argument("dir", type=Path, metavar="DIR")
    pp.add_argument("--server", required=True, metavar="URL|IDENTITY",
                    help="the lab: a lavacli identity's name, or its URL (the identity is found by host)")
    pp.add_argument("--dry-run", action="store_true", help="print the lavacli command instead of running it")
    pp.set_defaults(func=cmd_lava_submit)
    pp = lsub.add_parser("results", help="a job's results as ktest run records (for ktest bench compare)")
    pp.add_argument("job", metavar="JOB_ID|LOG", help="a lab's job id (with --server) or a job log file")
    pp.add_argument("--server", metavar="URL|IDENTITY", help="the lab, for a job id")
    pp.add_argument("--job-dir", type=Path, metavar="DIR", help="the job's DIR: its cases and modules are checked")
    pp.add_argument("--out", type=Path, help="where results.json goes")
    pp.set_defaults(func=cmd_lava_results)
