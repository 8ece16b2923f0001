#!/usr/bin/env python3
"""TX completion cost of virtio_net: interrupts, kicks and drops per packet, and packets/s.

    python3 bench/tx_completion.py [--runs 3] [--count 20000] [--label NAME]

Boots the guest once per run and mode with the modules of the prepared tree
(whatever `ktest tree path` holds, uncommitted edits included), switches TX
NAPI with `ethtool -C eth0 tx-frames 1|0` (napi / orphan mode), sends COUNT
64-byte UDP datagrams to the user-net gateway with tools_virtio/ktest-udpflood
(sendmmsg, 32 per call), and reads /proc/interrupts (virtio0-output.0),
`ethtool -S` (tx kicks) and `tc -s qdisc` (drops) around it.  Both
event_idx=on (QEMU's default) and event_idx=off NICs.  Results go to
bench/results/tx_completion-LABEL.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = r"""
ip link set eth0 down; ethtool -C eth0 tx-frames {frames} || exit 9; ip link set eth0 up; sleep 0.3
irq() {{ grep virtio0-output /proc/interrupts | tr -s ' ' | cut -d' ' -f3; }}
kicks() {{ ethtool -S eth0 | sed -n -E 's/.*(tx_queue_0_|tx0_)kicks: //p'; }}
drops() {{ tc -s qdisc show dev eth0 | sed -n 's/.*dropped \([0-9]*\),.*/\1/p' | head -1; }}
i0=$(irq); k0=$(kicks); d0=$(drops); p0=$(cat /sys/class/net/eth0/statistics/tx_packets)
ktest-udpflood {gw} 9 {count} 64 32
i1=$(irq); k1=$(kicks); d1=$(drops); p1=$(cat /sys/class/net/eth0/statistics/tx_packets)
echo "RESULT irqs=$((i1-i0)) kicks=$((k1-k0)) qdisc_drops=$((d1-d0)) tx_packets=$((p1-p0))"
"""


def one(flood: Path, mode: str, event_idx: str, count: int) -> dict:
    script = SCRIPT.format(frames=1 if mode == "napi" else 0, gw="10.0.2.2", count=count)
    argv = [sys.executable, "-m", "ktest", "boot", "--host-program", "ethtool", "--host-program", "tc",
            "--file", str(flood), "--nic-opt", f"event_idx={event_idx}", "--", "sh", "-c", script]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"guest run failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    words = {}
    for line in r.stdout.splitlines():
        if line.startswith(("RESULT", "KTEST-UDPFLOOD")):
            words.update(w.split("=", 1) for w in line.split()[1:])
    return {k: float(v) for k, v in words.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--label", default="tree")
    args = ap.parse_args()
    tools = subprocess.run([sys.executable, "-m", "ktest", "build", "--tools"], capture_output=True, text=True,
                           timeout=1800, check=True).stdout.split()
    flood = next(Path(p) for p in tools if p.endswith("/ktest-udpflood"))
    rows = []
    for event_idx in ("on", "off"):
        for mode in ("napi", "orphan"):
            runs = []
            for i in range(args.runs):
                r = one(flood, mode, event_idx, args.count)
                runs.append(r)
                print(f"event_idx={event_idx} {mode:6s} run {i + 1}: " +
                      " ".join(f"{k}={v:g}" for k, v in sorted(r.items())), flush=True)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            sent = med.get("sent", args.count)
            rows.append({"event_idx": event_idx, "mode": mode, "runs": len(runs),
                         "irqs_per_packet": round(med["irqs"] / sent, 4),
                         "kicks_per_packet": round(med["kicks"] / sent, 4),
                         "qdisc_drops_per_packet": round(med["qdisc_drops"] / sent, 4),
                         # Sent but never seen by the driver (dropped before it, silently).
                         "lost_per_packet": round(statistics.median(max(0.0, r["sent"] - r["tx_packets"])
                                                                    for r in runs) / sent, 4),
                         "pps_median": round(med["pps"]), "raw": runs})
    for row in rows:
        print(f"event_idx={row['event_idx']:3s} {row['mode']:6s} irqs/pkt {row['irqs_per_packet']:.4f}  "
              f"kicks/pkt {row['kicks_per_packet']:.4f}  lost/pkt {row['lost_per_packet']:.4f}  "
              f"pps {row['pps_median']}")
    out = Path(__file__).parent / "results" / f"tx_completion-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"label": args.label, "count": args.count, "cpus": os.cpu_count(),
                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
