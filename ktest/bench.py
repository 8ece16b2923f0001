"""Benchmarks: what to run, and what the runs mean.

ringtest prints nothing on success, so each run is wrapped by ``ktest-run``
(ktest/data/tools_virtio/), which prints one ``KTEST-RUN key=value ...`` line with
wall, user and system time and context switches; ``name=number`` words a
program prints before it are kept as that run's counters.  Runs are
interleaved (every variant and side once, then again) so slow drifts of
the machine hit them alike.  On this kind of machine busy-poll timings are
bimodal, so every summary says whether its runs can be trusted.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .errors import BenchError
from .guestprogs import RINGTEST_VARIANTS
from .results import (FORMAT, Comparison, RunRecord, Summary, cpu_model, plot, read_results, records_of,
                      write_csv, write_results)
from .stats import bootstrap_ratio, compare, iqr, summarise, trust

# What stages above use through this module (results and stats live below it).
__all__ = ["FORMAT", "BenchSpec", "Comparison", "RunRecord", "Summary", "bootstrap_ratio", "compare", "cpu_model",
           "guest_script", "iqr", "parse_output", "parse_run_line", "plot", "read_results", "records_of",
           "run_commands", "summarise", "trust", "write_csv", "write_results"]
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
        # The series' in-order checks against a device that misbehaves (vringh_test plays it).
        "in-order-misbehave": ["--in-order-misbehave"],
    },
    # virtio_net TX through ktest-netbench: TX NAPI on, or off (skbs orphaned at xmit);
    # -no-in-order: the vDPA simulator's device without VIRTIO_F_IN_ORDER (the series offers it).
    "net": {"napi": [], "orphan": [], "napi-no-in-order": [], "orphan-no-in-order": []},
    # The series' userspace driver of /dev/vhost-net over tap (patch 21).
    "vhost_net_test": {
        "base": ["--raw-ring"], "sendmsg": ["--sndbuf", "1048576"],
        "block-32": ["--tx-hdr-block", "32"], "block-32-sendmsg": ["--tx-hdr-block", "32", "--sndbuf", "1048576"],
        "rx-skip-2": ["--rx-skip", "2"], "tx-1500": ["--size", "1500"],
        "block-32-1500": ["--tx-hdr-block", "32", "--size", "1500"],
        # VIRTIO_F_IN_ORDER: one used entry per TX batch and per RX packet.
        "in-order": ["--in-order"], "in-order-sendmsg": ["--in-order", "--sndbuf", "1048576"],
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
    bql_limit_min: int | None = None                  # net only: BQL limit_min of the TX queues, bytes

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
            if self.device != "vdpa" and any(v.endswith("-no-in-order") for v in self.variants):
                raise BenchError("the -no-in-order variants need --device vdpa (the simulator offers in-order)")

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
                    self.sender, str(self.burst), str(self.bql_limit_min or "-")]
        if self.program == "vhost_net_test":
            return [f"{bindir}/vhost_net_test", "-n", str(self.count), *PROGRAM_VARIANTS[self.program][variant],
                    *self.params]
        return [f"{bindir}/{self.program}", *PROGRAM_VARIANTS[self.program][variant], *self.params]


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
