"""The ``ktest`` command: parse arguments, call the stage modules, print.

One small ``cmd_*`` function per command, as in b4; the work is in the
stage modules.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import bench, build, job, paths, series, tree, ui
from .errors import KtestError


def cmd_tree_prepare(args) -> int:
    t = job.prepare_tree(args.tree, args.base)
    ui.out.print(f"{t.path}  base {t.base_ref} ({t.base[:12]}), Linux {t.version}")
    return 0


def cmd_tree_path(args) -> int:
    print(tree.current().path)
    return 0


def cmd_series_apply(args) -> int:
    t = tree.current()
    tip = job.apply_series(t, args.patches, force=args.force)
    ui.out.print(f"{t.branch} at {tip[:12]} in {t.path}")
    return 0


def cmd_series_export(args) -> int:
    from . import export

    res = export.export(tree.current(), args.patches or paths.patches_dir())
    for name in res.written:
        ui.out.print(f"written  {name}", markup=False)
    for name in res.removed:
        ui.out.print(f"removed  {name}", markup=False)
    return 0


def cmd_series_list(args) -> int:
    s = series.load(args.patches or paths.patches_dir())
    for p in s.patches:
        ui.out.print(f"{p.name}  -p{p.strip}  {p.subject}", markup=False)
    return 0


def cmd_build(args) -> int:
    t = tree.current()
    if args.tools:
        res = build.build_tools(t)
    else:
        res = build.build_kmod(t, args.release)
    for a in res.artifacts:
        print(a)
    ui.note(f"log: {res.log}  metadata: {res.metadata}  warnings: {len(res.warnings)}")
    return 0


def _guest_spec(args, cmd):
    from .qemu import guest

    patched = {}
    if args.modules == "kmod":
        patched = job.patched_modules(build.build_kmod(tree.current()))
    return guest.GuestSpec(
        cmd=cmd, kernel=args.kernel, patched=patched,
        modules=list(guest.DEFAULT_MODULES) if args.modules != "none" else [],
        accel=args.accel, smp=args.smp, mem=args.mem, net=args.net == "user",
        timeout=args.timeout, allow_warn=args.allow_warn, verbose=args.verbose, echo_output=True)


def cmd_boot(args) -> int:
    from .qemu import boot as qboot
    from .qemu import guest

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise KtestError("no command to run in the guest", hint="Usage: ktest boot [options] -- CMD [ARGS]")
    spec = _guest_spec(args, cmd)
    if args.dry_run:
        if spec.accel is None:
            spec.accel = "tcg"
            ui.note("(dry run: accelerator not probed, showing TCG)")
        bspec, img = guest.prepare(spec)
        print(shlex.join(qboot.qemu_argv(bspec)))
        for e in img.entries:
            print(f"  {e}")
        return 0
    res = guest.run(spec)
    ui.note(f"guest exit status {res.exit_status} after {res.seconds:.1f} s; console log {res.console_log}")
    return res.exit_status or 0


def _ringtest_spec(args) -> bench.RingtestSpec:
    return bench.RingtestSpec(variants=args.variants, runs=args.runs, run_cycles=args.run_cycles,
                              batch=args.batch, sleep=args.sleep)


def _bench_report(t, kmod, outcome, title) -> int:
    ui.out.print(job.summary_table(outcome.summary, title))
    job.note_paths(kmod, outcome)
    failed = sum(s.failed for s in outcome.summary)
    if failed:
        ui.err.print(f"[red]{failed} run(s) failed[/]; their output is in {outcome.results}")
        return 1
    return 0


def cmd_bench(args) -> int:
    t = tree.current()
    kmod = build.build_kmod(t)
    tools = build.build_tools(t)
    outcome = job.ringtest(t, kmod, tools, _ringtest_spec(args), out=args.out, accel=args.accel,
                           verbose=args.verbose)
    return _bench_report(t, kmod, outcome, f"ringtest in a QEMU guest ({t.branch})")


def cmd_run(args) -> int:
    """The whole path on the embedded default: tree, series, build, boot, ringtest."""
    t = job.prepare_tree(args.tree, args.base)
    job.apply_series(t, args.patches)
    kmod = build.build_kmod(t)
    tools = build.build_tools(t)
    outcome = job.ringtest(t, kmod, tools, _ringtest_spec(args), out=args.out, accel=args.accel,
                           verbose=args.verbose)
    code = _bench_report(t, kmod, outcome, f"ringtest, Linux {t.version} + series, patched modules in QEMU")
    if args.json:
        print(json.dumps({"results": str(outcome.results)}))
    return code


def _add_ringtest_options(p) -> None:
    p.add_argument("--variants", nargs="+", default=list(build.RINGTEST_VARIANTS),
                   metavar="VARIANT", help="ringtest programs to run (default: all)")
    p.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    p.add_argument("--run-cycles", type=int, default=1_000_000,
                   help="buffers per run (default 1000000: ringtest's own 10000000 takes minutes under TCG)")
    p.add_argument("--batch", type=int, help="ringtest --batch")
    p.add_argument("--sleep", action="store_true", help="ringtest --sleep (event-driven, not busy-poll)")
    p.add_argument("--out", type=Path, help="directory for results.json")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ktest", description="Carry a virtio patch series from quilt to QEMU numbers.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tree", help="prepare the kernel tree")
    tsub = p.add_subparsers(dest="tree_command", required=True)
    pp = tsub.add_parser("prepare", help="extract Debian's linux-source (default) or use --tree")
    pp.add_argument("--tree", type=Path, help="an existing git kernel tree (never modified)")
    pp.add_argument("--base", default="HEAD", help="with --tree: the base ref (default HEAD)")
    pp.set_defaults(func=cmd_tree_prepare)
    pp = tsub.add_parser("path", help="print the prepared tree's directory")
    pp.set_defaults(func=cmd_tree_path)

    p = sub.add_parser("series", help="the patch series in patches/")
    ssub = p.add_subparsers(dest="series_command", required=True)
    pp = ssub.add_parser("apply", help="make the series branch: base + one commit per patch")
    pp.add_argument("--patches", type=Path, help="patch directory (default: the repo's patches/)")
    pp.add_argument("--force", action="store_true", help="re-apply even if already applied")
    pp.set_defaults(func=cmd_series_apply)
    pp = ssub.add_parser("export", help="write the series branch back to patches/ (byte-stable)")
    pp.add_argument("--patches", type=Path, help="patch directory (default: the repo's patches/)")
    pp.set_defaults(func=cmd_series_export)
    pp = ssub.add_parser("list", help="list the patches in series order")
    pp.add_argument("--patches", type=Path)
    pp.set_defaults(func=cmd_series_list)

    p = sub.add_parser("build", help="build the patched modules (out of tree) or the guest tools")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--kmod", action="store_true", help="the modules in kmod/ (default)")
    g.add_argument("--tools", action="store_true", help="tools/virtio/ringtest and guest helpers")
    p.add_argument("--release", help="kernel release to build against (default: Debian's image)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("boot", help="boot a kernel in QEMU and run CMD in it")
    p.add_argument("--kernel", default="debian", help="debian (default) or a bzImage path")
    p.add_argument("--modules", choices=["kmod", "stock", "none"], default="kmod",
                   help="patched modules from kmod/ (default), the kernel's own, or none")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--mem", default="1G")
    p.add_argument("--net", choices=["user", "none"], default="user")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before the guest is killed")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("--allow-warn", action="store_true", help="a kernel WARNING does not fail the boot")
    p.add_argument("--dry-run", action="store_true", help="print the QEMU command and initramfs contents")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("bench", help="run benchmarks in the guest")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    pp = bsub.add_parser("ringtest", help="tools/virtio/ringtest variants, timed, N runs each")
    _add_ringtest_options(pp)
    pp.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="the whole path: tree, series, modules, QEMU, ringtest table")
    p.add_argument("--tree", type=Path, help="an existing git kernel tree instead of Debian's source")
    p.add_argument("--base", default="HEAD")
    p.add_argument("--patches", type=Path)
    p.add_argument("--json", action="store_true", help="also print the results path as JSON")
    _add_ringtest_options(p)
    p.set_defaults(func=cmd_run)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KtestError as e:
        ui.err.print(f"[bold red]ktest:[/] {e.message}", highlight=False)
        if e.hint:
            ui.err.print(e.hint, highlight=False, markup=False)
        if e.log:
            ui.err.print(f"log: {e.log}", highlight=False, markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        ui.err.print("ktest: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
