#!/usr/bin/env python3
"""Time to boot a kernel, run `true` and get its exit status: ktest vs virtme-ng.

    pip install virtme-ng            # vng, for the comparison only
    python3 bench/boot_vs_vng.py [--runs 5] [--kernel /boot/vmlinuz-...]

One paired run on the same machine: the commands alternate (ktest, vng,
ktest, vng, ...) so that load on the machine hits both alike.  Both run
under TCG (`vng --disable-kvm`; ktest's probe finds KVM unusable here).
Needs `ktest tree prepare && ktest series apply` first: ktest's default boot
loads the patched modules, as it does in every real use.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(argv: list[str]) -> float:
    start = time.monotonic()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    took = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default=None,
                    help="default: Debian's kernel for the prepared tree (the one `ktest boot` picks)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "boot_vs_vng.json")
    args = ap.parse_args()
    if shutil.which("vng") is None:
        sys.exit("vng not found: pip install virtme-ng")
    if args.kernel is None:
        # Not the newest /boot/vmlinuz: with 6.1 and 6.12 installed, vng and
        # ktest must boot the same kernel, the one that goes with the tree.
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from ktest.kernels import debian_release

        args.kernel = f"/boot/vmlinuz-{debian_release()}"
    kernel = "debian" if args.kernel.startswith("/boot/") else args.kernel
    k = [sys.executable, "-m", "ktest", "boot"]
    # vng boots the same kernel as the "--kernel" rows.  On 6.12 Debian's image has
    # virtio_ring built in, so the patched modules load only into ktest's own build of the
    # tree (the default guest, --kernel auto), which vng cannot boot (no 9p/virtiofs):
    # that row is ktest's everyday boot, on its own kernel.
    cmds = {
        "ktest boot -- true": k + ["--", "true"],
        "ktest boot --kernel K --modules none -- true": k + ["--kernel", kernel, "--modules", "none", "--", "true"],
        "ktest boot --kernel K --modules none --net none -- true": k + ["--kernel", kernel, "--modules", "none",
                                                                         "--net", "none", "--", "true"],
        "ktest boot --kernel K --modules none --bzimage -- true (BIOS + decompression)":
            k + ["--kernel", kernel, "--modules", "none", "--bzimage", "--", "true"],
        "vng -r K --disable-kvm -- true": ["vng", "-r", args.kernel, "--disable-kvm", "--", "true"],
    }
    timed(cmds["ktest boot -- true"])      # warm the module build and initramfs cache once
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for i in range(args.runs):
        for name, argv in cmds.items():
            times[name].append(timed(argv))
            print(f"run {i + 1}: {name:80s} {times[name][-1]:6.2f} s", flush=True)
    vng = statistics.median(times["vng -r K --disable-kvm -- true"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"command": name, "median_s": round(med, 2), "min_s": round(min(ts), 2),
                     "max_s": round(max(ts), 2), "runs": len(ts), "vng_over_this": round(vng / med, 1)})
        print(f"{name:80s} median {med:6.2f} s  min {min(ts):.2f}  max {max(ts):.2f}  vng/this {vng / med:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"kernel": args.kernel, "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                                    "rows": rows}, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
