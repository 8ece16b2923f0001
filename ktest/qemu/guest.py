"""One guest run: pick the kernel and modules, build the initramfs, boot, judge."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .. import kbuild, kernels, tools, ui
from ..kernels import debian_release
from ..errors import BootError, TreeError
from . import boot as qboot
from . import initramfs as irfs
from . import pvh

# What the guest loads with --modules kmod: the NIC driver stack and the
# vhost backends.  Their dependencies come along in load order.
DEFAULT_MODULES = ["virtio_pci", "virtio_net", "vhost_net", "vhost_test"]


@dataclass
class GuestSpec:
    cmd: list[str] | str
    kernel: str = "auto"              # "auto", "debian", "built" or a bzImage path
    patched: dict[str, Path] = field(default_factory=dict)   # module name -> built .ko
    modules: list[str] = field(default_factory=lambda: list(DEFAULT_MODULES))
    payload: dict[str, Path] = field(default_factory=dict)
    host_programs: list[str] = field(default_factory=list)   # host binaries (with libs) the guest needs
    accel: str | None = None          # None: probe
    smp: int = 2
    mem: str = "1G"
    net: bool = True
    nic_opts: list[str] = field(default_factory=list)
    timeout: float = 300.0
    allow_warn: bool = False
    verbose: bool = False
    echo_output: bool = False
    pvh: bool = True                  # boot the unpacked vmlinux through its PVH entry when it has one
    optional: list[str] = field(default_factory=list)        # of ``modules``: skipped where the kernel lacks them


BUILD_HINT = "ktest build --kernel"


def series_modules() -> set[str]:
    """The modules ``ktest build --kmod`` builds for the prepared tree (none without one)."""
    from .. import kmod, tree

    try:
        t = tree.current()
    except TreeError:
        return set()
    return set(kmod.kbuild_modules(kmod.module_list(t).kbuild))


def builtin_conflicts(release: str, patched, root: Path | None = None) -> list[str]:
    """Patched modules the kernel has built in: loading them fails (duplicate
    symbols) or, when nothing depends on them, is skipped while the built-in
    code runs: either way the guest would not run the series."""
    return sorted(set(patched) & kernels.builtin_modules(release, root))


def refuse_builtin(kernel: Path, release: str, patched) -> None:
    """BootError if the kernel has one of the patched modules built in."""
    blocked = builtin_conflicts(release, patched, module_dir(kernel))
    if blocked:
        raise BootError(f"the guest kernel {release} ({kernel}) has {', '.join(blocked)} built in: "
                        "the patched build cannot be loaded in its place",
                        hint=f"Boot a kernel that has them as modules (the default --kernel auto takes one "
                             f"ktest built of this tree: {BUILD_HINT}), or --modules none")


@dataclass
class AutoKernel:
    """What ``--kernel auto`` finds for the prepared tree."""
    debian: str                       # Debian's release for the tree
    version: str                      # the tree's Linux version ("" where nothing is blocked)
    blocked: list[str]                # patched modules Debian's kernel has built in
    own: kbuild.KernelBuild | None    # ktest's build of the tree's version, if any

    @property
    def needs_build(self) -> bool:
        """Debian's kernel cannot load the series and ktest has built no kernel to boot instead."""
        return bool(self.blocked) and self.own is None


def auto_kernel(patched=None) -> AutoKernel:
    """The ``--kernel auto`` decision, before anything is built or refused
    (``patched``: the patched modules' names; None: those the series builds)."""
    from .. import tree

    release = debian_release()
    blocked = builtin_conflicts(release, series_modules() if patched is None else patched)
    if not blocked:     # Debian's kernel it is, prepared tree or not (--modules none needs none)
        return AutoKernel(release, "", [], None)
    version = tree.current().version
    return AutoKernel(release, version, blocked, kbuild.find_release(version, list(kbuild.DEFAULT_FRAGMENTS)))


