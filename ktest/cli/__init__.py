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
from . import benchcmd, bootcmd, buildcmd, lavacmd, mailcmd, seriescmd, setup

GROUPS = (setup, seriescmd, buildcmd, bootcmd, benchcmd, lavacmd, mailcmd)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ktest", description="Carry a virtio patch series from quilt to QEMU numbers.")
    ap.add_argument("--patches", dest="top_patches", type=Path, metavar="DIR",
                    help="the series' patch directory (default: patches/ of the first directory from here "
                         "upward that has patches/series; then KTEST_PATCHES, QUILT_PATCHES)")
    sub = ap.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add(sub)
    return ap


# Commands that read the tree hold its lock shared for their whole run, so a
# series apply cannot move the branch under them (writers lock it themselves);
# boot locks only around the module build it may do (bootcmd._guest_spec).
READERS = {"build", "bench", "mail", "series check", "series export", "series status"}


def _add_wait_option(ap: argparse.ArgumentParser) -> None:
    """--wait SECONDS on every command: how long to wait for the tree's lock."""
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                _add_wait_option(p)
            return
    ap.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for the tree's lock when another ktest holds it (default: 0)")


def _tree_lock(args):
    import contextlib

    from .. import tree
    from .common import reading

    name = " ".join(filter(None, [args.command, getattr(args, f"{args.command}_command", None)]))
    if not (name in READERS or args.command in READERS) or name == "bench compare":
        return contextlib.nullcontext()
    return reading(tree.current(), name)


def _report(e: KtestError) -> None:
    ui.err.print(f"[bold red]ktest:[/] {escape(e.message)}", highlight=False)
    if e.hint:
        ui.err.print(e.hint, highlight=False, markup=False)
    if e.log:
        ui.err.print(f"log: {e.log}", highlight=False, markup=False)


def main(argv: list[str] | None = None) -> int:
    from .. import lock
    from ..run import Interrupted, install_signal_handlers

    ap = parser()
    _add_wait_option(ap)
    args = ap.parse_args(argv)
    install_signal_handlers()
    lock.set_default_wait(args.wait)
    # A command's own --patches is the one it reads its series from; the global one is for the rest.
    project.select(getattr(args, "patches", None) or args.top_patches)
    try:
        with _tree_lock(args):
            return args.func(args)
    except KtestError as e:
        _report(e)
        return e.exit_code
    except OSError as e:
        from ..errors import from_os_error

        _report(from_os_error(e))
        return 1
    except Interrupted as e:
        ui.err.print(f"ktest: interrupted ({e}); nothing left running")
        return e.exit_code
    except KeyboardInterrupt:
        ui.err.print("ktest: interrupted")
        return 130
    finally:
        # This call's --patches and --wait are its own (main may be called again in-process).
        project.select(None)
        lock.set_default_wait(0.0)


if __name__ == "__main__":
    sys.exit(main())
