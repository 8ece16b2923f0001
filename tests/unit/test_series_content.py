"""What the project's own series (patches/) must hold, read from the patch files.

Review of the series (issue 19, point 16): counting ring accesses for the
tools/virtio tests must not add a test-only hook to the kernel's
virtio_ring.c; a tools/virtio patch changes tools/ (and MAINTAINERS) only.
"""
import re

from tests.conftest import REPO

PATCHES = REPO / "patches"


def _series():
    names = [ln.split()[0] for ln in (PATCHES / "series").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    out = []
    for n in names:
        text = (PATCHES / n).read_text(errors="replace")
        subject = re.search(r"^Subject: (?:\[PATCH[^\]]*\] )?(.*(?:\n[ \t].*)*)", text, re.M).group(1)
        files = re.findall(r"^diff --git a/(\S+) b/", text, re.M)
        out.append((n, " ".join(subject.split()), files, text))
    return out


def _added_lines(text, path):
    """The + lines of ``path``'s part of a patch."""
    lines, inside = [], False
    for ln in text.splitlines():
        if ln.startswith("diff --git "):
            inside = ln.startswith(f"diff --git a/{path} ")
        elif inside and ln.startswith("+") and not ln.startswith("+++"):
            lines.append(ln[1:])
    return lines


def test_tools_virtio_patches_leave_the_kernel_files_alone():
    bad = [(n, f) for n, subject, files, _ in _series() if subject.startswith("tools/virtio:")
           for f in files if not (f.startswith("tools/") or f == "MAINTAINERS")]
    assert bad == [], bad


def test_virtio_ring_has_no_test_only_hook():
    bad = [(n, ln) for n, _, files, text in _series() if "drivers/virtio/virtio_ring.c" in files
           for ln in _added_lines(text, "drivers/virtio/virtio_ring.c")
           if re.search(r"vring_stat|#ifndef vring_", ln)]
    assert bad == [], bad
