#!/usr/bin/env python3
"""Wall time of the main job, ``ktest run``, cold then warm, with each step's time.

    python3 bench/main_job.py [--runs N] [--out bench/results/main_job.json]

Cold is a fresh KTEST_HOME and an empty ccache (as on a new machine after
set-up: extract and commit the tree, apply, build the guest kernel, the
modules and tools, boot, bench); warm is the same command again at once.  Each step's time is read from ktest's own
progress lines ("✓ step (12.3 s)"), so the breakdown is what ktest measured.
Run it on an idle machine: ringtest busy-polls, and a busy host spreads
every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# kbuild's line also counts its compiles: "✓ building ... (1350 compiled, 626.1 s)".
STEP_RE = re.compile(r"^✓ (?P<step>.*) \((?:\d+ compiled, )?(?P<s>[0-9.]+) s\)$", re.M)


def one(env: dict[str, str], cwd: Path) -> dict:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ktest", "run"], env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=3600)
    took = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"ktest run failed ({r.returncode}):\n{r.stderr[-3000:]}")
    steps = [(m.group("step"), float(m.group("s"))) for m in STEP_RE.finditer(r.stderr)]
    return {"wall_s": round(took, 1), "steps": steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1, help="cold+warm pairs (each cold one extracts the tree)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "main_job.json")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parent.parent
    pairs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ktest-main-job-") as home:
            env = {**os.environ, "KTEST_HOME": home, "CCACHE_DIR": str(Path(home) / "ccache")}
            cold = one(env, repo)
            warm = one(env, repo)
        pairs.append({"cold": cold, "warm": warm})
        print(f"run {i + 1}: cold {cold['wall_s']:.1f} s, warm {warm['wall_s']:.1f} s", flush=True)
        for step, s in cold["steps"]:
            print(f"    cold  {s:6.1f} s  {step}")
        for step, s in warm["steps"]:
            print(f"    warm  {s:6.1f} s  {step}")
    doc = {"host": platform.node(), "cpus": os.cpu_count(), "load1_at_end": os.getloadavg()[0],
           "date": time.strftime("%Y-%m-%d"), "command": "ktest run", "pairs": pairs,
           "cold_median_s": statistics.median(p["cold"]["wall_s"] for p in pairs),
           "warm_median_s": statistics.median(p["warm"]["wall_s"] for p in pairs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"cold median {doc['cold_median_s']} s, warm median {doc['warm_median_s']} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
