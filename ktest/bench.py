"""Benchmarks: what to run, and what the runs mean.

ringtest prints nothing on success, so each run is wrapped by ``ktest-run``
(tools_virtio/), which prints one ``KTEST-RUN key=value ...`` line with
wall, user and system time and context switches; ``name=number`` words a
program prints before it are kept as that run's counters.  Runs are
interleaved (every variant and side once, then again) so slow drifts of
the machine hit them alike.  On this kind of machine busy-poll timings are
bimodal, so every summary says whether its runs can be trusted.
"""
from __future__ import annotations

import csv
import json
import platform
import random
import re
import shlex
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .build import RINGTEST_VARIANTS
from .errors import BenchError

FORMAT = 2
RUN_PREFIX = "KTEST-RUN "

# name -> extra arguments; the first entries are what runs by default.
PROGRAM_VARIANTS: dict[str, dict[str, list[str]]] = {
    "ringtest": {v: [] for v in RINGTEST_VARIANTS},   # the tree's own list is used when known
    "virtio_test": {
        "default": [], "batch-1": ["--batch=1"], "batch-64": ["--batch=64"],
        "batch-random": ["--batch=random"], "indirect": ["--indirect"], "no-indirect": ["--no-indirect"],
        "event-idx": ["--event-idx"], "no-event-idx": ["--no-event-idx"], "reset": ["--reset"],
        # --in-order exists once the series' virtio_test patch is applied.
        "in-order": ["--in-order"], "in-order-batch-64": ["--in-order", "--batch=64"],
        "in-order-batch-random": ["--in-order", "--batch=random"],
    },
    "vringh_test": {
        "default": [], "parallel": ["--parallel"], "indirect": ["--indirect"],
        "eventidx": ["--eventidx"], "virtio-1": ["--virtio-1"],
    },
    # virtio_net TX through ktest-netbench: TX NAPI on, or off (skbs orphaned at xmit).
    "net": {"napi": [], "orphan": []},
    # The series' userspace driver of /dev/vhost-net over tap (patch 16).
    "vhost_net_test": {
        "base": [], "sendmsg": ["--sndbuf", "1048576"],
        "block-32": ["--tx-hdr-block", "32"], "block-32-sendmsg": ["--tx-hdr-block", "32", "--sndbuf", "1048576"],
        "rx-skip-2": ["--rx-skip", "2"], "tx-1500": ["--size", "1500"],
        "block-32-1500": ["--tx-hdr-block", "32", "--size", "1500"],
    },
}
NET_DEVICES = ("qemu", "vdpa")
NET_SENDERS = ("udp", "pktgen")
DEFAULT_VARIANTS = {
    "ringtest": RINGTEST_VARIANTS,
    "virtio_test": ["batch-64"],
    "vringh_test": ["default", "parallel"],
    "net": ["napi", "orphan"],
    "vhost_net_test": ["base", "block-32"],
}


