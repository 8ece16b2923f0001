"""Send a job to a LAVA lab and fetch its log, with lavacli.

The lab and the credentials come from lavacli's own configuration
(``lavacli identities add``, in $XDG_CONFIG_HOME/lavacli.yaml): ktest names
an identity, never a token, so no secret is on a command line.  ``--server``
is an identity's name or its server's URL.  Nothing leaves the machine
except through ``submit``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..run import run
from .common import JOB_FILE, LAVACLI_PACKAGE, LavaError, load, program
from .local import manifest


def config_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "lavacli.yaml"


def identity(server: str, config: Path | None = None) -> str:
    """The lavacli identity for ``server`` (an identity name, or a URL matched by host)."""
    config = config or config_file()
    try:
        ids = yaml.safe_load(config.read_text()) or {} if config.exists() else {}
    except yaml.YAMLError as e:
        raise LavaError(f"{config}: {e}") from e
    if not isinstance(ids, dict):
        raise LavaError(f"{config}: not a lavacli configuration")
    add = ("Add one with: lavacli identities add --uri https://LAB/RPC2 --username USER --token TOKEN NAME"
           " (the token is made in the lab's web UI, API -> Authentication Tokens)")
    if "://" not in server:
        if server not in ids:
            raise LavaError(f"no lavacli identity named {server!r} in {config}", hint=add)
        return server
    host = urlsplit(server).hostname
    found = [name for name, v in ids.items()
             if isinstance(v, dict) and urlsplit(str(v.get("uri", ""))).hostname == host]
    if not found:
        raise LavaError(f"no lavacli identity for {host} in {config}", hint=add)
    if len(found) > 1:
        raise LavaError(f"{len(found)} lavacli identities for {host} in {config} ({', '.join(found)}): "
                        "name one with --server NAME")
    return found[0]


def submit_argv(job: Path, ident: str) -> list[str]:
    return [program("lavacli", LAVACLI_PACKAGE), "-i", ident, "jobs", "submit", "--url", str(job)]


def logs_argv(job_id: str, ident: str) -> list[str]:
    return [program("lavacli", LAVACLI_PACKAGE), "-i", ident, "jobs", "logs", "--raw", job_id]


def check_submittable(directory: Path) -> Path:
    """The job file, if a lab can fetch everything it deploys."""
    manifest(directory)
    job = directory / JOB_FILE
    doc = load(job)
    local = [f"{label}: {img.get('url')}" for action in doc.get("actions", [])
             for label, img in action.get("deploy", {}).get("images", {}).items()
             if not str(img.get("url", "")).startswith(("http://", "https://"))]
    if local:
        raise LavaError(f"{job} deploys from this machine ({'; '.join(local)}): a lab cannot fetch that",
                        hint="Write the job with --artifacts-url BASE, upload DIR/artifacts/* to BASE/, then submit.")
    return job


def submit(directory: Path, server: str) -> list[str]:
    """Submit the job; the job URLs lavacli printed (one per job it made)."""
    job = check_submittable(directory.resolve())
    r = run(submit_argv(job, identity(server)), timeout=120, check=False, what="lavacli jobs submit")
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or "Unable to submit" in out:
        raise LavaError(f"lavacli could not submit {job}: {out}")
    return [line.strip() for line in r.stdout.splitlines() if line.strip()]


JOB_ID_RE = re.compile(r"^\d+(\.\d+)?$")


def fetch_log(job_id: str, server: str, dest: Path, *, timeout: float = 6 * 3600) -> Path:
    """The job's raw log into ``dest`` (lavacli follows a running job to its end)."""
    if not JOB_ID_RE.match(job_id):
        raise LavaError(f"{job_id!r} is neither a job log file nor a LAVA job id")
    r = run(logs_argv(job_id, identity(server)), timeout=timeout, check=False, what="lavacli jobs logs")
    if r.returncode != 0:
        raise LavaError(f"lavacli could not fetch the log of job {job_id}: {(r.stderr or r.stdout).strip()}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(r.stdout)
    return dest
