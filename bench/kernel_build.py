#!/usr/bin/env python3
"""Kernel build figures: cold, after touching virtio_ring.c, and the cached no-op.

    python3 bench/kernel_build.py [--out bench/results/kernel_build.json] [--fragment F ...]

Runs the real ``ktest build --kernel`` (tinyconfig + ktest's default
fragments: guest, ringtest, net) on the prepared tree (``ktest tree path``)
in a fresh KTEST_HOME and a fresh, empty ccache directory, so "cold" is a
new machine's first build.  Then:

- touch: ``touch drivers/virtio/virtio_ring.c`` and ``--force`` (make runs;
  a touch changes no content, so without --force ktest would answer from
  its cache, as it should),
- make no-op: ``--force`` with nothing changed (what make alone costs),
- cached no-op: plain ``ktest build --kernel`` again (make is not run),
- kmod: ``ktest build --kmod --release <the build's release>`` (the patched modules,
  against the build dir),
- boot: ``ktest boot --kernel built --accel tcg -- true``.

The tree is only read (touch changes an mtime, not the content).
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

from ktest.kbuild import DEFAULT_FRAGMENTS

TARGETS = {"cold": 360.0, "touch": 15.0, "cached no-op": 2.0}


def ktest(args: list[str], env: dict[str, str], timeout: float = 7200) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ktest", *args], env=env, capture_output=True, text=True,
                       timeout=timeout)
    took = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"ktest {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return took, r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kernel_build.json")
    ap.add_argument("-f", "--fragment", action="append", default=[], help="fragments (default: ktest's, kbuild.DEFAULT_FRAGMENTS)")
    args = ap.parse_args()
    tree = subprocess.run([sys.executable, "-m", "ktest", "tree", "path"], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()
    frag_args = [a for f in args.fragment for a in ("-f", f)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ktest-kbench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        subprocess.run(["git", "config", "--file", str(home / "config"), "tree.path", tree], check=True, timeout=30)
        env = {**os.environ, "KTEST_HOME": str(home), "CCACHE_DIR": str(Path(tmp) / "ccache")}

        def step(name: str, argv: list[str], note: str = "") -> subprocess.CompletedProcess:
            took, r = ktest(argv, env)
            rows.append({"case": name, "command": "ktest " + " ".join(argv), "seconds": round(took, 1),
                         "target_s": TARGETS.get(name), "note": note})
            target = TARGETS.get(name)
            print(f"{name:24s} {took:8.1f} s{f'   (target <= {target:g} s)' if target else ''}", flush=True)
            return r

        step("cold", ["build", "--kernel", *frag_args], "fresh KTEST_HOME and empty CCACHE_DIR")
        meta = json.loads((Path(step("cached no-op", ["build", "--kernel", *frag_args]).stdout.strip()).parent
                           / "metadata.json").read_text())
        os.utime(Path(tree) / "drivers/virtio/virtio_ring.c")
        step("touch", ["build", "--kernel", "--force", *frag_args], "touch drivers/virtio/virtio_ring.c; make runs")
        step("make no-op", ["build", "--kernel", "--force", *frag_args], "nothing changed; make runs anyway")
        step("kmod against the build", ["build", "--kmod", "--release", meta["release"]],
             "kmod/ (virtio_ring, virtio_net, vhost, vhost_net, vhost_test) against the build dir")
        step("boot -- true", ["boot", "--kernel", "built", "--accel", "tcg", "--", "true"],
             "TCG, patched kmod/ modules loaded (their build is cached by now)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "host": platform.node(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
        "load_average_at_end": os.getloadavg()[0], "config": ["tinyconfig", *(args.fragment or DEFAULT_FRAGMENTS)],
        "release": meta["release"], "compiles": meta["compiles"], "warnings": meta["warnings"],
        "cases": rows}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
