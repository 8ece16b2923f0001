"""ktest boot: a kernel in QEMU, a command in it."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .. import build, job, tree, ui
from ..errors import KtestError
from .common import nic_opts as _nic_opts, positive, reading


def _guest_spec(args, cmd):
    from ..qemu import guest

    patched = {}
    if args.modules == "kmod":
        t = tree.current()
        with reading(t, "boot"):
            image, release = guest.resolve_kernel(args.kernel)
            # Before building: modpost refuses the built-in duplicates
            # (virtio_ring against Debian's 6.12), a minute and more for nothing.
            guest.refuse_builtin(image, release, guest.series_modules())
            patched = job.patched_modules(build.build_kmod(t, release))
    modules = list(guest.DEFAULT_MODULES) if args.modules != "none" else []
    for path in args.extra_module:
        name = path.name.split(".ko")[0].replace("-", "_")
        patched[name] = path
        modules.append(name)
    modules += [m.replace("-", "_") for m in args.load]
    payload = {}
    for f in args.file:
        if not f.is_file():
            raise KtestError(f"--file {f}: no such file")
        payload[f"bin/{f.name}"] = f.resolve()
    return guest.GuestSpec(payload=payload, 
        cmd=cmd, kernel=args.kernel, patched=patched, modules=modules, host_programs=args.host_program,
        accel=args.accel, smp=args.smp, mem=args.mem, net=args.net == "user", nic_opts=_nic_opts(args),
        timeout=args.timeout, allow_warn=args.allow_warn, verbose=args.verbose, echo_output=True,
        pvh=not args.bzimage,
        # The kernel's own modules: vhost_test only ever builds out of tree;
        # one named with --load stays required.
        optional=[m for m in guest.DEFAULT_MODULES if m not in args.load] if args.modules == "stock" else [])


def cmd_boot(args) -> int:
    from ..qemu import boot as qboot
    from ..qemu import guest

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.modules == "kmod" and (cmd or args.shell):
        # --kernel auto where Debian's kernel has a patched module built in:
        # the guest is a kernel ktest builds of the tree, first time only.
        t = tree.current()
        with reading(t, "boot"):
            if job.ensure_guest_kernel(t, args.kernel, dry_run=args.dry_run) and args.dry_run:
                return 0
    if args.shell:
        if cmd:
            raise KtestError("--shell takes no command")
        spec = _guest_spec(args, [])
        if args.timeout == 300.0:
            spec.timeout = 4 * 3600.0
        return guest.shell(spec)
    if not cmd:
        raise KtestError("no command to run in the guest", hint="Usage: ktest boot [options] -- CMD [ARGS]")
    spec = _guest_spec(args, cmd)
    if args.dry_run:
        if spec.accel is None:
            spec.accel = "tcg"
            ui.note("(dry run: accelerator not probed, showing TCG)")
        bspec, img = guest.prepare(spec)
        print(shlex.join(qboot.qemu_argv(bspec)))
        for e in img.entries:
            print(f"  {e}")
        return 0
    res = guest.run(spec)
    ui.note(f"guest exit status {res.exit_status} after {res.seconds:.1f} s; console log {res.console_log}")
    return res.exit_status or 0


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
    p = sub.add_parser("boot", help="boot a kernel in QEMU and run CMD in it")
    p.add_argument("--kernel", default="auto",
                   help="auto (default: Debian's kernel for the tree if the patched modules can load into it, "
                        "else the kernel ktest built of the tree), debian, built (the last ktest build --kernel), "
                        "or a bzImage path")
    p.add_argument("--modules", choices=["kmod", "stock", "none"], default="kmod",
                   help="patched modules from kmod/ (default), the kernel's own, or none")
    p.add_argument("--smp", type=positive(int), default=2)
    p.add_argument("--mem", default="1G")
    p.add_argument("--net", choices=["user", "none"], default="user")
    p.add_argument("--nic-opt", action="append", default=[], metavar="PROP=VALUE",
                   help="a property of QEMU's virtio-net-pci device, e.g. event_idx=off, mrg_rxbuf=off; repeatable")
    p.add_argument("--timeout", type=positive(float), default=300.0, help="seconds before the guest is killed")
    p.add_argument("--accel", choices=["kvm", "tcg"], help="skip the accelerator probe")
    p.add_argument("--allow-warn", action="store_true", help="a kernel WARNING does not fail the boot")
    p.add_argument("--dry-run", action="store_true", help="print the QEMU command and initramfs contents")
    p.add_argument("--extra-module", type=Path, action="append", default=[], metavar="KO",
                   help="also load this .ko (after its dependencies); repeatable")
    p.add_argument("--load", action="append", default=[], metavar="MODULE",
                   help="also load this module by name (the patched build if kmod/ has it); repeatable")
    p.add_argument("--file", action="append", default=[], type=Path, metavar="PATH",
                   help="copy this file into the guest as /ktest/bin/NAME (a program the tools build made, a "
                        "script); repeatable")
    p.add_argument("--host-program", action="append", default=[], metavar="NAME",
                   help="copy this host program and its libraries into the guest (e.g. vdpa); repeatable")
    p.add_argument("--bzimage", action="store_true",
                   help="boot the bzImage through the BIOS (default: its unpacked vmlinux through the PVH entry, "
                        "which skips ~2 s of BIOS and decompression under TCG)")
    p.add_argument("--shell", action="store_true", help="an interactive guest shell instead of CMD")
    p.add_argument("-v", "--verbose", action="store_true", help="show the guest console live")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    p.set_defaults(func=cmd_boot)