@dataclass
class BenchSpec:
    program: str
    variants: list[str]
    runs: int = 3
    params: list[str] = field(default_factory=list)   # appended to every run's arguments
    run_cycles: int = 1_000_000                       # ringtest only
    batch: int | None = None                          # ringtest only
    sleep: bool = False                               # ringtest only
    host_cpu: int = 0
    guest_cpu: int = 1
    device: str = "qemu"                              # net only: qemu (eth0) or vdpa (the simulator)
    count: int = 20000                                # net only: datagrams per run
    size: int = 64                                    # net only: bytes per datagram
    nic_opts: list[str] = field(default_factory=list)  # net only: QEMU virtio-net-pci properties
    sender: str = "udp"                               # net only: udp (sendmmsg) or pktgen (bursts, xmit_more)
    burst: int = 32                                   # net only: pktgen burst

    def validate(self, known: list[str] | None = None) -> None:
        """``known``: ringtest's variants as the tree builds them."""
        if self.program not in PROGRAM_VARIANTS:
            raise BenchError(f"unknown benchmark '{self.program}' (known: {', '.join(PROGRAM_VARIANTS)})")
        known = known if known is not None else list(PROGRAM_VARIANTS[self.program])
        unknown = [v for v in self.variants if v not in known]
        if unknown:
            raise BenchError(f"unknown {self.program} variant(s): {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        if self.runs < 1:
            raise BenchError("--runs must be at least 1")
        if self.program == "net":
            if self.device not in NET_DEVICES:
                raise BenchError(f"unknown device '{self.device}' (known: {', '.join(NET_DEVICES)})")
            if self.count < 1 or not 0 <= self.size <= 65507:
                raise BenchError("--count must be at least 1 and --size 0..65507")
            if self.sender not in NET_SENDERS:
                raise BenchError(f"unknown sender '{self.sender}' (known: {', '.join(NET_SENDERS)})")
            if not 1 <= self.burst <= 256:
                raise BenchError("--burst must be 1..256")

    def argv(self, variant: str, bindir: str) -> list[str]:
        if self.program == "ringtest":
            a = [f"{bindir}/{variant}", "--host-affinity", str(self.host_cpu),
                 "--guest-affinity", str(self.guest_cpu), "--run-cycles", str(self.run_cycles)]
            if self.batch:
                a += ["--batch", str(self.batch)]
            if self.sleep:
                a.append("--sleep")
            return a + self.params
        if self.program == "net":
            return [f"{bindir}/ktest-netbench", variant, self.device, str(self.count), str(self.size),
                    self.sender, str(self.burst)]
        if self.program == "vhost_net_test":
            return [f"{bindir}/vhost_net_test", "-n", str(self.count), *PROGRAM_VARIANTS[self.program][variant],
                    *self.params]
        return [f"{bindir}/{self.program}", *PROGRAM_VARIANTS[self.program][variant], *self.params]


@dataclass
class RunRecord:
    bench: str
    variant: str
    run: int
    status: int
    wall_s: float
    user_s: float
    sys_s: float
    nvcsw: int
    nivcsw: int
    maxrss_kb: int
    side: str = "HEAD"
    counters: dict[str, float] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)


@dataclass
class Summary:
    variant: str
    side: str
    runs: int
    failed: int
    median: float | None
    min: float | None
    max: float | None
    iqr: float | None
    trust: str                    # ok | spread | bimodal | failed
    counters: dict[str, float] = field(default_factory=dict)   # medians


@dataclass
class Comparison:
    variant: str
    a: str
    b: str
    ratio: float | None           # median(a) / median(b): < 1 means a is faster
    ci_low: float | None
    ci_high: float | None
    trust: str


def run_commands(spec: BenchSpec, sides: dict[str, str], runner: str) -> list[tuple[str, list[str]]]:
    """Every run of every variant and side, interleaved, each wrapped by ktest-run.

    ``sides`` maps a side's label (HEAD, or the ref compared with) to the
    directory holding its programs.
    """
    cmds = []
    for i in range(1, spec.runs + 1):
        for v in spec.variants:
            for label, bindir in sides.items():
                cmds.append((label, [runner, "-t", f"bench={spec.program}", "-t", f"variant={v}",
                                     "-t", f"side={label}", "-t", f"run={i}", "--", *spec.argv(v, bindir)]))
    return cmds


def guest_script(spec: BenchSpec, sides: dict[str, str], swap_modules: dict[str, list[str]] | None = None) -> str:
    """The shell script the guest runs.

    ``sides``: label -> directory under /ktest holding bin/ (and modules/).
    ``swap_modules``: label -> the .ko files to load, in order, before each of
    that side's runs (virtio_test's vhost and vhost_test), so two builds are
    compared in one guest.
    """
    lines = ["#!/bin/sh", "# generated by ktest bench", "cd /ktest", "rc=0"]
    bindirs = {label: f"/ktest/{d}/bin" for label, d in sides.items()}
    for label, cmd in run_commands(spec, bindirs, "/ktest/bin/ktest-run"):
        if swap_modules:
            mods = swap_modules[label]
            rm = " ".join(reversed([m.rsplit("/", 1)[-1].removesuffix(".ko") for m in mods]))
            ins = " && ".join(f"insmod {m}" for m in mods)
            lines.append(f"rmmod {rm} 2>/dev/null; {{ {ins}; }} || rc=1")
        lines.append(f"{shlex.join(cmd)} || rc=1")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def parse_run_line(line: str) -> dict[str, str]:
    if not line.startswith(RUN_PREFIX):
        raise BenchError(f"not a ktest-run line: {line!r}")
    fields = {}
    for word in line[len(RUN_PREFIX):].split():
        if "=" not in word:
            raise BenchError(f"malformed field {word!r} in: {line!r}")
        k, v = word.split("=", 1)
        fields[k] = v
    return fields


