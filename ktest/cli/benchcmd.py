"""ktest bench, ktest run: benchmarks and the main job."""
from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from .. import bench, job, tree, ui
from ..errors import KtestError
from .common import nic_opts as _nic_opts, positive, reading


def _bench_spec(args, program: str) -> bench.BenchSpec:
    params = [w for p in args.param for w in shlex.split(p)]
    return bench.BenchSpec(program=program, variants=args.variants or [],
                           runs=args.runs, params=params,
                           run_cycles=getattr(args, "run_cycles", 1_000_000),
                           batch=getattr(args, "batch", None), sleep=getattr(args, "sleep", False),
                           device=getattr(args, "device", "qemu"), count=getattr(args, "count", 20000),
                           size=getattr(args, "size", 64), nic_opts=_nic_opts(args) if program == "net" else [],
                           sender=getattr(args, "sender", "udp"), burst=getattr(args, "burst", 32),
                           bql_limit_min=getattr(args, "bql_limit_min", None))


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
    paths = [args.a] + ([args.b] if args.b else [])
    docs = [bench.read_results(p) for p in paths]
    recs = [bench.records_of(d) for d in docs]
    if args.variants:
        # Two variants of one run (or of A and B): each is a side.
        va, vb = args.variants
        rb = recs[-1]
        a = [dataclasses.replace(r, variant=f"{va} vs {vb}") for r in recs[0] if r.variant == va]
        b = [dataclasses.replace(r, variant=f"{va} vs {vb}") for r in rb if r.variant == vb]
        comparisons = bench.compare(a, b, va, vb, counter=args.counter)
    elif not args.b:
        raise KtestError("ktest bench compare needs B, or --variants A B to compare two variants of A")
    else:
        comparisons = bench.compare(recs[0], recs[1], str(args.a), str(args.b), counter=args.counter)
    for doc, path in zip(docs, paths):
        ui.out.print(job.summary_table([bench.Summary(**s) for s in doc["summary"]], str(path)))
    ui.out.print(job.comparison_table(comparisons, args.counter))
    return 0


def cmd_run(args) -> int:
    """The whole path on the embedded default: tree, series, build, boot, ringtest."""
    t = job.prepare_tree(args.tree, args.base, args.debian)
    job.apply_series(t, args.patches)
    spec = _bench_spec(args, "ringtest")
    with reading(t, "run"):
        outcome = job.run_bench(t, spec, vs=args.vs, out=args.out, accel=args.accel, timeout=args.timeout,
                                verbose=args.verbose)
    code = _bench_report(outcome, f"ringtest, Linux {t.version} + series, patched modules in QEMU")
    if args.json:
        print(json.dumps({"results": str(outcome.results)}))
    return code


def _add_bench_options(p, program: str) -> None:
    if program == "ringtest":
        text = "which ringtest programs to run (default: every one the tree's Makefile builds)"
    else:
        text = (f"which to run (default: {' '.join(bench.DEFAULT_VARIANTS[program])}; "
                f"known: {', '.join(bench.PROGRAM_VARIANTS[program])})")
    p.add_argument("--variants", nargs="+", metavar="VARIANT", help=text)
    p.add_argument("--runs", type=positive(int), default=3, help="runs per variant (default 3)")
    p.add_argument("--param", action="append", default=[], metavar="ARGS",
                   help="extra arguments for every run of the program (repeatable)")
    p.add_argument("--vs", metavar="REF", help="also build REF (e.g. the base tag) and compare, runs interleaved")
    p.add_argument("--out", type=Path, help="directory for results.json, records.csv, plot.png")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("--timeout", type=positive(float), help="seconds for the whole guest run (default: from the run count)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")
    if program == "ringtest":
        p.add_argument("--run-cycles", type=positive(int), default=1_000_000,
                       help="buffers per run (default 1000000: ringtest's own 10000000 takes minutes under TCG)")
        p.add_argument("--batch", type=positive(int), help="ringtest --batch")
        p.add_argument("--sleep", action="store_true", help="ringtest --sleep (event-driven, not busy-poll)")


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
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
    pp.add_argument("--count", type=positive(int), default=20000, help="datagrams per run (default 20000)")
    pp.add_argument("--size", type=positive(int), default=64, help="bytes per datagram (default 64)")
    pp.add_argument("--sender", choices=list(bench.NET_SENDERS), default="udp",
                    help="udp: ktest-udpflood (sendmmsg); pktgen: the pktgen module in bursts, with xmit_more "
                         "(bursts reach start_xmit with xmit_more set, which a UDP socket's do not)")
    pp.add_argument("--burst", type=positive(int), default=32, help="pktgen burst (default 32)")
    pp.add_argument("--bql-limit-min", type=positive(int), metavar="BYTES",
                    help="set BQL's limit_min of the interface's TX queues (virtio_net has BQL since 6.9; under "
                         "TCG its limit stops the queue after a few packets, which ends xmit_more batches)")
    pp.add_argument("--nic-opt", action="append", default=[], metavar="PROP=VALUE",
                    help="a property of QEMU's virtio-net-pci, e.g. event_idx=off; repeatable")
    pp.set_defaults(func=cmd_bench, program="net", where="guest", net="user")
    pp = bsub.add_parser("vhost_net_test", help="tools/virtio/vhost_net_test's raw-ring mode (the series' "
                                               "patch 21) against the patched vhost_net over tap (guest)")
    _add_bench_options(pp, "vhost_net_test")
    pp.add_argument("--count", type=positive(int), default=20000, help="frames each way per run (default 20000)")
    pp.set_defaults(func=cmd_bench, program="vhost_net_test", where="guest")
    pp = bsub.add_parser("compare", help="compare two saved results.json without rerunning")
    pp.add_argument("a", type=Path)
    pp.add_argument("b", type=Path, nargs="?", help="optional with --variants")
    pp.add_argument("--variants", nargs=2, metavar=("VA", "VB"),
                    help="compare variant VA (of A) with VB (of B, or of A too), e.g. napi napi-no-in-order")
    pp.add_argument("--counter", metavar="NAME", help="compare this counter's medians (e.g. pps), not wall times")
    pp.set_defaults(func=cmd_bench_compare)

    p = sub.add_parser("run", help="the whole path: tree, series, modules, QEMU, ringtest table")
    p.add_argument("--tree", type=Path, help="an existing git kernel tree instead of Debian's source")
    p.add_argument("--debian", metavar="X.Y", help="Debian's linux-source-X.Y (default: the series' base)")
    p.add_argument("--base", default="HEAD")
    p.add_argument("--patches", type=Path)
    p.add_argument("--json", action="store_true", help="also print the results path as JSON")
    _add_bench_options(p, "ringtest")
    p.set_defaults(func=cmd_run)
