"""Benchmark results: the records of the runs, their summaries, and the files
they are kept in (``results.json``, the record of truth; ``records.csv``;
``plot.png``).  Ground floor for bench, stats, job and mail.
"""
from __future__ import annotations

import csv
import json
import platform
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import BenchError

FORMAT = 2


@dataclass
class RunRecord:
    bench: str
    variant: str
    run: int
    status: int
    wall_s: float
    user_s: float
    sys_s: float
    nvcsw: int
    nivcsw: int
    maxrss_kb: int
    side: str = "HEAD"
    counters: dict[str, float] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)


@dataclass
class Summary:
    variant: str
    side: str
    runs: int
    failed: int
    median: float | None
    min: float | None
    max: float | None
    iqr: float | None
    trust: str                    # ok | spread | bimodal | failed
    counters: dict[str, float] = field(default_factory=dict)   # medians
    exit_statuses: list[int] = field(default_factory=list)     # of the failed runs, distinct, sorted


@dataclass
class Comparison:
    variant: str
    a: str
    b: str
    ratio: float | None           # median(a) / median(b): < 1 means a is faster
    ci_low: float | None
    ci_high: float | None
    trust: str


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_results(out: Path, records: list[RunRecord], summary: list[Summary], inputs: dict,
                  comparisons: list[Comparison] | None = None) -> Path:
    """results.json (the record of truth), records.csv and plot.png, in ``out``.

    No plot.png when no variant has two runs: one point each shows no spread,
    and drawing it costs ~1.3 s of matplotlib, a tenth of the edit-boot loop."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "inputs": inputs, "records": [asdict(r) for r in records],
           "summary": [asdict(s) for s in summary],
           "comparisons": [asdict(c) for c in comparisons or []]}
    path = out / "results.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    write_csv(out / "records.csv", records)
    runs = Counter((r.variant, r.side) for r in records)
    if runs and max(runs.values()) >= 2:
        plot(out / "plot.png", records, inputs.get("title", ""))
    return path


def write_csv(path: Path, records: list[RunRecord]) -> None:
    names = sorted({k for r in records for k in r.counters})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bench", "variant", "side", "run", "status", "wall_s", "user_s", "sys_s",
                    "nvcsw", "nivcsw", "maxrss_kb", *names])
        for r in records:
            w.writerow([r.bench, r.variant, r.side, r.run, r.status, f"{r.wall_s:.6f}", f"{r.user_s:.6f}",
                        f"{r.sys_s:.6f}", r.nvcsw, r.nivcsw, r.maxrss_kb,
                        *[r.counters.get(k, "") for k in names]])


def plot(path: Path, records: list[RunRecord], title: str) -> None:
    """Every run as a point and each median as a bar, per variant and side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r.variant for r in records))
    sides = list(dict.fromkeys(r.side for r in records))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(variants) * len(sides)), 4.5))
    width = 0.8 / max(1, len(sides))
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for si, side in enumerate(sides):
        for vi, v in enumerate(variants):
            ys = [r.wall_s for r in records if r.variant == v and r.side == side and r.status == 0]
            x = vi - 0.4 + width * (si + 0.5)
            if ys:
                ax.bar(x, statistics.median(ys), width * 0.9, color=colours[si % 4], alpha=0.35,
                       label=side if vi == 0 else None)
                jitter = [x + width * 0.3 * ((i % 5) - 2) / 2 for i in range(len(ys))]
                ax.scatter(jitter, ys, s=14, color=colours[si % 4], zorder=3)
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants, rotation=20, ha="right")
    ax.set_ylabel("wall time per run (s)")
    ax.set_title(title or "ktest bench")
    if len(sides) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_results(path: Path) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BenchError(f"{path}: cannot read results: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BenchError(f"{path}: results format {found!r}; this ktest reads format {FORMAT} "
                         "(rerun the benchmark to get a current file)")
    return doc


def records_of(doc: dict) -> list[RunRecord]:
    return [RunRecord(**r) for r in doc["records"]]
