"""ktest build, ktest config: kernels, modules, guest programs, .config."""
from __future__ import annotations

import shlex
from pathlib import Path

from .. import build, tree, ui
from .common import positive


def _print_config(res) -> None:
    for o in res.overrides:
        ui.note(f"CONFIG_{o.symbol}: {o.old_where} asks for {o.old}, {o.new_where} for {o.new}: "
                f"the last one wins ({o.new})")
    for m in res.mismatches:
        ui.err.print(f"[red]{m.where}:[/] CONFIG_{m.symbol}: requested {m.requested}, got {m.actual}: {m.reason}")
        if m.hint:
            ui.err.print(f"    set instead: {m.hint}", markup=False)
    ui.note(f"{len(res.requests)} requested symbols, {len(res.mismatches)} not met "
            f"({'unchanged inputs, not reloaded' if res.cached else f'{res.symbols} symbols'}, {res.seconds:.1f} s)")


def _fragments(args) -> list:
    from .. import kbuild

    return args.fragment if args.fragment or args.base != "tinyconfig" else list(kbuild.DEFAULT_FRAGMENTS)


def _kernel_config(args, t):
    from .. import kbuild, kconfig

    return kconfig.configure(t, args.base, _fragments(args), out=args.out, cc=kbuild.default_cc())


def cmd_config(args) -> int:
    res = _kernel_config(args, tree.current())
    _print_config(res)
    print(res.config)
    return 1 if res.mismatches else 0


def _cmd_build_kernel(args, t) -> int:
    from .. import kbuild, kconfig

    inputs = {}
    if args.config:
        build_dir = args.config
    elif args.dry_run:
        build_dir = args.out or kconfig.default_build_dir(args.base, _fragments(args))
    else:
        res = _kernel_config(args, t)
        if res.mismatches:
            _print_config(res)
            raise kconfig.ConfigError(f"{len(res.mismatches)} requested config value(s) not met in {res.config}",
                                      hint="Fix the fragments, or build that .config anyway with --config DIR.")
        build_dir = res.build_dir
        inputs = {"base": res.base, "fragments": [str(f) for f in res.fragments]}
    if args.dry_run:
        print(shlex.join(kbuild.make_argv(t, build_dir, "bzImage", "modules", jobs=args.jobs)))
        print(shlex.join(kbuild.make_argv(t, build_dir, "modules_install", jobs=args.jobs))
              + " INSTALL_MOD_PATH=<artifacts>/modules")
        return 0
    kb = kbuild.build_kernel(t, build_dir, jobs=args.jobs, force=args.force, inputs=inputs)
    print(kb.bzimage)
    ui.note(f"Linux {kb.release}{' (cached)' if kb.cached else f' built in {kb.seconds:.1f} s'}; "
            f"modules {kb.module_dir}; log {kb.log}; metadata {kb.metadata}; warnings {len(kb.warnings)}")
    return 0


def cmd_build(args) -> int:
    t = tree.current()
    if args.kernel:
        return _cmd_build_kernel(args, t)
    if args.tools:
        res = build.build_tools(t)
    else:
        release = args.release
        if release is None:
            # The guest's headers, as ktest boot would pick the guest: on 6.12,
            # whose image has virtio_ring built in, the kernel ktest builds.
            from .. import job

            release = job.guest_kernel(t)[1]
        res = build.build_kmod(t, release)
    for a in res.artifacts:
        print(a)
    ui.note(f"log: {res.log}  metadata: {res.metadata}  warnings: {len(res.warnings)}")
    return 0


def _add_kconfig_options(p) -> None:
    p.add_argument("--base", default="tinyconfig",
                   help="tinyconfig (default), defconfig, distro (Debian's /boot/config-*) or a .config file")
    p.add_argument("-f", "--fragment", action="append", default=[], metavar="FRAGMENT",
                   help="a config fragment, applied in order after the base (repeatable; "
                        "default with tinyconfig: ktest's guest fragments)")
    p.add_argument("--out", type=Path, metavar="BUILD_DIR", help="build directory for .config (default: in the cache)")


def add(sub) -> None:
    """Add this group's commands to the top-level subparsers."""
    p = sub.add_parser("build", help="build the patched modules (out of tree) or the guest tools")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--kmod", action="store_true", help="the modules in kmod/ (default)")
    g.add_argument("--tools", action="store_true", help="tools/virtio/ringtest and guest helpers")
    g.add_argument("--kernel", action="store_true", help="the whole kernel (make O=..., ccache, cached)")
    p.add_argument("--release", help="kernel release to build against (default: the guest --kernel auto "
                                     "boots: Debian's image, or the kernel ktest builds where that image "
                                     "has a patched module built in; a release ktest built: its build dir)")
    p.add_argument("--config", type=Path, metavar="BUILD_DIR", help="with --kernel: build this dir's .config")
    _add_kconfig_options(p)
    p.add_argument("-j", "--jobs", type=positive(int), help="with --kernel: make -j (default: the number of cores)")
    p.add_argument("--force", action="store_true", help="with --kernel: run make even if the kernel is cached")
    p.add_argument("--dry-run", action="store_true", help="with --kernel: print the make commands")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("config", help="write a kernel .config from a base and fragments (kconfiglib)")
    _add_kconfig_options(p)
    p.set_defaults(func=cmd_config)
