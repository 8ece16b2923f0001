"""The ``ktest`` command: parse arguments, call the stage modules, print.

One small ``cmd_*`` function per command, as in b4; the work is in the
stage modules.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

from rich.markup import escape

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
    tip = job.apply_series(t, args.patches, force=args.force, fuzz=args.fuzz)
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


def cmd_series_check(args) -> int:
    from rich.table import Table

    from . import check

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

    from . import fullcheck

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

    from . import trailers

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

    from . import status

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

    from . import buildeach

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
    from . import rebase

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
        ui.out.print(f"{p.name}  -p{p.strip}  {p.subject}", markup=False)
    return 0


def _print_config(res) -> None:
    for o in res.overrides:
        ui.note(f"CONFIG_{o.symbol}: {o.old_where} asks for {o.old}, {o.new_where} for {o.new}: "
                f"the last one wins ({o.new})")
    for m in res.mismatches:
        ui.err.print(f"[red]{m.where}:[/] CONFIG_{m.symbol}: requested {m.requested}, got {m.actual}: {m.reason}")
        if m.hint:
            ui.err.print(f"    set instead: {m.hint}", markup=False)
    ui.note(f"{len(res.requests)} requested symbols, {len(res.mismatches)} not met "
            f"({'unchanged inputs, not reloaded' if res.cached else f'{res.symbols} symbols'}, {res.seconds:.1f} s)")


def _fragments(args) -> list:
    from . import kbuild

    return args.fragment if args.fragment or args.base != "tinyconfig" else list(kbuild.DEFAULT_FRAGMENTS)


def _kernel_config(args, t):
    from . import kbuild, kconfig

    return kconfig.configure(t, args.base, _fragments(args), out=args.out, cc=kbuild.default_cc())


def cmd_config(args) -> int:
    res = _kernel_config(args, tree.current())
    _print_config(res)
    print(res.config)
    return 1 if res.mismatches else 0


def _cmd_build_kernel(args, t) -> int:
    from . import kbuild, kconfig

    inputs = {}
    if args.config:
        build_dir = args.config
    elif args.dry_run:
        build_dir = args.out or kconfig.default_build_dir(args.base, _fragments(args))
    else:
        res = _kernel_config(args, t)
        if res.mismatches:
            _print_config(res)
            raise kconfig.ConfigError(f"{len(res.mismatches)} requested config value(s) not met in {res.config}",
                                      hint="Fix the fragments, or build that .config anyway with --config DIR.")
        build_dir = res.build_dir
        inputs = {"base": res.base, "fragments": [str(f) for f in res.fragments]}
    if args.dry_run:
        print(shlex.join(kbuild.make_argv(t, build_dir, "bzImage", "modules", jobs=args.jobs)))
        print(shlex.join(kbuild.make_argv(t, build_dir, "modules_install", jobs=args.jobs))
              + " INSTALL_MOD_PATH=<artifacts>/modules")
        return 0
    kb = kbuild.build_kernel(t, build_dir, jobs=args.jobs, force=args.force, inputs=inputs)
    print(kb.bzimage)
    ui.note(f"Linux {kb.release}{' (cached)' if kb.cached else f' built in {kb.seconds:.1f} s'}; "
            f"modules {kb.module_dir}; log {kb.log}; metadata {kb.metadata}; warnings {len(kb.warnings)}")
    return 0


def cmd_build(args) -> int:
    t = tree.current()
    if args.kernel:
        return _cmd_build_kernel(args, t)
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
        patched = job.patched_modules(build.build_kmod(tree.current(), guest.resolve_kernel(args.kernel)[1]))
    modules = list(guest.DEFAULT_MODULES) if args.modules != "none" else []
    for path in args.extra_module:
        name = path.name.split(".ko")[0].replace("-", "_")
        patched[name] = path
        modules.append(name)
    modules += [m.replace("-", "_") for m in args.load]
    payload = {}
    for f in args.file:
        if not f.is_file():
            raise KtestError(f"--file {f}: no such file")
        payload[f"bin/{f.name}"] = f.resolve()
    return guest.GuestSpec(payload=payload, 
        cmd=cmd, kernel=args.kernel, patched=patched, modules=modules, host_programs=args.host_program,
        accel=args.accel, smp=args.smp, mem=args.mem, net=args.net == "user", nic_opts=_nic_opts(args),
        timeout=args.timeout, allow_warn=args.allow_warn, verbose=args.verbose, echo_output=True,
        pvh=not args.bzimage)


def _nic_opts(args) -> list[str]:
    opts = getattr(args, "nic_opt", [])
    for o in opts:
        if not re.fullmatch(r"[a-z0-9_-]+=[A-Za-z0-9_.:-]+", o):
            raise KtestError(f"--nic-opt {o!r} is not PROP=VALUE (a virtio-net-pci property)",
                             hint="qemu-system-x86_64 -device virtio-net-pci,help lists them")
    if opts and args.net != "user":
        raise KtestError("--nic-opt needs the NIC: drop --net none")
    return opts


def cmd_boot(args) -> int:
    from .qemu import boot as qboot
    from .qemu import guest

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.shell:
        if cmd:
            raise KtestError("--shell takes no command")
        spec = _guest_spec(args, [])
        if args.timeout == 300.0:
            spec.timeout = 4 * 3600.0
        return guest.shell(spec)
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


def _bench_spec(args, program: str) -> bench.BenchSpec:
    params = [w for p in args.param for w in shlex.split(p)]
    return bench.BenchSpec(program=program, variants=args.variants or [],
                           runs=args.runs, params=params,
                           run_cycles=getattr(args, "run_cycles", 1_000_000),
                           batch=getattr(args, "batch", None), sleep=getattr(args, "sleep", False),
                           device=getattr(args, "device", "qemu"), count=getattr(args, "count", 20000),
                           size=getattr(args, "size", 64), nic_opts=_nic_opts(args) if program == "net" else [],
                           sender=getattr(args, "sender", "udp"), burst=getattr(args, "burst", 32))


def _bench_report(outcome, title) -> int:
    ui.out.print(job.summary_table(outcome.summary, title))
    counters = job.counters_table(outcome.summary)
    if counters is not None:
        ui.out.print(counters)
    cmp = job.comparison_table(outcome.comparisons)
    if cmp is not None:
        ui.out.print(cmp)
    job.note_paths(outcome)
    failed = sum(s.failed for s in outcome.summary)
    if failed:
        ui.err.print(f"[red]{failed} run(s) failed[/]; their output is in {outcome.results}")
        return 1
    return 0


def cmd_bench(args) -> int:
    t = tree.current()
    spec = _bench_spec(args, args.program)
    outcome = job.run_bench(t, spec, vs=args.vs, where=args.where, out=args.out, accel=args.accel,
                            timeout=args.timeout, verbose=args.verbose)
    return _bench_report(outcome, outcome.inputs["title"])


def cmd_bench_compare(args) -> int:
    docs = [bench.read_results(p) for p in (args.a, args.b)]
    recs = [bench.records_of(d) for d in docs]
    la, lb = (str(args.a), str(args.b))
    comparisons = bench.compare(recs[0], recs[1], la, lb)
    for doc, path in zip(docs, (args.a, args.b)):
        ui.out.print(job.summary_table([bench.Summary(**s) for s in doc["summary"]], str(path)))
    ui.out.print(job.comparison_table(comparisons))
    return 0


def cmd_run(args) -> int:
    """The whole path on the embedded default: tree, series, build, boot, ringtest."""
    t = job.prepare_tree(args.tree, args.base)
    job.apply_series(t, args.patches)
    spec = _bench_spec(args, "ringtest")
    outcome = job.run_bench(t, spec, vs=args.vs, out=args.out, accel=args.accel, timeout=args.timeout,
                            verbose=args.verbose)
    code = _bench_report(outcome, f"ringtest, Linux {t.version} + series, patched modules in QEMU")
    if args.json:
        print(json.dumps({"results": str(outcome.results)}))
    return code


def cmd_mail(args) -> int:
    from . import mail

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


def _add_kconfig_options(p) -> None:
    p.add_argument("--base", default="tinyconfig",
                   help="tinyconfig (default), defconfig, distro (Debian's /boot/config-*) or a .config file")
    p.add_argument("-f", "--fragment", action="append", default=[], metavar="FRAGMENT",
                   help="a config fragment, applied in order after the base (repeatable; "
                        "default with tinyconfig: ktest's guest fragments)")
    p.add_argument("--out", type=Path, metavar="BUILD_DIR", help="build directory for .config (default: in the cache)")


def _add_bench_options(p, program: str) -> None:
    if program == "ringtest":
        text = "which ringtest programs to run (default: every one the tree's Makefile builds)"
    else:
        text = (f"which to run (default: {' '.join(bench.DEFAULT_VARIANTS[program])}; "
                f"known: {', '.join(bench.PROGRAM_VARIANTS[program])})")
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help=text)
    p.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    p.add_argument("--param", action="append", default=[], metavar="ARGS",
                   help="extra arguments for every run of the program (repeatable)")
    p.add_argument("--vs", metavar="REF", help="also build REF (e.g. the base tag) and compare, runs interleaved")
    p.add_argument("--out", type=Path, help="directory for results.json, records.csv, plot.png")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("--timeout", type=float, help="seconds for the whole guest run (default: from the run count)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")
    if program == "ringtest":
        p.add_argument("--run-cycles", type=int, default=1_000_000,
                       help="buffers per run (default 1000000: ringtest's own 10000000 takes minutes under TCG)")
        p.add_argument("--batch", type=int, help="ringtest --batch")
        p.add_argument("--sleep", action="store_true", help="ringtest --sleep (event-driven, not busy-poll)")


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
    pp.add_argument("-j", "--jobs", type=int, help="with --full: make -j (default: the number of cores)")
    pp.set_defaults(func=cmd_series_check)
    pp = ssub.add_parser("trailers", help="add Reviewed-by/Acked-by/Tested-by/Reported-by from replies "
                                          "(an mbox or maildir) to the series branch")
    pp.add_argument("mbox", type=Path, nargs="+", metavar="MBOX|MAILDIR", help="replies: an mbox file or a maildir")
    pp.add_argument("--dry-run", action="store_true", help="show what would be added; change nothing")
    pp.add_argument("--sloppy", action="store_true",
                    help="also take trailers that name someone other than the reply's sender")
    pp.add_argument("--json", action="store_true", help="also print the plan as JSON on stdout")
    pp.set_defaults(func=cmd_series_trailers)
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

    p = sub.add_parser("build", help="build the patched modules (out of tree) or the guest tools")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--kmod", action="store_true", help="the modules in kmod/ (default)")
    g.add_argument("--tools", action="store_true", help="tools/virtio/ringtest and guest helpers")
    g.add_argument("--kernel", action="store_true", help="the whole kernel (make O=..., ccache, cached)")
    p.add_argument("--release", help="kernel release to build against (default: Debian's image; "
                                     "a release ktest built: its build dir)")
    p.add_argument("--config", type=Path, metavar="BUILD_DIR", help="with --kernel: build this dir's .config")
    _add_kconfig_options(p)
    p.add_argument("-j", "--jobs", type=int, help="with --kernel: make -j (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="with --kernel: run make even if the kernel is cached")
    p.add_argument("--dry-run", action="store_true", help="with --kernel: print the make commands")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("config", help="write a kernel .config from a base and fragments (kconfiglib)")
    _add_kconfig_options(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("boot", help="boot a kernel in QEMU and run CMD in it")
    p.add_argument("--kernel", default="debian",
                   help="debian (default), built (the last ktest build --kernel), or a bzImage path")
    p.add_argument("--modules", choices=["kmod", "stock", "none"], default="kmod",
                   help="patched modules from kmod/ (default), the kernel's own, or none")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--mem", default="1G")
    p.add_argument("--net", choices=["user", "none"], default="user")
    p.add_argument("--nic-opt", action="append", default=[], metavar="PROP=VALUE",
                   help="a property of QEMU's virtio-net-pci device, e.g. event_idx=off, mrg_rxbuf=off; repeatable")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before the guest is killed")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("--allow-warn", action="store_true", help="a kernel WARNING does not fail the boot")
    p.add_argument("--dry-run", action="store_true", help="print the QEMU command and initramfs contents")
    p.add_argument("--extra-module", type=Path, action="append", default=[], metavar="KO",
                   help="also load this .ko (after its dependencies); repeatable")
    p.add_argument("--load", action="append", default=[], metavar="MODULE",
                   help="also load this module by name (the patched build if kmod/ has it); repeatable")
    p.add_argument("--file", action="append", default=[], type=Path, metavar="PATH",
                   help="copy this file into the guest as /ktest/bin/NAME (a program the tools build made, a "
                        "script); repeatable")
    p.add_argument("--host-program", action="append", default=[], metavar="NAME",
                   help="copy this host program and its libraries into the guest (e.g. vdpa); repeatable")
    p.add_argument("--bzimage", action="store_true",
                   help="boot the bzImage through the BIOS (default: its unpacked vmlinux through the PVH entry, "
                        "which skips ~2 s of BIOS and decompression under TCG)")
    p.add_argument("--shell", action="store_true", help="an interactive guest shell instead of CMD")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("bench", help="run tools/virtio benchmarks, parse, summarise, compare")
    bsub = p.add_subparsers(dest="bench_command", required=True)
    for program, text in (("ringtest", "tools/virtio/ringtest variants, timed"),
                          ("virtio_test", "tools/virtio/virtio_test against the patched vhost_test.ko (guest)"),
                          ("vringh_test", "tools/virtio/vringh_test")):
        pp = bsub.add_parser(program, help=text)
        _add_bench_options(pp, program)
        pp.add_argument("--where", choices=["guest", "host"], default="guest")
        pp.set_defaults(func=cmd_bench, program=program)
    pp = bsub.add_parser("net", help="virtio_net TX: UDP flood through QEMU's NIC or the vDPA simulator (guest)")
    _add_bench_options(pp, "net")
    pp.add_argument("--device", choices=list(bench.NET_DEVICES), default="qemu",
                    help="qemu: eth0 on QEMU's virtio-net-pci; vdpa: the vDPA net simulator (loops TX to RX)")
    pp.add_argument("--count", type=int, default=20000, help="datagrams per run (default 20000)")
    pp.add_argument("--size", type=int, default=64, help="bytes per datagram (default 64)")
    pp.add_argument("--sender", choices=list(bench.NET_SENDERS), default="udp",
                    help="udp: ktest-udpflood (sendmmsg); pktgen: the pktgen module in bursts, with xmit_more "
                         "(the only 6.1 sender that batches in start_xmit)")
    pp.add_argument("--burst", type=int, default=32, help="pktgen burst (default 32)")
    pp.add_argument("--nic-opt", action="append", default=[], metavar="PROP=VALUE",
                    help="a property of QEMU's virtio-net-pci, e.g. event_idx=off; repeatable")
    pp.set_defaults(func=cmd_bench, program="net", where="guest", net="user")
    pp = bsub.add_parser("vhost_net_test", help="the series' tools/virtio/vhost_net_test against the patched "
                                               "vhost_net over tap (guest)")
    _add_bench_options(pp, "vhost_net_test")
    pp.add_argument("--count", type=int, default=20000, help="frames each way per run (default 20000)")
    pp.set_defaults(func=cmd_bench, program="vhost_net_test", where="guest")
    pp = bsub.add_parser("compare", help="compare two saved results.json without rerunning")
    pp.add_argument("a", type=Path)
    pp.add_argument("b", type=Path)
    pp.set_defaults(func=cmd_bench_compare)

    p = sub.add_parser("run", help="the whole path: tree, series, modules, QEMU, ringtest table")
    p.add_argument("--tree", type=Path, help="an existing git kernel tree instead of Debian's source")
    p.add_argument("--base", default="HEAD")
    p.add_argument("--patches", type=Path)
    p.add_argument("--json", action="store_true", help="also print the results path as JSON")
    _add_bench_options(p, "ringtest")
    p.set_defaults(func=cmd_run)

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
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KtestError as e:
        ui.err.print(f"[bold red]ktest:[/] {escape(e.message)}", highlight=False)
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
