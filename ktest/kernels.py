"""The Debian kernels installed on this machine: image plus matching headers."""
from __future__ import annotations

import glob
import re
from pathlib import Path

from .errors import BuildError, TreeError

BOOT = Path("/boot")
MODULES = Path("/lib/modules")


def release_key(rel: str) -> list:
    """Sort key for kernel releases: 6.1.0-10-amd64 < 6.1.0-9-amd64 is wrong as text, right here."""
    return [int(x) if x.isdigit() else x for x in re.split(r"[.+-]", rel)]


def debian_release(version: str | None = None) -> str:
    """Release of the Debian kernel image that boots by default.

    The newest /boot/vmlinuz-* whose headers are installed, so that the
    modules built against those headers load into it, of the same
    major.minor as ``version`` (default: the prepared tree's, else the
    default source package's): with 6.1 and 6.12 both installed, a 6.1
    tree's modules are never built against 6.12's headers.  Raises
    BuildError naming the packages when there is none.
    """
    from . import tree as _tree

    if version is None:
        try:
            version = _tree.current().version
        except TreeError:
            version = _tree.DEFAULT_DEBIAN
    mm = ".".join(version.split(".")[:2])
    candidates = []
    for vmlinuz in glob.glob(str(BOOT / "vmlinuz-*")):
        rel = vmlinuz.split("vmlinuz-", 1)[1]
        if (MODULES / rel / "build" / "Makefile").exists():
            candidates.append(rel)
    candidates = [c for c in candidates if c.startswith(mm + ".")]
    if not candidates:
        pkgs = "linux-image-amd64 linux-headers-amd64" if mm == "6.1" else \
            f"linux-image-{mm}-amd64 linux-headers-{mm}-amd64"
        raise BuildError(
            f"no Debian {mm} kernel with matching headers (/boot/vmlinuz-{mm}.* and /lib/modules/{mm}.*/build)",
            hint=f"Install them with: apt-get install {pkgs} (scripts/setup-host does)",
        )
    return sorted(candidates, key=release_key)[-1]


def image(release: str) -> Path:
    return BOOT / f"vmlinuz-{release}"


def builtin_modules(release: str, root: Path | None = None) -> set[str]:
    """Names of the modules a kernel has built in (its modules.builtin), e.g.
    {'virtio', 'virtio_ring', 'virtio_pci'} for Debian's 6.12, where 6.1 had
    them as modules.  ``root``: a ktest-built kernel's modules_install tree."""
    f = (root or MODULES / release) / "modules.builtin"
    try:
        lines = f.read_text().split()
    except OSError:
        return set()
    return {Path(ln).name.removesuffix(".ko").replace("-", "_") for ln in lines}
