"""The PVH fast path: unpack a bzImage's vmlinux, boot it only if it has the entry note."""
import gzip
import lzma
import struct
from pathlib import Path

import pytest

from ktest.qemu import pvh


def elf_with_notes(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    body = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        body += struct.pack("<III", len(n), len(desc), ntype)
        body += n.ljust((len(n) + 3) // 4 * 4, b"\0") + desc.ljust((len(desc) + 3) // 4 * 4, b"\0")
    ehdr = bytearray(64)
    ehdr[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", ehdr, 0x20, 64)            # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)        # e_phentsize, e_phnum
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 64 + 56, 0, 0, len(body), len(body), 4)
    return bytes(ehdr) + phdr + body


def bzimage(payload: bytes, version: int = 0x20F, setup_sects: int = 3) -> bytes:
    head = bytearray((setup_sects + 1) * 512)
    head[0x1F1] = setup_sects
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x206, version)
    struct.pack_into("<II", head, 0x248, 16, len(payload) + 4)  # offset into the protected-mode part
    return bytes(head) + b"\0" * 16 + payload + struct.pack("<I", 12345)


PVH_ELF = elf_with_notes([(b"Xen", 6, b"linux"), (b"Xen", 18, struct.pack("<Q", 0x1000050))])
NO_PVH_ELF = elf_with_notes([(b"Xen", 6, b"linux"), (b"GNU", 3, b"\x01" * 20)])


def test_note_parser_finds_only_the_phys32_entry():
    assert pvh.has_pvh_note(PVH_ELF)
    assert not pvh.has_pvh_note(NO_PVH_ELF)
    assert not pvh.has_pvh_note(b"\x7fELF" + b"\0" * 100)


@pytest.mark.parametrize("compress", [lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
                                      gzip.compress])
def test_bzimage_is_unpacked_once_and_cached(ktest_home, tmp_path, compress):
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage(compress(PVH_ELF)))
    out = pvh.pvh_image(k)
    assert out is not None and out.read_bytes() == PVH_ELF
    mtime = out.stat().st_mtime_ns
    assert pvh.pvh_image(k) == out and out.stat().st_mtime_ns == mtime
    # Another kernel under the same name is another cache entry.
    k.write_bytes(bzimage(compress(PVH_ELF + b"\0")))
    assert pvh.pvh_image(k) != out


def test_kernels_without_a_pvh_entry_fall_back(ktest_home, tmp_path):
    k = tmp_path / "bzImage"
    for data in (bzimage(lzma.compress(NO_PVH_ELF, format=lzma.FORMAT_XZ)),   # no note
                 bzimage(b"\x28\xb5\x2f\xfd" + b"zstd"),                       # a format Python lacks
                 bzimage(lzma.compress(PVH_ELF, format=lzma.FORMAT_XZ), version=0x206),  # too old
                 bzimage(b"\xfd7zXZ\x00 truncated")):                          # corrupt
        k.write_bytes(data)
        assert pvh.pvh_image(k) is None
    assert pvh.pvh_image(k) is None   # the negative answer is cached too


def test_debian_kernel_has_a_pvh_entry(ktest_home):
    from ktest.build import debian_release
    try:
        k = Path(f"/boot/vmlinuz-{debian_release()}")
    except Exception:
        pytest.skip("no Debian kernel installed")
    out = pvh.pvh_image(k)
    assert out is not None and pvh.has_pvh_note(out.read_bytes())
