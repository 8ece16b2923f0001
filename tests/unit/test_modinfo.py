"""ktest.modinfo reads a module's .modinfo section itself; modinfo(8) is the reference."""
import lzma
import shutil
import subprocess
from pathlib import Path

import pytest

from ktest import paths
from ktest.build import debian_release
from ktest.errors import BootError
from ktest.modinfo import modinfo

# Debian's 6.12 image (setup-host installs it): its modules are xz-compressed.
RELEASE = debian_release("6.12")
MODULES = ["virtio_net", "tun", "vhost_net", "net_failover"]
FIELDS = ["depends", "vermagic", "name", "alias", "license", "srcversion", "intree", "parm"]


def _stock(name: str) -> Path:
    (path,) = Path(f"/lib/modules/{RELEASE}/kernel").rglob(f"{name}.ko*")
    return path


def _modinfo8(path: Path, field: str) -> str:
    return subprocess.run(["modinfo", "-F", field, str(path)], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()


@pytest.mark.parametrize("name", MODULES)
def test_every_field_as_modinfo8_prints_it(tmp_path, name):
    packed = _stock(name)
    plain = tmp_path / f"{name}.ko"
    plain.write_bytes(lzma.decompress(packed.read_bytes()))
    for field in FIELDS:
        want = _modinfo8(packed, field)
        assert modinfo(packed, field) == want, (packed, field)
        assert modinfo(plain, field) == want, (plain, field)
    assert modinfo(packed, "vermagic").split()[0] == RELEASE
    assert modinfo(packed, "no-such-field") == ""


def test_a_rewritten_module_is_read_again(tmp_path):
    a, b = _stock("tun"), _stock("virtio_net")
    f = tmp_path / "m.ko"
    f.write_bytes(lzma.decompress(a.read_bytes()))
    assert modinfo(f, "name") == "tun"
    f.with_suffix(".new").write_bytes(lzma.decompress(b.read_bytes()))
    f.with_suffix(".new").replace(f)
    assert modinfo(f, "name") == "virtio_net"


@pytest.mark.parametrize("name, data, why", [
    ("junk.ko", b"not elf", "not an ELF file"),
    ("cut.ko", b"\x7fELF\x02\x01\x01" + bytes(20), "section table is cut short"),
    ("bad.ko.xz", b"\xfd7zXZ\x00garbage", "cannot decompress"),
])
def test_not_a_module_is_named(tmp_path, name, data, why):
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(BootError, match=f"{name}: not a kernel module .*{why}"):
        modinfo(f, "depends")


def test_an_elf_file_without_modinfo_is_not_a_module(tmp_path):
    f = tmp_path / "true.ko"
    shutil.copy("/bin/true", f)
    with pytest.raises(BootError, match="true.ko: not a kernel module .no .modinfo section"):
        modinfo(f, "depends")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(BootError, match="gone.ko: not a kernel module"):
        modinfo(tmp_path / "gone.ko", "depends")


def test_settings_are_read_again_after_each_write(ktest_home):
    assert paths.get_setting("tree.path") is None
    for value in ("/a", "/b with space", "/c"):
        paths.set_setting("tree.path", value)
        assert paths.get_setting("tree.path") == value
    assert paths.read_config(paths.config_file()) == {"tree.path": "/c"}
