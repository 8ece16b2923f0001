"""Read a LAVA job log back into ktest's results.

The log is lava-run's stdout (or a lab's raw job log, the same lines with a
"- " in front): one YAML flow mapping per line, ``{"dt", "lvl", "msg"}``.
``lvl: target`` lines are the guest's console: ktest reads them as it reads
a local boot (kernel reports, the modules loaded) and takes each test
case's output from between ktest-lava-case's markers, which bench.py parses
into run records.  ``lvl: results`` lines are LAVA's verdicts: the test
cases with their measurement, and LAVA's own (boot, kernel messages, job).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import bench, job
from ..qemu.console import Console
from .common import LavaError

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader

BEGIN, END = "KTEST-CASE-BEGIN ", "KTEST-CASE-END "
BOOTED_RE = re.compile(r"KTEST-BOOTED-([0-9a-f]{12})")
# Tests ktest itself writes are the only definition here; LAVA's are "lava".
LAVA = "lava"


@dataclass
class Case:
    name: str
    result: str = "unknown"            # pass | fail | skip | unknown (no verdict in the log)
    measurement: float | None = None
    units: str | None = None
    status: int | None = None          # the command's exit status, from ktest-lava-case
    output: list[str] = field(default_factory=list)


@dataclass
class LavaResults:
    log: Path
    job_result: str | None                                    # LAVA's verdict; None: the log ends early
    job_error: str | None
    cases: list[Case]
    lava_failures: list[str]                                  # LAVA's own cases that failed
    records: list[bench.RunRecord]
    console: Console
    expected: list[str] = field(default_factory=list)         # the cases the job defines
    patched: list[str] = field(default_factory=list)          # modules that must be the patched build

    def case(self, name: str) -> Case | None:
        return next((c for c in self.cases if c.name == name), None)

    def problems(self) -> list[str]:
        """Everything that makes the job a failure, one sentence each."""
        out = []
        for c in self.cases:
            if c.result != "pass":
                why = f"exit status {c.status}" if c.status is not None else f"LAVA result {c.result}"
                tail = "; ".join(c.output[-3:])
                out.append(f"test case {c.name} failed ({why})" + (f": {tail}" if tail else ""))
        for name in self.expected:
            if self.case(name) is None:
                out.append(f"test case {name} did not run")
        for f in self.console.findings:
            out.append(f"the guest kernel reported a {f.kind}: {f.line.strip()}")
        ours = self.console.out_of_tree()
        stock = [m for m in self.patched if m in self.console.loaded and m not in ours]
        if stock:
            out.append(f"the guest did not load the patched build of {', '.join(stock)}")
        out += [f"LAVA: {x}" for x in self.lava_failures]
        if self.job_result is None:
            out.append("the log ends before LAVA's job verdict")
        elif self.job_result != "pass":
            out.append(f"LAVA job result {self.job_result}" + (f": {self.job_error}" if self.job_error else ""))
        return out


def entries(path: Path):
    """(line number, entry dict) for every log entry; other lines are skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        raise LavaError(f"{path}: cannot read the job log: {e}") from e
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw[2:] if raw.startswith("- {") else raw
        if not line.startswith("{"):
            continue
        try:
            doc = yaml.load(line, Loader=_Loader)
        except yaml.YAMLError as e:
            raise LavaError(f"{path}:{n}: not a LAVA log line: {str(e).splitlines()[0]}") from e
        if isinstance(doc, dict) and "lvl" in doc:
            yield n, doc


def _float(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def parse(path: Path, *, expected: list[str] | None = None, patched: list[str] | None = None) -> LavaResults:
    """The results in the LAVA job log at ``path``.

    ``expected``/``patched`` (from the job's ktest-job.json, when at hand)
    let a missing case or a stock module count as a problem.
    """
    items = list(entries(path))
    if not items:
        raise LavaError(f"{path}: no LAVA log lines in it (lava-run's stdout, or lavacli jobs logs --raw)")
    nonce = ""
    for _, e in items:
        m = BOOTED_RE.search(str(e["msg"])) if e["lvl"] == "target" else None
        if m:
            nonce = m.group(1)
            break
    console = Console(nonce or "-")
    cases: dict[str, Case] = {}
    open_case: Case | None = None
    job_result = job_error = None
    lava_failures = []
    for _, e in items:
        msg = e["msg"]
        if e["lvl"] == "target" and isinstance(msg, str):
            console.feed(msg)
            if msg.startswith(BEGIN):
                name = msg[len(BEGIN):].strip()
                open_case = cases.setdefault(name, Case(name))
                open_case.output = []
            elif msg.startswith(END) and open_case is not None:
                m = re.search(r"status=(\d+)", msg)
                open_case.status = int(m.group(1)) if m else None
                open_case = None
            elif open_case is not None:
                open_case.output.append(msg)
        elif e["lvl"] == "results" and isinstance(msg, dict):
            name, result = str(msg.get("case", "")), str(msg.get("result", "unknown"))
            if msg.get("definition") == LAVA:
                if name == "job":
                    job_result, job_error = result, msg.get("error_msg")
                elif result == "fail":
                    extra = msg.get("extra")
                    why = extra.get("fail") if isinstance(extra, dict) else None
                    lava_failures.append(f"{name} failed" + (f": {why}" if why else ""))
                continue
            c = cases.setdefault(name, Case(name))
            c.result = result
            c.measurement = _float(msg.get("measurement"))
            c.units = msg.get("units")
    records = []
    for c in cases.values():
        recs = bench.parse_output(c.output)
        for r in recs:
            if c.measurement is not None and abs(r.wall_s - c.measurement) > 1e-6:
                raise LavaError(f"{path}: test case {c.name}: LAVA's measurement {c.measurement} s is not "
                                f"the run's wall time {r.wall_s} s")
        records += recs
    return LavaResults(Path(path), job_result, job_error, list(cases.values()), lava_failures, records, console,
                       list(expected or []), list(patched or []))


def outcome(res: LavaResults, out: Path, inputs: dict, variants: list[str] | None = None) -> job.BenchOutcome:
    """The records as ``ktest bench`` keeps them: results.json, records.csv, plot.png in ``out``."""
    if not res.records:
        raise LavaError(f"{res.log}: no benchmark runs in this job log")
    variants = variants or list(dict.fromkeys(r.variant for r in res.records))
    summary = bench.summarise(res.records, variants, ["HEAD"])
    inputs = {**inputs, "lava_log": str(res.log), "modules_out_of_tree": res.console.out_of_tree()}
    path = bench.write_results(out, res.records, summary, inputs)
    return job.BenchOutcome(res.records, summary, [], path, res.log, inputs)