def parse_output(lines: list[str]) -> list[RunRecord]:
    """Records from the command's output.

    Lines a program printed before its KTEST-RUN line belong to that run;
    ``name=number`` words among them are kept as counters.
    """
    records: list[RunRecord] = []
    pending: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line.startswith(RUN_PREFIX):
            pending.append(raw)
            continue
        f = parse_run_line(line)
        try:
            rec = RunRecord(
                bench=f.get("bench", ""), variant=f["variant"], run=int(f.get("run", 0)),
                status=int(f["status"]), wall_s=int(f["wall_ns"]) / 1e9,
                user_s=int(f["utime_us"]) / 1e6, sys_s=int(f["stime_us"]) / 1e6,
                nvcsw=int(f["nvcsw"]), nivcsw=int(f["nivcsw"]), maxrss_kb=int(f["maxrss_kb"]),
                side=f.get("side", "HEAD"),
            )
        except (KeyError, ValueError) as e:
            raise BenchError(f"incomplete ktest-run line ({e}): {line!r}") from e
        rec.output = [p for p in pending if p.strip()]
        rec.counters = _counters(rec.output)
        records.append(rec)
        pending = []
    return records


PROSE_RE = re.compile(r"^([A-Za-z][\w ]*?): (\d.*)$")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _counters(lines: list[str]) -> dict[str, float]:
    """Numbers a program printed: ``name=value`` words, and the tools/virtio
    counter lines "avail ring: 256 entries stored, 99744 stores skipped"
    (-> avail_ring.entries_stored=256, avail_ring.stores_skipped=99744) and
    "used ring entries read: 1200 for 1048576 buffers"."""
    out: dict[str, float] = {}
    for line in lines:
        line = line.strip()
        if line.startswith("["):   # a kernel message, not the program's
            continue
        m = PROSE_RE.match(line)
        if m:
            prefix = _slug(m.group(1))
            for chunk in m.group(2).split(","):
                chunk = re.sub(r"\(.*?\)", "", chunk).strip()
                c = re.match(r"^(\d+)(?:\s+(.*))?$", chunk)
                if not c:
                    continue
                label = c.group(2) or ""
                per = re.match(r"^for (\d+) (\w+)$", label)
                if per:
                    out[prefix] = float(c.group(1))
                    out[f"{prefix}.{_slug(per.group(2))}"] = float(per.group(1))
                else:
                    out[f"{prefix}.{_slug(label)}" if label else prefix] = float(c.group(1))
        for word in line.split():
            if "=" in word:
                k, v = word.split("=", 1)
                v = v.rstrip(",;%")
                try:
                    out[k] = float(int(v, 0)) if v[:2].lower() == "0x" else float(v)
                except ValueError:
                    pass
    return out


def trust(values: list[float]) -> str:
    """Can a median of these runs be believed?

    "bimodal": the sorted runs split at a gap wider than half the median
    into two groups of at least two runs each (busy-poll ringtest under TCG
    does this); "spread": (max - min) / median above 20 %.
    """
    if len(values) < 2:
        return "ok"
    v = sorted(values)
    med = statistics.median(v)
    if med <= 0:
        return "ok"
    if len(v) >= 4:
        gaps = [(v[i + 1] - v[i], i) for i in range(len(v) - 1)]
        gap, i = max(gaps)
        if gap > 0.5 * med and i + 1 >= 2 and len(v) - i - 1 >= 2:
            return "bimodal"
    if (v[-1] - v[0]) / med > 0.2:
        return "spread"
    return "ok"


