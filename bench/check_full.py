#!/usr/bin/env python3
"""``ktest series check --full`` on the series, warm cache.

    python3 bench/check_full.py [--out bench/results/check_full.json]

Uses the prepared tree with the series applied (``ktest tree prepare`` and
``ktest series apply`` first).  A first, untimed run makes the build
directories warm (the worktree, the three configs, the whole gcc build,
the clang and i386 preparation).  Then, timed, through the real command:

  no-cache  ``--no-cache``: every object of every patch compiled again, before
            and after the patch, in all three builds, sparse run on each
            (compiles come from ccache where it has them)
  cached    the same again without ``--no-cache``: results reused by object
            and source tree id, so only the checks without a build run

The load average is recorded with each figure: on a shared machine the
figures are only as good as the quiet they were taken in.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CMD = ["series", "check", "--full", "--no-checkpatch"]


def ktest(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ktest", *args], capture_output=True, text=True, timeout=4 * 3600)
    return time.monotonic() - start, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "check_full.json")
    args = ap.parse_args()
    secs, r = ktest(*CMD)
    print(f"warm-up (untimed): {secs:.0f} s, exit {r.returncode}", flush=True)
    if r.returncode != 0:
        sys.exit(f"ktest {' '.join(CMD)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    rows = []
    for name, extra in (("no-cache", ["--no-cache"]), ("cached", [])):
        load0 = os.getloadavg()[0]
        secs, r = ktest(*CMD, *extra)
        if r.returncode != 0:
            sys.exit(f"ktest {' '.join(CMD + extra)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
        rows.append({"run": name, "seconds": round(secs, 1), "load_before": round(load0, 2),
                     "load_after": round(os.getloadavg()[0], 2)})
        print(f"{name:10s} {secs:7.1f} s  (load average {load0:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    npatches = sum(1 for ln in (Path(__file__).parent.parent / "patches" / "series").read_text().splitlines()
                   if ln.strip() and not ln.startswith("#"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"patches": npatches, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                                    "command": "ktest " + " ".join(CMD), "runs": rows}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
