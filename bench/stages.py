#!/usr/bin/env python3
"""Wall time of each walking-skeleton stage, cold then warm, in a fresh KTEST_HOME.

    python3 bench/stages.py [--out bench/results/stages.json]

Cold is a new cache directory and an empty ccache (as on a new machine:
extract, commit, build from nothing); warm is the same command again right
after.  Each stage runs through the real ``ktest`` command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = [
    ("tree prepare", ["tree", "prepare"]),
    ("series apply", ["series", "apply"]),
    ("build --kmod", ["build", "--kmod"]),
    ("build --tools", ["build", "--tools"]),
    ("accel probe + boot -- true", ["boot", "--", "true"]),
    ("boot -- true (TCG)", ["boot", "--accel", "tcg", "--", "true"]),
    ("bench ringtest (every variant x 1 run, 1M buffers)",
     ["bench", "ringtest", "--runs", "1", "--accel", "tcg"]),
]


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ktest", *args], env=env, capture_output=True, text=True,
                       timeout=3600)
    took = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"ktest {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "stages.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ktest-bench-") as home:
        # An empty compiler cache too: on 6.12 the first boot builds the guest kernel, and a
        # warm ~/.cache/ccache would make that "cold" build a cache copy.
        env = {**os.environ, "KTEST_HOME": home, "CCACHE_DIR": str(Path(home) / "ccache")}
        for name, cmd in STAGES:
            cold = timed(cmd, env)
            warm = timed(cmd, env) if not name.startswith("accel") else None
            rows.append({"stage": name, "command": "ktest " + " ".join(cmd), "cold_s": round(cold, 1),
                         "warm_s": None if warm is None else round(warm, 1)})
            print(f"{name:55s} cold {cold:7.1f} s   warm {'-' if warm is None else f'{warm:.1f} s'}",
                  flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"host": platform.node(), "cpus": os.cpu_count(),
                                    "date": time.strftime("%Y-%m-%d"), "stages": rows}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
