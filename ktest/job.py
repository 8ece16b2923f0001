"""The main job and the benchmark runs: each function takes the previous
stage's plain result; the CLI strings them together."""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from . import bench, build, kernels, paths, series, tree, ui
from .errors import BenchError, BootError, BuildError, CommandError, KtestError
from .qemu import guest
from .run import run


@dataclass
class BenchOutcome:
    records: list[bench.RunRecord]
    summary: list[bench.Summary]
    comparisons: list[bench.Comparison]
    results: Path
    console_log: Path | None
    inputs: dict


def prepare_tree(user_tree: Path | None = None, base: str = "HEAD", debian: str | None = None) -> tree.Tree:
    if user_tree is not None:
        if debian:
            raise KtestError("--tree and --debian name two different trees: give one")
        return tree.prepare_user(user_tree, base)
    return tree.prepare_debian(debian or tree.DEFAULT_DEBIAN)


def apply_series(t: tree.Tree, patches: Path | None = None, force: bool = False, fuzz: bool = False) -> str:
    return series.apply(t, series.load(patches or paths.patches_dir()), force=force, fuzz=fuzz)


def build_guest_kernel(t: tree.Tree, *, jobs: int | None = None, force: bool = False):
    """``ktest build --kernel``: tinyconfig + the guest and ktest fragments, built
    (or found in the cache) from the tree; a ConfigError if a requested value is not met."""
    from . import kbuild, kconfig

    res = kconfig.configure(t, "tinyconfig", list(kbuild.DEFAULT_FRAGMENTS), cc=kbuild.default_cc())
    if res.mismatches:
        raise kconfig.ConfigError(
            f"{len(res.mismatches)} requested config value(s) not met in {res.config}: "
            + "; ".join(f"CONFIG_{m.symbol} requested {m.requested}, got {m.actual}" for m in res.mismatches),
            hint="Fix the fragments (ktest config shows why), or build that .config anyway with "
                 "ktest build --kernel --config DIR.")
    inputs = {"base": res.base, "fragments": [str(f) for f in res.fragments]}
    return res, kbuild.build_kernel(t, res.build_dir, jobs=jobs, force=force, inputs=inputs)


def ensure_guest_kernel(t: tree.Tree, kernel: str = "auto", patched=None, *, dry_run: bool = False,
                        jobs: int | None = None) -> bool:
    """Build the guest kernel ``--kernel auto`` needs and ktest has not built yet:
    where Debian's kernel has a patched module built in (virtio_ring in 6.12),
    the guest is a kernel ktest builds of the tree's version, once (cached
    after).  True if it built one, or, with ``dry_run``, would build one
    (and said so, with the make commands)."""
    from . import kbuild, kconfig

    if kernel != "auto":
        return False
    auto = guest.auto_kernel(patched)
    if not auto.needs_build:
        return False
    why = (f"Debian's kernel {auto.debian} has {', '.join(auto.blocked)} built in, so the guest is "
           f"Linux {auto.version} as ktest builds it")
    if dry_run:
        build_dir = kconfig.default_build_dir("tinyconfig", list(kbuild.DEFAULT_FRAGMENTS))
        ui.note(f"(dry run) {why}: would build it first (once, cached after):")
        for argv in (kbuild.make_argv(t, build_dir, "bzImage", "modules"),
                     kbuild.make_argv(t, build_dir, "modules_install")):
            ui.note(f"  {shlex.join(argv)}")
        return True
    ui.note(f"{why}: building it once (cached after; ktest build --kernel does the same)")
    _, kb = build_guest_kernel(t, jobs=jobs)
    ui.note(f"guest kernel Linux {kb.release}: {kb.bzimage}{' (cached)' if kb.cached else f' built in {kb.seconds:.0f} s'}")
    return True


def guest_kernel(t: tree.Tree, kernel: str = "auto") -> tuple[Path, str]:
    """(image, release) of the guest ``kernel`` names, as ktest boot picks it:
    with "auto", the kernel ktest builds is built first where it must be
    (ensure_guest_kernel).  Modules for the guest build against ``release``."""
    ensure_guest_kernel(t, kernel)
    return guest.resolve_kernel(kernel)


