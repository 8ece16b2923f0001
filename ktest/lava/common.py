"""What the LAVA modules share: their error, YAML in and out, and where
Debian's LAVA packages live (their Python is the system one, not ktest's)."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ..errors import KtestError
from ..run import run

PACKAGE = "lava-dispatcher"
LAVACLI_PACKAGE = "lavacli"
JOB_FILE = "job.yaml"
MANIFEST = "ktest-job.json"
ARTIFACTS = "artifacts"


class LavaError(KtestError):
    """A LAVA job could not be written, run, sent or read back."""


def dump(doc: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000))
    return path


def load(path: Path) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise LavaError(f"{path}: cannot read: {e}") from e
    if not isinstance(doc, dict):
        raise LavaError(f"{path}: not a YAML mapping")
    return doc


def program(name: str, package: str = PACKAGE) -> str:
    path = shutil.which(name)
    if path is None:
        raise LavaError(f"{name} not found (only the lava commands need it)",
                        hint=f"Install it with: apt-get install {package}")
    return path


def lava_python() -> str:
    """The interpreter lava-run runs under, which can import lava_common."""
    lava_run = Path(program("lava-run"))
    first = lava_run.read_text(errors="replace").splitlines()[0] if lava_run.stat().st_size else ""
    interp = first[2:].strip().split()[0] if first.startswith("#!") else ""
    if not interp or not Path(interp).exists():
        raise LavaError(f"{lava_run}: cannot tell which Python runs it ({first!r})")
    return interp


# The job schema as lava-server checks a submitted job (strict: unknown keys
# are errors), run under LAVA's own Python.
_VALIDATE = """
import sys, yaml
from voluptuous import Invalid
from lava_common.schemas import validate
try:
    validate(yaml.safe_load(open(sys.argv[1])), strict=True)
except Invalid as e:
    path = "/".join(str(p) for p in e.path)
    print(f"{path}: {e.msg}" if path else e.msg)
    sys.exit(1)
"""


def validate(job: Path) -> None:
    """Check ``job`` against lava_common's job schema; LavaError names the bad key."""
    r = run([lava_python(), "-c", _VALIDATE, str(job)], timeout=60, check=False, what="LAVA schema check")
    if r.returncode != 0:
        detail = (r.stdout.strip() or r.stderr.strip().splitlines()[-1:] or ["?"])
        detail = detail if isinstance(detail, str) else detail[0]
        raise LavaError(f"{job}: not a valid LAVA job: {detail}")
