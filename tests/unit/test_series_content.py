"""What the project's own series (patches/) must hold, read from the patch files.

Review of the series (issue 19, point 16): counting ring accesses for the
tools/virtio tests must not add a test-only hook to the kernel's
virtio_ring.c; a tools/virtio patch changes tools/ (and MAINTAINERS) only.
Point 6: with VERSION_1/ANY_LAYOUT a TX header sits in the skb headroom, in
the line of the frame's Ethernet header, so "32 -> 6 header cache lines" is
not what a header block saves the device; ringtest models that layout.
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


def _message(text):
    """A patch's commit message: from the Subject to the "---" line."""
    return text.split("\n---\n", 1)[0]


def test_ringtest_models_the_headroom_layout():
    (text,) = [t for _, subject, _, t in _series() if subject.startswith("tools/virtio: ringtest variants with virtio-net")]
    make = "\n".join(_added_lines(text, "tools/virtio/ringtest/Makefile"))
    # the header in front of its frame is the variant built with NET_HDR alone
    assert "virtio_ring_hdr_headroom.o: virtio_ring_0_9.c main.h\n\t$(CC) $(CFLAGS) -DNET_HDR -c" in make
    assert "hdr_inline" not in text
    code = "\n".join(_added_lines(text, "tools/virtio/ringtest/virtio_ring_0_9.c"))
    assert "net_pkt(n) - sizeof(struct net_hdr)" in code and "device lines:" in code


def test_no_text_claims_32_to_6_header_lines():
    texts = [(n, _message(t)) for n, _, _, t in _series()]
    texts += [(f, (REPO / f).read_text()) for f in ("patches/cover-letter.txt", "README.md")]
    bad = [(n, m.group(0)) for n, t in texts for m in re.finditer(r"32\s*(?:->|\u2192)\s*6\b", t)]
    assert bad == [], bad
