"""Run a written job here with ``lava-run`` (no lava-server), as a lab would.

lava-run needs root and a job id (it works in /var/lib/lava/dispatcher/
tmp/<id>); its stdout is the job log, one YAML flow mapping per line, which
is where the per-test results are (``--output-dir`` keeps only the verdict).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .. import ui
from ..qemu import boot as qboot
from ..run import Stream
from . import device
from .common import JOB_FILE, MANIFEST, LavaError, load, program


CASE_RE = re.compile(r'"lvl": "results", "msg": \{"case": "([^"]+)", "definition": "\d+_[^"]*",.*"result": "(\w+)"')


@dataclass
class LocalRun:
    directory: Path       # DIR/runs/<id>/: lava.log, device.yaml, lava-run's output dir
    log: Path
    returncode: int
    accel: str
    seconds: float


def manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not (directory / JOB_FILE).is_file() or not path.is_file():
        raise LavaError(f"{directory}: no {JOB_FILE} and {MANIFEST} here",
                        hint="Write one with: ktest lava job boot|bench ... --out DIR")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LavaError(f"{path}: {e}") from e


def lava_run_argv(job: Path, device_yaml: Path, output_dir: Path, job_id: int) -> list[str]:
    return [program("lava-run"), "--job-id", str(job_id), "--output-dir", str(output_dir),
            "--device", str(device_yaml), str(job)]


def run_local(directory: Path, *, accel: str | None = None) -> LocalRun:
    """lava-run the job in ``directory``; its log is kept in DIR/runs/<id>/lava.log."""
    directory = directory.resolve()
    info = manifest(directory)
    if not info.get("local"):
        raise LavaError(f"{directory}: this job deploys from {info['urls']['kernel'].rsplit('/', 1)[0]}, "
                        "not from its own artifacts/",
                        hint="Write it again without --artifacts-url to try it here.")
    if os.geteuid() != 0:
        raise LavaError("lava-run needs root (it mounts and writes /var/lib/lava/dispatcher)",
                        hint=f"Run it as root: sudo ktest lava run {directory}")
    job = load(directory / JOB_FILE)
    kernel = directory / "artifacts" / "bzImage"
    accel = accel or qboot.probe_accel(kernel)
    # The id names lava-run's work directory: unique per run on this machine.
    job_id = int(time.time() * 1000) % 10**9 * 100 + os.getpid() % 100
    rdir = directory / "runs" / str(job_id)
    rdir.mkdir(parents=True)
    dev = device.write(rdir / "device.yaml", job.get("context", {}), accel)
    log = rdir / "lava.log"
    argv = lava_run_argv(directory / JOB_FILE, dev, rdir / "output", job_id)
    start = time.monotonic()
    deadline = start + info.get("timeout_s", 1800) + 120
    cases = info["cases"]
    with ui.step(f"lava-run: {info['name']} ({len(cases)} test cases, {accel.upper()})"), \
            open(log, "w") as logf, Stream(argv) as proc:
        logf.write("$ " + " ".join(argv) + "\n")
        done = 0
        for line in proc.lines(deadline):
            if line is None:
                raise LavaError(f"lava-run did not finish in {deadline - start:.0f} s (killed)", log=log)
            logf.write(line + "\n")
            # Each test case as it ends: progress that a log file keeps too.
            m = CASE_RE.search(line)
            if m and m.group(1) in cases:
                done += 1
                ui.note(f"  [{done}/{len(cases)}] {m.group(1)}: {m.group(2)}")
        rc = proc.wait(30)
    return LocalRun(rdir, log, -1 if rc is None else rc, accel, time.monotonic() - start)