def iqr(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[2] - q[0]


def summarise(records: list[RunRecord], variants: list[str] | None = None,
              sides: list[str] | None = None) -> list[Summary]:
    order = variants or sorted({r.variant for r in records})
    side_order = sides or list(dict.fromkeys(r.side for r in records))
    out = []
    for v in order:
        for side in side_order:
            rs = [r for r in records if r.variant == v and r.side == side]
            if not rs:
                continue
            ok = [r.wall_s for r in rs if r.status == 0]
            names = sorted({k for r in rs if r.status == 0 for k in r.counters})
            counters = {k: statistics.median([r.counters[k] for r in rs if r.status == 0 and k in r.counters])
                        for k in names}
            out.append(Summary(v, side, len(rs), len(rs) - len(ok),
                               statistics.median(ok) if ok else None, min(ok) if ok else None,
                               max(ok) if ok else None, iqr(ok), trust(ok) if ok else "failed", counters))
    return out


def bootstrap_ratio(a: list[float], b: list[float], *, rounds: int = 2000, seed: int = 1) -> tuple[float, float]:
    """95 % interval of median(a) / median(b) by resampling each side."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(rounds):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb > 0:
            ratios.append(ma / mb)
    ratios.sort()
    return ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))]


def compare(records_a: list[RunRecord], records_b: list[RunRecord], a: str, b: str,
            variants: list[str] | None = None) -> list[Comparison]:
    order = variants or list(dict.fromkeys([r.variant for r in records_a] + [r.variant for r in records_b]))
    out = []
    for v in order:
        xa = [r.wall_s for r in records_a if r.variant == v and r.status == 0]
        xb = [r.wall_s for r in records_b if r.variant == v and r.status == 0]
        if not xa or not xb:
            out.append(Comparison(v, a, b, None, None, None, "failed" if (xa or xb) else "missing"))
            continue
        ratio = statistics.median(xa) / statistics.median(xb)
        lo, hi = bootstrap_ratio(xa, xb)
        t = "ok"
        for vals in (xa, xb):
            if trust(vals) != "ok":
                t = trust(vals)
        out.append(Comparison(v, a, b, ratio, lo, hi, t))
    return out


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_results(out: Path, records: list[RunRecord], summary: list[Summary], inputs: dict,
                  comparisons: list[Comparison] | None = None) -> Path:
    """results.json (the record of truth), records.csv and plot.png, in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "inputs": inputs, "records": [asdict(r) for r in records],
           "summary": [asdict(s) for s in summary],
           "comparisons": [asdict(c) for c in comparisons or []]}
    path = out / "results.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    write_csv(out / "records.csv", records)
    plot(out / "plot.png", records, inputs.get("title", ""))
    return path


def write_csv(path: Path, records: list[RunRecord]) -> None:
    names = sorted({k for r in records for k in r.counters})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "variant", "side", "run", "status", "wall_s", "user_s", "sys_s",
                    "nvcsw", "nivcsw", "maxrss_kb", *names])
        for r in records:
            w.writerow([r.bench, r.variant, r.side, r.run, r.status, f"{r.wall_s:.6f}", f"{r.user_s:.6f}",
                        f"{r.sys_s:.6f}", r.nvcsw, r.nivcsw, r.maxrss_kb,
                        *[r.counters.get(k, "") for k in names]])


def plot(path: Path, records: list[RunRecord], title: str) -> None:
    """Every run as a point and each median as a bar, per variant and side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r.variant for r in records))
    sides = list(dict.fromkeys(r.side for r in records))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(variants) * len(sides)), 4.5))
    width = 0.8 / max(1, len(sides))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for si, side in enumerate(sides):
        for vi, v in enumerate(variants):
            ys = [r.wall_s for r in records if r.variant == v and r.side == side and r.status == 0]
            x = vi - 0.4 + width * (si + 0.5)
            if ys:
                ax.bar(x, statistics.median(ys), width * 0.9, color=colours[si % 4], alpha=0.35,
                       label=side if vi == 0 else None)
                jitter = [x + width * 0.3 * ((i % 5) - 2) / 2 for i in range(len(ys))]
                ax.scatter(jitter, ys, s=14, color=colours[si % 4], zorder=3)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants, rotation=20, ha="right")
    ax.set_ylabel("wall time per run (s)")
    ax.set_title(title or "ktest bench")
    if len(sides) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_results(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenchError(f"{path}: cannot read results: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BenchError(f"{path}: results format {found!r}; this ktest reads format {FORMAT} "
                         "(rerun the benchmark to get a current file)")
    return doc


def records_of(doc: dict) -> list[RunRecord]:
    return [RunRecord(**r) for r in doc["records"]]
