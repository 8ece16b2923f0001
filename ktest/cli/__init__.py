"""The ``ktest`` command: parse arguments, call the stage modules, print.

One small ``cmd_*`` function per command, as in b4, in one module per
command group (each with its own parser builder, ``add``); the work is in
the stage modules.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape

from .. import project, ui
from ..errors import KtestError
from . import benchcmd, bootcmd, buildcmd, mailcmd, seriescmd, setup

GROUPS = (setup, seriescmd, buildcmd, bootcmd, benchcmd, mailcmd)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ktest", description="Carry a virtio patch series from quilt to QEMU numbers.")
    ap.add_argument("--patches", dest="top_patches", type=Path, metavar="DIR",
                    help="the series' patch directory (default: patches/ of the first directory from here "
                         "upward that has patches/series; then KTEST_PATCHES, QUILT_PATCHES)")
    sub = ap.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    project.select(args.top_patches or getattr(args, "patches", None))
    try:
        return args.func(args)
    except KtestError as e:
        ui.err.print(f"[bold red]ktest:[/] {escape(e.message)}", highlight=False)
        if e.hint:
            ui.err.print(e.hint, highlight=False, markup=False)
        if e.log:
            ui.err.print(f"log: {e.log}", highlight=False, markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        ui.err.print("ktest: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
