#!/usr/bin/env python3
"""Series lifecycle costs on the real tree: apply + export, check, build-each.

    python3 bench/series_ops.py [--repeat 5] [--out bench/results/series_ops.json]

Uses the prepared tree (``ktest tree prepare`` first).  Each operation runs
``--repeat`` times through the real ``ktest`` command; median, min and max
wall time are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OPS = [
    ("series apply --force", ["series", "apply", "--force"]),
    ("series export", ["series", "export"]),
    ("series check (checkpatch --strict)", ["series", "check"]),
    ("series build-each (kmod, tools)", ["series", "build-each"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "series_ops.json")
    args = ap.parse_args()
    npatches = sum(1 for ln in (Path(__file__).parent.parent / "patches" / "series").read_text().splitlines()
                   if ln.strip() and not ln.startswith("#"))
    rows = []
    for name, cmd in OPS:
        times = []
        for _ in range(args.repeat):
            start = time.monotonic()
            r = subprocess.run([sys.executable, "-m", "ktest", *cmd], capture_output=True, text=True, timeout=3600)
            times.append(time.monotonic() - start)
            if r.returncode != 0:
                sys.exit(f"ktest {' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
        rows.append({"op": name, "median_s": round(statistics.median(times), 2), "min_s": round(min(times), 2),
                     "max_s": round(max(times), 2), "runs": len(times)})
        print(f"{name:40s} median {rows[-1]['median_s']:6.2f} s  (min {rows[-1]['min_s']}, max {rows[-1]['max_s']})",
              flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"patches": npatches, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                                    "ops": rows}, indent=2) + "\n")
    print(f"written {args.out} ({npatches} patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
