"""What several command groups share."""
from __future__ import annotations

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
