"""Boot a bzImage through its PVH entry point: QEMU loads the ELF directly.

Under TCG, a bzImage spends about two seconds before the kernel prints
anything: SeaBIOS, real-mode setup and, above all, decompressing itself
(Debian's 6.1 is xz, 6.12 zstd) in emulated code.  A kernel built with CONFIG_PVH carries
a 32-bit entry point in an ELF note, and QEMU's -kernel boots such an ELF
vmlinux directly.  So ktest unpacks the bzImage's payload once on the host
(native xz or zstd is fast), keeps it cached by the bzImage's content, and boots
that.  Anything it does not understand falls back to the bzImage.
"""
from __future__ import annotations

import hashlib
import lzma
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

from .. import paths
from ..run import run

ELF_MAGIC = b"\x7fELF"
XEN_ELFNOTE_PHYS32_ENTRY = 18
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _payload(image: bytes) -> bytes | None:
    """The compressed vmlinux inside a bzImage (boot protocol >= 2.08)."""
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        return None
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if length == 0 or start + length > len(image):
        return None
    return image[start:start + length]


def _decompress(data: bytes) -> bytes | None:
    # The payload's length includes a 4-byte trailer with the size; the
    # decompressors stop at the end of the stream and ignore the rest.
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        if data.startswith(b"\x1f\x8b"):
            return zlib.decompressobj(wbits=31).decompress(data)
        if data.startswith(b"\x5d\x00\x00"):
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    except (lzma.LZMAError, zlib.error, EOFError):
        return None
    if data.startswith(ZSTD_MAGIC):
        return _unzstd(data[:-4])
    return None  # lz4, lzo, bzip2: ktest does not unpack them


def _unzstd(frame: bytes) -> bytes | None:
    """zstd (Debian's 6.12 image) with the zstd program: Python 3.11 has no zstd.
    None without the program (the bzImage then boots as it is)."""
    if shutil.which("zstd") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ktest-pvh-") as d:
        src, dst = Path(d) / "payload.zst", Path(d) / "vmlinux"
        src.write_bytes(frame)
        r = run(["zstd", "-d", "-q", "-f", "-o", str(dst), str(src)], timeout=120, check=False, what="zstd -d")
        return dst.read_bytes() if r.returncode == 0 and dst.exists() else None


def has_pvh_note(elf: bytes) -> bool:
    """True if a 64-bit little-endian ELF has XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE."""
    try:
        return _has_pvh_note(elf)
    except struct.error:  # headers that point past the end: not an image to boot
        return False


def _has_pvh_note(elf: bytes) -> bool:
    if len(elf) < 64 or not elf.startswith(ELF_MAGIC) or elf[4] != 2 or elf[5] != 1:
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        if p_type != 4:  # PT_NOTE
            continue
        pos, end = p_offset, p_offset + p_filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def pvh_image(kernel: Path) -> Path | None:
    """A cached ELF vmlinux with a PVH entry for this bzImage, or None."""
    data = kernel.read_bytes()
    if data.startswith(ELF_MAGIC):
        return kernel if has_pvh_note(data) else None
    digest = hashlib.sha256(data).hexdigest()[:20]
    cache = paths.home() / "kernel"
    out = cache / f"{kernel.name}.pvh-{digest}"
    none = cache / f"{kernel.name}.nopvh-{digest}"
    if out.exists():
        return out
    if none.exists():
        return None
    cache.mkdir(parents=True, exist_ok=True)
    payload = _payload(data)
    elf = _decompress(payload) if payload else None
    if elf is None or not has_pvh_note(elf):
        none.touch()
        return None
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(elf)
    tmp.replace(out)
    return out
