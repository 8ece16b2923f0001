#!/usr/bin/env python3
"""The developer's loop, timed: edit virtio_ring.c -> kmod rebuild -> boot ->
short virtio_test and ringtest -> comparison table.

    python3 bench/dev_loop.py [--rounds 3] [--out bench/results/dev_loop.json]

Each round appends a comment to drivers/virtio/virtio_ring.c in the prepared
tree (an uncommitted edit, as a developer makes one), then runs, through
the real ``ktest`` command:
  1. ktest build --kmod                    (the edited module rebuilds)
  2. ktest bench ringtest  (2 variants, 1 run, 100k buffers, in the guest)
  3. ktest bench virtio_test (batch-64 vs in-order-batch-64, 1 run each)
The edit is reverted at the end (git checkout of that one file), so the tree
is left as it was.  Target from the issue: <= 30 s per round on 2 cores, TCG.
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

STEPS = [
    ("kmod rebuild", ["build", "--kmod"]),
    ("boot + ringtest (2 variants)", ["bench", "ringtest", "--variants", "virtio_ring_0_9",
                                      "virtio_ring_avail_cache", "--runs", "1", "--run-cycles", "100000"]),
    ("boot + virtio_test (2 variants)", ["bench", "virtio_test", "--variants", "batch-64", "in-order-batch-64",
                                         "--runs", "1"]),
]


def ktest(args: list[str]) -> float:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ktest", *args], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        sys.exit(f"ktest {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return time.monotonic() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dev_loop.json")
    args = ap.parse_args()
    tree = Path(subprocess.run([sys.executable, "-m", "ktest", "tree", "path"], capture_output=True, text=True,
                               check=True, timeout=60).stdout.strip())
    src = tree / "drivers/virtio/virtio_ring.c"
    if subprocess.run(["git", "-C", str(tree), "diff", "--quiet", "--", str(src)], timeout=60).returncode:
        sys.exit(f"{src} has uncommitted edits already; not touching it")
    ktest(["build", "--kmod"])       # start from a built tree, as a developer would
    rounds = []
    try:
        for i in range(args.rounds):
            with open(src, "a") as f:
                f.write(f"/* dev loop round {i} {time.time()} */\n")
            times = {name: ktest(cmd) for name, cmd in STEPS}
            times["total"] = sum(times.values())
            rounds.append(times)
            print(f"round {i + 1}: " + "  ".join(f"{k} {v:.1f} s" for k, v in times.items()), flush=True)
    finally:
        subprocess.run(["git", "-C", str(tree), "checkout", "--", str(src)], timeout=60, check=True)
        ktest(["build", "--kmod"])
    med = {k: round(statistics.median(r[k] for r in rounds), 1) for k in rounds[0]}
    print("median: " + "  ".join(f"{k} {v} s" for k, v in med.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                                    "rounds": rounds, "median": med}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
