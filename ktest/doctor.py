"""``ktest doctor``: is this machine ready for every stage?

Reads the tool registry (tools.py) and the few facts no single program
answers: the kernel image with matching headers, KVM, the series project.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import project, tools
from .errors import KtestError


@dataclass
class Row:
    what: str
    found: str          # where, or "" when missing
    package: str        # the Debian package that provides it ("" when none does)
    required: bool
    why: str

    @property
    def ok(self) -> bool:
        return bool(self.found) or not self.required


def rows() -> list[Row]:
    """One row per registry entry, then the kernel, KVM and the series project."""
    out = [Row(t.name, t.found() or "", t.package, t.required, t.why) for t in tools.REGISTRY]
    from .kernels import debian_release

    try:
        rel = debian_release()
        out.append(Row("kernel image + matching headers", rel, "linux-image-amd64 linux-headers-amd64", True,
                       "the guest kernel the patched modules load into"))
    except KtestError as e:
        out.append(Row("kernel image + matching headers", "", "linux-image-amd64 linux-headers-amd64", True,
                       e.message))
    kvm = tools.kvm_usable()
    out.append(Row("KVM", kvm if kvm.startswith("yes") else "", "", False,
                   "faster guests; ktest falls back to TCG (" + kvm + ")"))
    try:
        p = project.current()
        out.append(Row("series project", str(p.series_file), "", False, f"found from {p.how}"))
    except KtestError as e:
        out.append(Row("series project", "", "", False, e.message))
    return out
