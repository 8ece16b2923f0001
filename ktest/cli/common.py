"""What several command groups share."""
from __future__ import annotations

import argparse
import contextlib
import re

from ..errors import KtestError


def nic_opts(args) -> list[str]:
    opts = getattr(args, "nic_opt", [])
    for o in opts:
        if not re.fullmatch(r"[a-z0-9_-]+=[A-Za-z0-9_.:-]+", o):
            raise KtestError(f"--nic-opt {o!r} is not PROP=VALUE (a virtio-net-pci property)",
                             hint="qemu-system-x86_64 -device virtio-net-pci,help lists them")
    if opts and args.net != "user":
        raise KtestError("--nic-opt needs the NIC: drop --net none")
    return opts


def positive(kind):
    """An argparse type: a number above 0, so that `--run-cycles 0` stops here,
    before anything is built or booted."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


@contextlib.contextmanager
def reading(t, what: str):
    """Hold the tree's lock shared for ``what``, after finishing an apply that was
    cut off (a reader must not build a half-moved branch; the finish writes, so
    it takes the lock exclusively first)."""
    from .. import lock, series

    if series.unfinished(t):
        with lock.held(t, f"{what}: finishing an interrupted series apply"):
            series.recover(t)
    with lock.held(t, what, shared=True):
        yield
