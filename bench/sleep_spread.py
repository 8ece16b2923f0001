#!/usr/bin/env python3
"""How far apart are the medians of repeated ringtest --sleep benchmarks?

    python3 bench/sleep_spread.py [--repeats 10] [--runs 3] [--out bench/results/sleep_spread.json]

Runs ``ktest bench ringtest --sleep`` ``--repeats`` times (each a fresh
guest with ``--runs`` runs per variant) and reports, per variant, the spread
of the medians: min, max, and (max - min) / median.  That spread is the
smallest difference a single ktest bench of this size can resolve here.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ["virtio_ring_0_9", "virtio_ring_avail_cache", "ring"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--run-cycles", type=int, default=1000000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sleep_spread.json")
    args = ap.parse_args()
    medians: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="ktest-spread-") as tmp:
        for i in range(args.repeats):
            out = Path(tmp) / str(i)
            r = subprocess.run([sys.executable, "-m", "ktest", "bench", "ringtest", "--sleep", "--variants",
                                *VARIANTS, "--runs", str(args.runs), "--run-cycles", str(args.run_cycles),
                                "--out", str(out)], capture_output=True, text=True, timeout=3600)
            if r.returncode != 0:
                sys.exit(f"ktest bench failed:\n{r.stderr[-3000:]}")
            doc = json.loads((out / "results.json").read_text())
            for s in doc["summary"]:
                medians[s["variant"]].append(s["median"])
            print(f"repeat {i + 1}: " + "  ".join(f"{v} {medians[v][-1]:.3f}" for v in VARIANTS), flush=True)
    rows = []
    for v, ms in medians.items():
        med = statistics.median(ms)
        rows.append({"variant": v, "medians": ms, "min": min(ms), "max": max(ms),
                     "spread_pct": round(100 * (max(ms) - min(ms)) / med, 1)})
        print(f"{v:28s} medians {min(ms):.3f} .. {max(ms):.3f} s, spread {rows[-1]['spread_pct']} %")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                                    "repeats": args.repeats, "runs": args.runs, "run_cycles": args.run_cycles,
                                    "variants": rows}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
