"""Run a kernel + initramfs under QEMU and turn the console into a result."""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths, ui
from ..errors import BootError
from ..run import Stream, run
from ..run import interactive as run_interactive
from . import initramfs as irfs
from .console import Console, Finding, ProgramOutput

QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
# The virtio-serial port the program's stdout/stderr and exit status use;
# the guest's init finds it by this name in /sys/class/virtio-ports.
PROGRAM_PORT = "ktest.out"


@dataclass
class BootSpec:
    kernel: Path
    initrd: Path
    nonce: str
    accel: str = "tcg"
    smp: int = 2
    mem: str = "1G"
    net: bool = True
    timeout: float = 300.0
    append: str = ""
    nic_opts: list[str] = field(default_factory=list)   # virtio-net-pci properties, e.g. event_idx=off
    source: Path | None = None    # the bzImage ``kernel`` was unpacked from, when booting its PVH entry

    @property
    def label(self) -> str:
        return f"{self.source.name} (PVH)" if self.source else self.kernel.name


@dataclass
class BootResult:
    exit_status: int | None
    console_log: Path
    findings: list[Finding]
    accel: str
    seconds: float
    output: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    timed_out: bool = False
    console: Console | None = None


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise BootError(f"{QEMU} not found", hint=f"Install it with: apt-get install {QEMU_PACKAGE}")
    return path


def check_kernel(kernel: Path) -> None:
    if not kernel.exists():
        raise BootError(f"kernel image {kernel} does not exist")
    with open(kernel, "rb") as f:
        head = f.read(0x210)
    # A bzImage carries the "HdrS" boot protocol magic at offset 0x202.
    if len(head) < 0x206 or head[0x202:0x206] != b"HdrS":
        raise BootError(f"{kernel} is not a bzImage (no x86 boot header)")


def qemu_argv(spec: BootSpec, program_out: str = "/dev/stdout") -> list[str]:
    """QEMU's command line; ``program_out`` is where the program's channel goes
    (boot() passes a pipe; by hand, the terminal, after the console)."""
    append = " ".join(filter(None, [
        "console=ttyS0", "panic=-1", "loglevel=5", "no_timer_check", "tsc=unstable",
        "rdinit=/init",
        # PCI interrupt links routed by ACPI's AML interpreter cost ~0.4 s of
        # a 2.5 s TCG boot (6.12: two link evaluations of ~0.2 s each); the
        # virtio devices use MSI-X, and INTx still works through the BIOS's
        # $PIR table on QEMU's i440fx.
        "acpi=noirq",
        # Under TCG a vCPU can stall for tens of seconds when the host is
        # busy: that is no kernel bug, so raise the soft lockup threshold
        # to its maximum (2 x 60 s) instead of reporting it.
        "watchdog_thresh=60" if spec.accel == "tcg" else "",
        spec.append,
    ]))
    argv = [
        QEMU, "-accel", spec.accel,
        "-cpu", "host" if spec.accel == "kvm" else "max",
        "-smp", str(spec.smp), "-m", spec.mem,
        "-kernel", str(spec.kernel), "-initrd", str(spec.initrd),
        "-append", append,
        "-display", "none", "-vga", "none", "-serial", "stdio", "-monitor", "none",
        "-no-reboot", "-nodefaults",
        "-device", "virtio-serial-pci,id=ktest-serial",
        "-chardev", f"file,id=ktest-out,path={program_out},append=on",
        "-device", f"virtserialport,bus=ktest-serial.0,chardev=ktest-out,name={PROGRAM_PORT}",
    ]
    if spec.net:
        argv += ["-netdev", f"user,id=n0,net={irfs.GUEST_NET},host={irfs.GUEST_GATEWAY},dns={irfs.GUEST_DNS}",
                 "-device", ",".join(["virtio-net-pci", "netdev=n0", *spec.nic_opts])]
    else:
        argv += ["-nic", "none"]
    return argv


