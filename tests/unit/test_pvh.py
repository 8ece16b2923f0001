"""The PVH fast path: unpack a bzImage's vmlinux, boot it only if it has the entry note."""
import gzip
import lzma
import shutil
import struct
import subprocess
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


def zstd(data: bytes) -> bytes:
    """zstd as Debian's 6.12 bzImage has it (the zstd program: Python 3.11 has no zstd)."""
    if shutil.which("zstd") is None:
        pytest.skip("zstd is not installed (scripts/setup-host installs it)")
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("compress", [lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
                                      gzip.compress, zstd], ids=["xz", "gzip", "zstd"])
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
                 bzimage(b"\x28\xb5\x2f\xfd" + b"zstd"),                       # corrupt zstd
                 bzimage(b"\x02\x21\x4c\x18" + b"lz4"),                        # a format ktest lacks
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


def test_zstd_without_the_program_falls_back(ktest_home, tmp_path, monkeypatch):
    """No zstd program: the bzImage boots as it is (no error, no cached vmlinux)."""
    data = zstd(PVH_ELF)
    monkeypatch.setattr(pvh.shutil, "which", lambda name: None)
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage(data))
    assert pvh.pvh_image(k) is None


def test_the_612_debian_kernel_has_a_pvh_entry_through_zstd(ktest_home):
    """Debian's 6.12 bzImage is zstd: unpacked with the zstd program, it has the PVH entry."""
    images = sorted(Path("/boot").glob("vmlinuz-6.12.*"))
    if not images or shutil.which("zstd") is None:
        pytest.skip("Debian's 6.12 kernel or zstd is not installed (scripts/setup-host installs both)")
    assert pvh._payload(images[-1].read_bytes()).startswith(pvh.ZSTD_MAGIC)
    out = pvh.pvh_image(images[-1])
    assert out is not None and pvh.has_pvh_note(out.read_bytes())
