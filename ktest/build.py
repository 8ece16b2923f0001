"""Builds of the series: one entry point for the stages above.

The work is in ``kmod.py`` (the patched modules, out of tree),
``guestprogs.py`` (the guest's test programs) and ``kbuild.py`` (whole
kernels); what they share (records, diagnostics) is in ``artifacts.py``.
"""
from __future__ import annotations

from .artifacts import BuildResult
from .guestprogs import RINGTEST_VARIANTS, build_tools, ringtest_variants, virtio_tools
from .kernels import debian_release
from .kmod import build_kmod

__all__ = ["BuildResult", "RINGTEST_VARIANTS", "build_kmod", "build_tools", "debian_release",
           "ringtest_variants", "virtio_tools"]