def boot(spec: BootSpec, *, log: Path | None = None, verbose: bool = False,
         echo_output: bool = False) -> BootResult:
    """Boot once.  Always returns with QEMU gone; never raises for guest faults.

    Two channels: the console (QEMU's stdout) is the kernel's, the pipe
    behind the virtio-serial port the program's.  Both go to ``log`` in
    the order they arrive, the program's lines marked "prog| ".
    """
    log = log or paths.logs() / f"boot-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    console = Console(spec.nonce)
    program = ProgramOutput(spec.nonce)
    start = time.monotonic()
    timed_out = False
    rfd, wfd = os.pipe()
    try:
        argv = qemu_argv(spec, f"/proc/self/fd/{wfd}")
        argv[0] = qemu_binary()
        with open(log, "w") as logf, Stream(argv, pass_fds=[wfd]) as proc:
            os.close(wfd)
            wfd = -1
            logf.write("$ " + " ".join(argv) + "\n")

            def show(lines: list[str]) -> None:
                if echo_output and not verbose:
                    for ln in lines:
                        print(ln, flush=True)

            deadline = [start + spec.timeout]
            finishing = False
            for item in proc.channels(lambda: deadline[0], {"program": rfd}):
                if item is None:
                    timed_out = not finishing
                    break
                chan, line = item
                if chan == "program":
                    logf.write(f"prog| {line}\n")
                    show(program.feed(line))
                    if verbose:
                        ui.err.print(f"prog| {line}", markup=False)
                else:
                    logf.write(line + "\n")
                    show(console.feed(line))
                    if verbose:
                        ui.err.print(line, markup=False)
                logf.flush()
                if not finishing and (program.done or console.done):
                    # The guest powers off right after the marker; give it a
                    # moment to flush reports, but never wait long.
                    finishing = True
                    deadline[0] = min(deadline[0], time.monotonic() + 5)
            show(program.finish())
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)
    if console.program is not None:     # the guest had no port: the console carried the program
        program = console.program
    status = program.exit_status if program.exit_status is not None else console.exit_status
    return BootResult(status, log, console.findings, spec.accel, time.monotonic() - start,
                      program.output, console.loaded, timed_out, console)


def shell(spec: BootSpec) -> int:
    """An interactive console on this terminal: Ctrl-A X leaves QEMU."""
    argv = qemu_argv(spec)
    argv[0] = qemu_binary()
    # mon:stdio multiplexes the monitor, so Ctrl-C goes to the guest.
    argv[argv.index("-serial") + 1] = "mon:stdio"
    i = argv.index("-monitor")
    del argv[i:i + 2]
    return run_interactive(argv, timeout=spec.timeout)


# --- accelerator ----------------------------------------------------------

def _machine_key() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    qemu = run([qemu_binary(), "--version"], timeout=30).stdout.splitlines()[0]
    raw = f"{platform.node()}|{platform.release()}|{cpu}|{qemu}"
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def probe_accel(kernel: Path, *, timeout: float = 20.0, force: bool = False) -> str:
    """KVM if a short bounded boot under KVM reaches init, else TCG.

    The answer is cached per machine (CPU, host kernel, QEMU version): on
    machines where KVM exists but guests hang, only the first run pays for
    the probe.
    """
    key = f"accel.m{_machine_key()}"
    if not force:
        cached = paths.get_setting(key)
        if cached in ("kvm", "tcg"):
            return cached
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        paths.set_setting(key, "tcg")
        return "tcg"
    img = irfs.build(["true"], [], net=False)
    spec = BootSpec(kernel, img.path, img.nonce, accel="kvm", smp=1, mem="256M", net=False,
                    timeout=timeout)
    with ui.step(f"probing KVM with a {timeout:g} s boot"):
        res = boot(spec, log=paths.logs() / "accel-probe.log")
    accel = "kvm" if res.exit_status == 0 else "tcg"
    paths.set_setting(key, accel)
    if accel == "tcg":
        why = (f"did not reach init within {timeout:g} s" if res.timed_out else
               "failed: " + (res.console.lines[-1] if res.console and res.console.lines else "no output"))
        ui.note(f"KVM probe boot {why} ({res.console_log}); using TCG")
    return accel


def describe_failure(res: BootResult, *, allow_warn: bool = False, timeout: float | None = None) -> str | None:
    """The reason a boot failed, or None when it did not.

    A kernel bug report fails the boot even when the command succeeded.
    """
    c = res.console
    bad = [f for f in res.findings if allow_warn is False or f.kind != "warn"]
    if bad:
        text = "\n\n".join(f"{f.kind.upper()}:\n{f.render()}" for f in bad)
        return f"the guest kernel reported {len(bad)} problem(s):\n{text}"
    if c is not None and c.failed_module:
        tail = "\n".join(c.lines[-8:])
        return f"module {c.failed_module} failed to load in the guest:\n{tail}"
    if c is not None and c.not_found:
        return (f"command '{c.not_found}' not found in the guest "
                "(PATH is /bin:/ktest/bin:/usr/sbin:/usr/bin:/sbin; busybox provides /bin, payload files are under /ktest)")
    tail = "\n".join((c.lines if c else [])[-15:])
    if res.output:
        tail += "\nlast lines of the program's output:\n" + "\n".join(res.output[-10:])
    if res.timed_out:
        return f"timed out after {timeout or 0:g} s; last console lines:\n{tail}"
    if res.exit_status is None:
        return f"the guest stopped without reporting an exit status; last console lines:\n{tail}"
    return None


def print_findings(res: BootResult) -> None:
    for f in res.findings:
        ui.err.print(f"[red]{f.kind.upper()}[/] in guest console (line {f.lineno}):", highlight=False)
        ui.err.print(f.render(), markup=False)
    sys.stderr.flush()
