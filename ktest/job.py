"""The main job: prepared tree + series -> modules -> guest -> ringtest table.

Each function takes the previous stage's plain result; the CLI strings
them together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import bench, build, paths, series, tree, ui
from .errors import BenchError
from .qemu import guest


@dataclass
class BenchOutcome:
    records: list[bench.RunRecord]
    summary: list[bench.Summary]
    results: Path
    console_log: Path
    guest_status: int | None


def prepare_tree(user_tree: Path | None = None, base: str = "HEAD") -> tree.Tree:
    if user_tree is not None:
        return tree.prepare_user(user_tree, base)
    return tree.prepare_debian()


def apply_series(t: tree.Tree, patches: Path | None = None, force: bool = False) -> str:
    return series.apply(t, series.load(patches or paths.patches_dir()), force=force)


def patched_modules(result: build.BuildResult) -> dict[str, Path]:
    return {a.name[:-3]: a for a in result.artifacts if a.name.endswith(".ko")}


def ringtest(t: tree.Tree, kmod: build.BuildResult, tools: build.BuildResult,
             spec: bench.RingtestSpec, *, out: Path | None = None, accel: str | None = None,
             timeout: float | None = None, verbose: bool = False) -> BenchOutcome:
    unknown = [v for v in spec.variants if v not in build.RINGTEST_VARIANTS]
    if unknown:
        raise BenchError(f"unknown ringtest variant(s): {', '.join(unknown)} "
                         f"(known: {', '.join(build.RINGTEST_VARIANTS)})")
    payload = {f"bin/{a.name}": a for a in tools.artifacts}
    gspec = guest.GuestSpec(
        cmd=bench.guest_script(spec), patched=patched_modules(kmod), payload=payload,
        modules=["virtio_pci", "virtio_net"], accel=accel, net=True, verbose=verbose,
        # Under TCG one run of a million buffers took 8-28 s here; leave
        # room for twice the slowest.
        timeout=timeout or 120 + 60 * spec.runs * len(spec.variants) * max(0.1, spec.run_cycles / 1e6),
    )
    res = guest.run(gspec)
    records = bench.parse_output(res.output)
    expected = spec.runs * len(spec.variants)
    if len(records) != expected:
        raise BenchError(f"expected {expected} ringtest runs in the guest, parsed {len(records)}",
                         log=res.console_log)
    summary = bench.summarise(records, spec.variants)
    commit = t.git("rev-parse", "HEAD").stdout.strip()
    inputs = {
        "tree": str(t.path), "commit": commit, "base": t.base, "base_ref": t.base_ref,
        "series_fingerprint": t.git("config", "--get", "ktest.seriesfingerprint", check=False).stdout.strip(),
        "kernel": "debian " + kmod.release, "accel": res.accel, "cpu": bench.cpu_model(),
        "modules_loaded": res.loaded,
        "modules_out_of_tree": [m for m in res.loaded if "O" in (res.console.taint.get(m, "") if res.console else "")],
        "ringtest": {
            "variants": spec.variants, "runs": spec.runs, "run_cycles": spec.run_cycles,
            "batch": spec.batch, "sleep": spec.sleep, "host_cpu": spec.host_cpu,
            "guest_cpu": spec.guest_cpu},
        "console_log": str(res.console_log),
    }
    out = out or paths.results() / f"ringtest-{time.strftime('%Y%m%d-%H%M%S')}"
    path = bench.write_results(out / "results.json", records, summary, inputs)
    return BenchOutcome(records, summary, path, res.console_log, res.exit_status)


def summary_table(summary: list[bench.Summary], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("variant", "runs", "failed", "median s", "min s", "max s"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for s in summary:
        fmt = (lambda x: "-" if x is None else f"{x:.3f}")
        table.add_row(s.variant, str(s.runs), str(s.failed), fmt(s.median), fmt(s.min), fmt(s.max))
    return table


def note_paths(kmod: build.BuildResult, outcome: BenchOutcome) -> None:
    doc = bench.read_results(outcome.results)
    ui.note("patched modules loaded in the guest (out of tree): "
            + ", ".join(doc["inputs"]["modules_out_of_tree"]))
    ui.note(f"modules: {kmod.directory} (log {kmod.log})")
    ui.note(f"console log: {outcome.console_log}")
    ui.note(f"results: {outcome.results}")