def resolve_kernel(kernel: str, patched=None) -> tuple[Path, str]:
    """(image, release) of the guest kernel.

    "auto" (the default): Debian's kernel for the prepared tree when it can
    load the patched modules (``patched``: their names; None: the modules
    the series builds), else the kernel ktest built of the tree's version
    (Debian's 6.12 has virtio and virtio_ring built in, where 6.1 had them
    as modules), else a BootError saying how to build one (ktest boot, run
    and bench build it first: job.ensure_guest_kernel).
    """
    if kernel == "auto":
        auto = auto_kernel(patched)
        if not auto.blocked:
            return kernels.image(auto.debian), auto.debian
        if auto.own is not None:
            return auto.own.bzimage, auto.own.release
        blocked = auto.blocked
        one = len(blocked) == 1
        raise BootError(f"Debian's kernel {auto.debian} has {', '.join(blocked)} built in, so the patched "
                        f"{'module cannot replace it' if one else 'modules cannot replace them'}, "
                        f"and ktest has built no Linux {auto.version} kernel to boot instead",
                        hint=f"Build one from the tree once: {BUILD_HINT}\n"
                             "or boot Debian's kernel without the patched modules: --modules none")
    if kernel == "debian":
        release = debian_release()
        return kernels.image(release), release
    if kernel == "built":
        kb = kbuild.last()
        return kb.bzimage, kb.release
    path = Path(kernel)
    qboot.check_kernel(path)
    return path, kbuild.image_release(path)


def module_dir(kernel: Path) -> Path | None:
    """A ktest-built kernel's modules_install tree; None: /lib/modules/<release>."""
    kb = kbuild.for_image(kernel)
    return kb.module_dir if kb else None


def prepare(spec: GuestSpec) -> tuple[qboot.BootSpec, irfs.Initramfs]:
    tools.require(tools.BOOT)
    kernel, release = resolve_kernel(spec.kernel, spec.patched if spec.modules else ())
    qboot.check_kernel(kernel)
    mdir = module_dir(kernel)
    if spec.modules:
        refuse_builtin(kernel, release, spec.patched)
    # The program's channel (a virtio-serial port) needs virtio_console,
    # whatever else the guest loads; resolve_modules() drops duplicates.
    wanted = [*spec.modules, *irfs.channel_modules(release, mdir)]
    skipped: list[str] = []
    mods = irfs.resolve_modules(wanted, spec.patched, release, mdir, spec.optional, skipped) if wanted else []
    if skipped:
        ui.note(f"{', '.join(skipped)}: not a module of {release} (out of tree only), not loaded")
    irfs.check_vermagic(mods, release)
    rootfs: dict[str, Path] = {}
    for name in spec.host_programs:
        rootfs.update(irfs.host_program(name))
    img = irfs.build(spec.cmd, mods, spec.payload, net=spec.net, rootfs=rootfs)
    unpacked = pvh.pvh_image(kernel) if spec.pvh else None
    image = unpacked or kernel
    accel = spec.accel or qboot.probe_accel(image)
    return qboot.BootSpec(image, img.path, img.nonce, accel=accel, smp=spec.smp, mem=spec.mem,
                          net=spec.net, timeout=spec.timeout, nic_opts=spec.nic_opts,
                          source=kernel if unpacked is not None and unpacked != kernel else None), img


SHELL_SCRIPT = "echo 'ktest: guest shell; exit or Ctrl-D powers off, Ctrl-A X kills QEMU'\nsetsid cttyhack sh -l\n"


def shell(spec: GuestSpec) -> int:
    spec.cmd = SHELL_SCRIPT
    bspec, _ = prepare(spec)
    return qboot.shell(bspec)


def run(spec: GuestSpec, *, keep: list | None = None) -> qboot.BootResult:
    """Boot and run; raise BootError for anything but a clean run of the command.

    ``keep``: a list that receives the BootResult before any error is
    raised, so a caller can save what the guest did before it failed.
    """
    bspec, img = prepare(spec)
    patched = [m.name for m in img.modules if m.patched]
    with ui.step(f"booting {bspec.label} under {bspec.accel.upper()}"
                 f"{' with patched ' + ', '.join(patched) if patched else ''}"):
        res = qboot.boot(bspec, verbose=spec.verbose, echo_output=spec.echo_output)
    if keep is not None:
        keep.append(res)
    why = qboot.describe_failure(res, allow_warn=spec.allow_warn, timeout=spec.timeout)
    if why is not None:
        raise BootError(why, log=res.console_log)
    if res.findings:
        qboot.print_findings(res)
    # Prove the guest runs our build: an out-of-tree module taints "O".
    taint = res.console.taint if res.console else {}
    ours = res.console.out_of_tree() if res.console else []
    stock = [m for m in patched if m not in ours]
    if stock:
        raise BootError(f"the guest did not load the patched build of {', '.join(stock)} "
                        f"(taint flags: {', '.join(taint.get(m, '?') for m in stock)})",
                        log=res.console_log)
    return res