def refuse_uniprocessor(kernel: Path) -> None:
    """BenchError if ``kernel`` is a ktest build without CONFIG_SMP: ringtest pins
    its host and guest threads to two vCPUs, and fails every run on one
    ("set_affinity: Assertion `!ret' failed").  Builds before the default
    fragments had ``ringtest`` were like that; Debian's kernels are SMP."""
    from . import kbuild

    kb = kbuild.for_image(kernel)
    if kb is None or "CONFIG_SMP=y" in kb.config.read_text(errors="replace").splitlines():
        return
    raise BenchError(f"the guest kernel Linux {kb.release} ({kb.directory}) is uniprocessor "
                     "(CONFIG_SMP is not set): ringtest pins its two threads to two vCPUs",
                     hint="Build it with the default fragments (guest + ringtest): ktest build --kernel")


def patched_modules(result: build.BuildResult) -> dict[str, Path]:
    return {a.name[:-3]: a for a in result.artifacts if a.name.endswith(".ko")}


def _dirname(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", label)


def _timeout(spec: bench.BenchSpec, nsides: int) -> float:
    # Under TCG one ringtest run of a million buffers took 0.3 s idle and
    # 8-28 s with the host busy; virtio_test batch 1 takes ~12 s.  Leave
    # room for twice the slowest.
    per_run = 60 * max(0.1, spec.run_cycles / 1e6) if spec.program == "ringtest" else \
        (30 + spec.count / 1000 if spec.program in ("net", "vhost_net_test") else 60)
    return 120 + per_run * spec.runs * len(spec.variants) * nsides


def run_bench(t: tree.Tree, spec: bench.BenchSpec, *, vs: str | None = None, where: str = "guest",
              out: Path | None = None, accel: str | None = None, timeout: float | None = None,
              verbose: bool = False) -> BenchOutcome:
    """Build what the benchmark needs for HEAD (and ``vs``), run it, parse and summarise."""
    if vs is not None:
        r = t.git("rev-parse", "--verify", "--quiet", f"{vs}^{{commit}}", check=False)
        if r.returncode != 0:
            raise BenchError(f"--vs {vs}: no such commit in {t.path}")
    labels = ["HEAD"] + ([vs] if vs else [])
    if spec.program == "ringtest":
        have = {lab: build.ringtest_variants(t, None if lab == "HEAD" else vs) for lab in labels}
        if not spec.variants:
            spec.variants = [v for v in have["HEAD"] if all(v in h for h in have.values())]
        spec.validate(have["HEAD"])
        for lab, h in have.items():
            missing = [v for v in spec.variants if v not in h]
            if missing:
                raise BenchError(f"ringtest variant(s) {', '.join(missing)} do not exist at {lab}")
    else:
        spec.variants = spec.variants or list(bench.DEFAULT_VARIANTS[spec.program])
        spec.validate()
    if spec.program in ("net", "vhost_net_test") and where != "guest":
        raise BenchError(f"{spec.program} runs in the guest only (--where guest): the host has no vhost-net")
    parts = {"ringtest": ("ringtest",), "net": ()}.get(spec.program, ("virtio",))
    if spec.program == "vhost_net_test":
        # The series' own driver program against each side's vhost_net: a
        # base without the program (or whose tools/virtio does not build)
        # still has a vhost_net to measure.
        head_tools = build.build_tools(t, None, parts=parts)
        tools = {lab: head_tools for lab in labels}
    else:
        tools = {"HEAD": build.build_tools(t, None, parts=parts)}
        if vs:
            try:
                tools[vs] = build.build_tools(t, vs, parts=parts)
            except BuildError as e:
                # Pristine 6.12.118's tools/virtio does not link (the series' 0001 fixes it).
                e.hint = (f"tools/virtio at {vs} does not build: compare with --vs a commit where it does "
                          "(on 6.12.118 the series' first, the tools build fix: "
                          f"git -C {t.path} rev-list --reverse {t.base}..HEAD | head -1)")
                raise
    kmods = {}
    kernel = None
    if where == "guest":
        # The guest kernel decides the headers: Debian's for the tree, or
        # ktest's own build where Debian's has a patched module built in
        # (built here the first time).
        kernel, release = guest_kernel(t)
        if spec.program == "ringtest":
            refuse_uniprocessor(kernel)
        kmods = {lab: build.build_kmod(t, release, rev=None if lab == "HEAD" else vs) for lab in labels}
    commit = t.git("rev-parse", "HEAD").stdout.strip()
    dirty = bool(t.git("status", "--porcelain", "--untracked-files=no").stdout.strip())
    inputs = {
        "title": f"{spec.program} {'in a QEMU guest' if where == 'guest' else 'on the host'}"
                 + (f": HEAD vs {vs}" if vs else ""),
        "program": spec.program, "where": where, "tree": str(t.path), "commit": commit, "dirty": dirty,
        "base": t.base, "base_ref": t.base_ref, "vs": vs,
        "series_fingerprint": t.state("--get", "ktest.seriesfingerprint", check=False).stdout.strip(),
        "cpu": bench.cpu_model(), "spec": {
            "variants": spec.variants, "runs": spec.runs, "params": spec.params,
            "run_cycles": spec.run_cycles if spec.program == "ringtest" else None,
            "batch": spec.batch, "sleep": spec.sleep, "host_cpu": spec.host_cpu, "guest_cpu": spec.guest_cpu,
            **({"device": spec.device, "count": spec.count, "size": spec.size, "nic_opts": spec.nic_opts,
                "sender": spec.sender, "burst": spec.burst, "bql_limit_min": spec.bql_limit_min}
               if spec.program == "net" else {})},
        "tools": {lab: str(b.directory) for lab, b in tools.items()},
    }
    expected = spec.runs * len(spec.variants) * len(labels)
    out = out or paths.results() / f"{spec.program}-{time.strftime('%Y%m%d-%H%M%S')}"
    if where == "host":
        records, console = _run_on_host(spec, tools, timeout), None
    else:
        kept: list = []
        try:
            records, console, res = _run_in_guest(t, spec, tools, kmods, accel=accel, timeout=timeout,
                                                  verbose=verbose, keep=kept)
        except BootError as e:
            if not kept or not kept[0].output:
                raise
            # Keep the runs that finished before the guest failed, marked.
            res = kept[0]
            records = bench.parse_output(res.output)
            inputs.update(incomplete=e.message.splitlines()[0], console_log=str(res.console_log),
                          accel=res.accel)
            path = bench.write_results(out, records, bench.summarise(records, spec.variants, labels), inputs)
            raise BenchError(f"{e.message}\n{len(records)} of {expected} runs finished; kept in {path}",
                             log=res.console_log) from e
        kind = "debian" if kernel == kernels.image(release) else "built"
        inputs.update(kernel=f"{kind} {kmods['HEAD'].release}", kernel_image=str(kernel), accel=res.accel,
                      modules_loaded=res.loaded,
                      modules_out_of_tree=res.console.out_of_tree() if res.console else [],
                      console_log=str(console))
    if len(records) != expected:
        raise BenchError(f"expected {expected} {spec.program} runs, parsed {len(records)}", log=console)
    summary = bench.summarise(records, spec.variants, labels)
    comparisons = []
    if vs:
        comparisons = bench.compare([r for r in records if r.side == "HEAD"],
                                    [r for r in records if r.side == vs], "HEAD", vs, spec.variants)
    path = bench.write_results(out, records, summary, inputs, comparisons)
    return BenchOutcome(records, summary, comparisons, path, console, inputs)


def _run_on_host(spec: bench.BenchSpec, tools: dict[str, build.BuildResult],
                 timeout: float | None) -> list[bench.RunRecord]:
    if spec.program == "virtio_test":
        raise BenchError("virtio_test needs vhost_test.ko in the running kernel: it runs in the guest only "
                         "(--where guest)")
    runner = str(tools["HEAD"].directory / "ktest" / "ktest-run")
    sides = {lab: str(_bindir(b, spec.program)) for lab, b in tools.items()}
    lines: list[str] = []
    per_run = (timeout or _timeout(spec, len(sides))) / max(1, spec.runs * len(spec.variants) * len(sides))
    with ui.step(f"running {spec.program} on the host ({spec.runs} runs x {len(spec.variants)} variants"
                 f" x {len(sides)} sides)"):
        for _, cmd in bench.run_commands(spec, sides, runner):
            try:
                r = run(cmd, timeout=max(60.0, per_run), check=False, what=spec.program)
            except CommandError as e:
                raise BenchError(f"{spec.program} run did not finish: {e.message}") from e
            lines += (r.stdout + r.stderr).splitlines()
    return bench.parse_output(lines)


def _bindir(tools: build.BuildResult, program: str) -> Path:
    if program == "ringtest":
        return next(a.parent for a in tools.artifacts if a.parent.name == "ringtest")
    return next(a.parent for a in tools.artifacts if a.name == program)


def _swap_modules(kmods: dict[str, build.BuildResult], dirs: dict[str, str], names: list[str],
                  payload: dict[str, Path]) -> dict[str, list[str]]:
    """Each side's build of ``names`` into the payload; side -> the .ko paths to load, in order."""
    swap = {}
    for lab, k in kmods.items():
        mods = patched_modules(k)
        for m in names:
            payload[f"{dirs[lab]}/modules/{m}.ko"] = mods[m]
        swap[lab] = [f"/ktest/{dirs[lab]}/modules/{m}.ko" for m in names]
    return swap


def _require_raw_ring(tools) -> None:
    """BenchError unless the tools build's vhost_net_test has the series' raw-ring
    mode (patch 21): 6.12's own program has none, and would exit 2 (usage) on
    every variant's options."""
    prog = next((a for a in tools.artifacts if a.name == "vhost_net_test"), None)
    if prog is None:
        raise BenchError(f"this tree's tools/virtio built no vhost_net_test ({tools.directory})")
    if b"raw-ring" not in prog.read_bytes():
        raise BenchError(f"{prog} has no --raw-ring mode: this tree's tools/virtio/vhost_net_test is "
                         "not the series' (patch 21 adds the mode the benchmark's variants use)")


def _run_in_guest(t, spec, tools, kmods, *, accel, timeout, verbose, keep):
    dirs = {lab: _dirname(lab) if lab != "HEAD" else "head" for lab in tools}
    if len(set(dirs.values())) != len(dirs):
        dirs = {lab: f"side{i}" for i, lab in enumerate(tools)}
    wanted = {"ringtest": spec.variants, "virtio_test": ["virtio_test"], "vringh_test": ["vringh_test"],
              "net": ["ktest-netbench"], "vhost_net_test": ["vhost_net_test"]}[spec.program]
    payload = {"bin/ktest-run": tools["HEAD"].directory / "ktest" / "ktest-run"}
    for lab, b in tools.items():
        for a in b.artifacts:
            if a.name in wanted:
                payload[f"{dirs[lab]}/bin/{a.name}"] = a
    if spec.program == "vhost_net_test":
        _require_raw_ring(tools["HEAD"])
    swap = None
    modules = ["virtio_pci", "virtio_net"]
    host_programs: list[str] = []
    if spec.program == "net":
        payload["bin/ktest-udpflood"] = tools["HEAD"].directory / "ktest" / "ktest-udpflood"
        host_programs = ["ethtool"]
        if spec.device == "vdpa":
            modules += ["vdpa_sim_net", "virtio_vdpa"]
            host_programs.append("vdpa")
        if spec.sender == "pktgen":
            modules.append("pktgen")
        if len(kmods) > 1:
            # Each side's virtio_net drives the same devices in turn; the
            # rest of the stack (virtio_ring above all) is HEAD's.
            swap = _swap_modules(kmods, dirs, ["virtio_net"], payload)
    if spec.program in ("virtio_test", "vhost_net_test"):
        # vhost_test / vhost_net is the device side: load each build's
        # vhost and device module before its runs.  What they depend on
        # (vhost_iotlb, tun, and tap where the kernel has it: Debian's
        # does, ktest's 6.12 guest does not) stays the stock one, loaded
        # at boot; vhost_net_test opens /dev/net/tun whatever vhost_net needs.
        from .qemu import initramfs as irfs

        dev = "vhost_test" if spec.program == "virtio_test" else "vhost_net"
        swapped = ["vhost", dev]
        swap = _swap_modules(kmods, dirs, swapped, payload)
        head = patched_modules(kmods["HEAD"])
        deps = {d for m in swapped if m in head for d in irfs.modinfo(head[m], "depends").split(",") if d}
        modules = ["virtio_pci", "virtio_net", *sorted(deps - set(swapped))] + (["tun"] if dev == "vhost_net" else [])
    gspec = guest.GuestSpec(
        cmd=bench.guest_script(spec, dirs, swap), patched=patched_modules(kmods["HEAD"]), payload=payload,
        modules=modules, accel=accel, net=True, verbose=verbose, host_programs=host_programs,
        nic_opts=spec.nic_opts, timeout=timeout or _timeout(spec, len(tools)))
    res = guest.run(gspec, keep=keep)
    return bench.parse_output(res.output), res.console_log, res


def summary_table(summary: list[bench.Summary], title: str):
    from rich.table import Table

    table = Table(title=title)
    sides = len({s.side for s in summary}) > 1
    cols = ["variant"] + (["side"] if sides else []) + ["runs", "failed", "median s", "min s", "max s",
                                                         "IQR s", "trust"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("variant", "side", "trust") else "right")
    fmt = (lambda x: "-" if x is None else f"{x:.3f}")
    for s in summary:
        row = [s.variant] + ([s.side] if sides else []) + [
            str(s.runs), _failed(s), fmt(s.median), fmt(s.min), fmt(s.max), fmt(s.iqr),
            s.trust if s.trust == "ok" else f"[yellow]{s.trust}[/]"]
        table.add_row(*row)
    return table


def _failed(s: bench.Summary) -> str:
    """The failed runs' count and how they ended, so a log shows why without the JSON."""
    if not s.failed:
        return "0"
    return f"{s.failed} (exit {', '.join(map(str, s.exit_statuses))})" if s.exit_statuses else str(s.failed)


def _num(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3f}"


def counters_table(summary: list[bench.Summary]):
    """What the programs counted (median over the runs): the figures that do not depend on timing."""
    from rich.table import Table

    names = sorted({k for s in summary for k in s.counters})
    if not names:
        return None
    sides = len({s.side for s in summary}) > 1
    table = Table(title="counters printed by the programs (median of the runs)")
    table.add_column("counter")
    for s in summary:
        table.add_column(f"{s.variant}{' ' + s.side if sides else ''}", justify="right")
    for n in names:
        table.add_row(n, *["-" if n not in s.counters else _num(s.counters[n]) for s in summary])
    return table


def comparison_table(comparisons: list[bench.Comparison], counter: str | None = None):
    from rich.table import Table

    if not comparisons:
        return None
    c0 = comparisons[0]
    what = (f"ratio of median wall times ({c0.a}/{c0.b}; < 1: {c0.a} faster)" if counter is None
            else f"ratio of median {counter} ({c0.a}/{c0.b})")
    table = Table(title=f"{c0.a} vs {c0.b}: {what}")
    for col in ("variant", "ratio", "95% CI", "trust"):
        table.add_column(col, justify="right" if col in ("ratio", "95% CI") else "left")
    for c in comparisons:
        ratio = "-" if c.ratio is None else f"{c.ratio:.3f}"
        ci = "-" if c.ci_low is None else f"{c.ci_low:.3f} .. {c.ci_high:.3f}"
        table.add_row(c.variant, ratio, ci, c.trust if c.trust == "ok" else f"[yellow]{c.trust}[/]")
    return table


def note_paths(outcome: BenchOutcome) -> None:
    if outcome.inputs.get("modules_out_of_tree") is not None:
        ui.note("patched modules loaded in the guest (out of tree): "
                + ", ".join(outcome.inputs["modules_out_of_tree"]))
    if outcome.console_log:
        ui.note(f"console log: {outcome.console_log}")
    plot = ", plot.png" if (outcome.results.parent / "plot.png").exists() else ""
    ui.note(f"results: {outcome.results} (+ records.csv{plot})")
