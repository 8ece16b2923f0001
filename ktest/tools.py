"""The registry of everything outside Python that ktest runs or reads.

One entry per program or file, with the Debian package that provides it
and the stages that need it.  ``ktest doctor`` prints the whole table;
each stage calls ``require(stage)`` before it starts, so a missing program
reads "rsync not found (Debian package rsync; run scripts/setup-host)"
instead of a make error forty seconds in.  A fast-tier test checks that
``scripts/setup-host`` installs the package of every entry.
"""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass

from .errors import ToolMissing

# Stages, as the commands name them.
TREE, SERIES, KMOD, TOOLS, KERNEL, BOOT, MAIL, CHECK, FULLCHECK, LAVA = \
    "tree", "series", "kmod", "tools", "kernel", "boot", "mail", "check", "series check --full", "lava"


@dataclass(frozen=True)
class Tool:
    name: str                 # a program on PATH, or a file path (glob) when it starts with "/"
    package: str              # the Debian package that provides it
    why: str
    stages: tuple[str, ...]
    required: bool = True     # False: only some commands or options need it

    def found(self) -> str | None:
        """Where it is on this machine, or None."""
        if self.name.startswith("/"):
            hits = sorted(glob.glob(self.name))
            return hits[-1] if hits else None
        return shutil.which(self.name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


REGISTRY: tuple[Tool, ...] = (
    Tool("git", "git", "trees, series branches, apply and export", (TREE, SERIES, KMOD, TOOLS, CHECK, MAIL)),
    Tool("tar", "tar", "extracting the kernel source, staging sources", (TREE, TOOLS)),
    Tool("xz", "xz-utils", "the kernel source tarball", (TREE,)),
    Tool("/usr/src/linux-source-6.12.tar.xz", "linux-source-6.12", "the default kernel tree (6.12.118)", (TREE,)),
    Tool("/usr/src/linux-source-6.1.tar.xz", "linux-source-6.1", "ktest tree prepare --debian 6.1", (TREE,),
         False),
    Tool("quilt", "quilt", "checking that quilt push -a applies the series (the tests do)", (SERIES,), False),
    Tool("make", "make", "every kernel, module and tools build", (KMOD, TOOLS, KERNEL)),
    Tool("gcc", "gcc", "the compiler", (KMOD, TOOLS, KERNEL)),
    Tool("ccache", "ccache", "whole-kernel builds, cached (plain gcc without it)", (KERNEL,), False),
    Tool("ld", "binutils", "linking modules, kernels and guest programs", (KMOD, TOOLS, KERNEL)),
    Tool("rsync", "rsync", "make headers_install (the tools build's uapi headers)", (TOOLS,)),
    Tool("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev", "static guest programs", (TOOLS,)),
    Tool("flex", "flex", "the Kconfig lexer", (KERNEL,)),
    Tool("bison", "bison", "the Kconfig parser", (KERNEL,)),
    Tool("bc", "bc", "kernel/time/timeconst.h", (KERNEL,)),
    Tool("perl", "perl", "generated headers, checkpatch.pl, get_maintainer.pl", (KERNEL, CHECK, MAIL)),
    # Needed by some .configs only; the kernel build checks its own (kprereq.check_prerequisites).
    Tool("/usr/include/gelf.h", "libelf-dev", "objtool (CONFIG_OBJTOOL)", (KERNEL,), False),
    Tool("/usr/include/openssl/opensslv.h", "libssl-dev", "scripts/sign-file (module signing)", (KERNEL,), False),
    Tool("/boot/vmlinuz-*", "linux-image-amd64", "the guest kernel (ktest boot --kernel debian)", ()),
    Tool("/lib/modules/*/build/Makefile", "linux-headers-amd64", "building the patched modules", ()),
    Tool("/boot/vmlinuz-6.12.*", "linux-image-6.12-amd64", "the 6.12 tree's guest kernel (--modules stock/none)",
         (), False),
    Tool("/lib/modules/6.12.*/build/Makefile", "linux-headers-6.12-amd64", "the 6.12 tree's headers", (), False),
    Tool("zstd", "zstd", "unpacking a zstd bzImage (Debian's 6.12) for the PVH boot", (BOOT,), False),
    Tool("qemu-system-x86_64", "qemu-system-x86", "the guest", (BOOT,)),
    Tool("/bin/busybox", "busybox-static", "the guest's initramfs", (BOOT,)),
    Tool("cpio", "cpio", "reading initramfs archives (the tests do)", (BOOT,), False),
    Tool("modinfo", "kmod", "module dependencies and load order", (BOOT,)),
    Tool("ldd", "libc-bin", "copying host programs into the guest (--host-program)", (BOOT,)),
    Tool("vdpa", "iproute2", "the vDPA net simulator's device (vdpa dev add)", (BOOT,), False),
    Tool("ethtool", "ethtool", "the driver's counters in the guest (ethtool -S)", (BOOT,), False),
    Tool("ip", "iproute2", "links and taps in the guest (--host-program ip; busybox's applet lacks tuntap)",
         (BOOT,), False),
    Tool("tc", "iproute2", "tc rules in the guest (--host-program tc: the tests hold zerocopy DMAs with netem)",
         (BOOT,), False),
    Tool("sparse", "sparse", "series check --full: sparse (C=2)", (FULLCHECK,), False),
    Tool("clang", "clang", "series check --full: the clang build (LLVM=1)", (FULLCHECK,), False),
    Tool("ld.lld", "lld", "series check --full: the clang build's linker", (FULLCHECK,), False),
    Tool("llvm-ar", "llvm", "series check --full: llvm-ar, llvm-nm, llvm-objcopy (LLVM=1)", (FULLCHECK,), False),
    Tool("/usr/lib/gcc/x86_64-linux-gnu/*/32/libgcc.a", "gcc-multilib", "series check --full: the i386 build",
         (FULLCHECK,), False),
    Tool("lava-run", "lava-dispatcher", "ktest lava run: a LAVA job run here", (LAVA,), False),
    Tool("lavacli", "lavacli", "ktest lava submit / results from a lab", (LAVA,), False),
)


def missing(stage: str | None = None, *, required_only: bool = True) -> list[Tool]:
    """Registry entries not found on this machine (for one stage, or all)."""
    return [t for t in REGISTRY
            if (stage is None or stage in t.stages) and (t.required or not required_only) and t.found() is None]


def require(stage: str, *, optional_too: bool = False) -> None:
    """Raise ToolMissing naming every missing program of ``stage`` and its Debian package.

    ``optional_too``: also the entries only some commands need (the caller is one).
    """
    gone = missing(stage, required_only=not optional_too)
    if gone:
        what = "; ".join(f"{t.name} not found (Debian package {t.package})" for t in gone)
        pkgs = " ".join(dict.fromkeys(t.package for t in gone))
        raise ToolMissing(f"{what}, needed for {stage}",
                          hint=f"Run scripts/setup-host, or: apt-get install {pkgs}")


def kvm_usable() -> str:
    """'yes', 'no (reason)' for /dev/kvm; the boot stage probes it for real once per machine."""
    if not os.path.exists("/dev/kvm"):
        return "no (/dev/kvm does not exist)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no (/dev/kvm is not read-writable)"
    return "yes (/dev/kvm)"
