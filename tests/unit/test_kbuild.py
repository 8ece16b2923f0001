"""ktest build --kernel's cache and how the boot stage finds a built kernel and its modules."""
import json
from pathlib import Path

import pytest

from ktest import kbuild, paths
from ktest.errors import BuildError
from ktest.qemu import guest
from ktest.qemu import initramfs as irfs


def fake_bzimage(path: Path, release: str) -> Path:
    img = bytearray(0x2000)
    img[0x202:0x206] = b"HdrS"
    img[0x20e:0x210] = (0x1000).to_bytes(2, "little")
    text = f"{release} (ktest@ktest) #1 SMP".encode() + b"\0"
    img[0x1200:0x1200 + len(text)] = text
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(img))
    return path


def fake_build(key: str, release: str, build_dir: Path, fragments: list[str] | None = None) -> Path:
    """An artifact directory as build_kernel leaves it (configured with
    ``fragments``, default: the default guest's)."""
    d = paths.builds() / f"kernel-{key}"
    fake_bzimage(d / "bzImage", release)
    (d / "System.map").write_text("")
    (d / "config").write_text("CONFIG_X=y\n")
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / ".config").write_text("CONFIG_X=y\n")
    mods = d / "modules/lib/modules" / release
    (mods / "kernel/drivers/net").mkdir(parents=True)
    (mods / "kernel/drivers/net/virtio_net.ko").write_bytes(b"")
    (mods / "modules.dep").write_text("kernel/drivers/net/virtio_net.ko:\n")
    (d / "metadata.json").write_text(json.dumps({
        "kind": "kernel", "result": "pass", "build_dir": str(build_dir), "release": release,
        "commit": "c" * 40, "key": key,
        "inputs": {"base": "tinyconfig", "fragments": [f"/x/configs/{f}.config" for f in
                                                       (fragments or kbuild.DEFAULT_FRAGMENTS) + ["ktest"]]}}))
    return d


def test_a_build_with_other_fragments_is_not_the_default_guest(ktest_home, tmp_path):
    """A build from before net.config joined the defaults lacks pktgen, dummy, tc...:
    --kernel auto must not boot it as the default guest."""
    fake_build("old", "6.12.118", tmp_path / "obj1", fragments=["guest", "ringtest"])
    assert kbuild.find_release("6.12.118").directory.name == "kernel-old"
    assert kbuild.find_release("6.12.118", list(kbuild.DEFAULT_FRAGMENTS)) is None
    fake_build("new", "6.12.118", tmp_path / "obj2")
    assert kbuild.find_release("6.12.118", list(kbuild.DEFAULT_FRAGMENTS)).directory.name == "kernel-new"
    assert kbuild.fragments_of(kbuild.find_release("6.12.118")) == kbuild.DEFAULT_FRAGMENTS


def test_no_kernel_built_yet(ktest_home):
    with pytest.raises(BuildError, match="no kernel built by ktest yet"):
        kbuild.last()


def test_built_kernel_is_found_with_its_modules(ktest_home, tmp_path):
    d = fake_build("k1", "6.1.192", tmp_path / "obj")
    paths.set_setting(kbuild.SETTING, str(d))
    image, release = guest.resolve_kernel("built")
    assert (image, release) == (d / "bzImage", "6.1.192")
    assert guest.module_dir(image) == d / "modules/lib/modules/6.1.192"
    stock = irfs.stock_modules(release, guest.module_dir(image))
    assert stock == {"virtio_net": d / "modules/lib/modules/6.1.192/kernel/drivers/net/virtio_net.ko"}
    assert kbuild.find_release("6.1.192").directory == d


def test_build_dir_reconfigured_since_is_not_used_for_modules(ktest_home, tmp_path):
    d = fake_build("k1", "6.1.192", tmp_path / "obj")
    paths.set_setting(kbuild.SETTING, str(d))
    (tmp_path / "obj" / ".config").write_text("CONFIG_Y=y\n")
    assert kbuild.find_release("6.1.192") is None


def test_any_bzimage_boots_with_the_release_from_its_header(ktest_home, tmp_path):
    image = fake_bzimage(tmp_path / "bzImage", "6.2.0-rc1")
    assert guest.resolve_kernel(str(image)) == (image, "6.2.0-rc1")
    assert guest.module_dir(image) is None


def test_repeat_build_is_answered_from_the_cache_without_make(ktest_home, tmp_path, monkeypatch):
    from ktest import tree as ktree

    obj = tmp_path / "obj"
    t = ktree.Tree(path=tmp_path / "src", base="b", base_ref="v", version="6.1.192", kind="debian")
    monkeypatch.setattr(kbuild, "_source_state", lambda tree: ("c" * 40, ""))
    monkeypatch.setattr(kbuild, "_toolchain_id", lambda cc: {"gcc": "gcc 12", "cc": cc})
    obj.mkdir()
    (obj / ".config").write_text("CONFIG_X=y\n")
    key = kbuild.build_key("c" * 40, "", kbuild.kconfig.file_sha256(obj / ".config"),
                           {"gcc": "gcc 12", "cc": "gcc"})
    d = fake_build(key, "6.1.192", obj)
    monkeypatch.setattr(kbuild, "_run_make", lambda *a, **k: pytest.fail("make ran for a cached kernel"))
    kb = kbuild.build_kernel(t, obj, cc="gcc")
    assert kb.cached and kb.directory == d and kb.bzimage == d / "bzImage"
    assert paths.get_setting(kbuild.SETTING) == str(d)


def test_localversion_auto_is_refused(ktest_home, tmp_path):
    from ktest import tree as ktree

    obj = tmp_path / "obj"
    obj.mkdir()
    (obj / ".config").write_text("CONFIG_LOCALVERSION_AUTO=y\n")
    t = ktree.Tree(path=tmp_path / "src", base="b", base_ref="v", version="6.1.192", kind="debian")
    with pytest.raises(BuildError, match="LOCALVERSION_AUTO=y would append -g<commit>"):
        kbuild.build_kernel(t, obj)


def test_a_build_logged_to_a_file_prints_progress_lines(tmp_path, monkeypatch, capsys):
    """No live bar in a log file: a line every LOG_LINE_EVERY seconds instead."""
    import sys

    monkeypatch.setattr(kbuild, "LOG_LINE_EVERY", 0)
    make = "import time\nfor f in ('a', 'b', 'c'):\n    print('  CC      drivers/' + f + '.o', flush=True)\n"
    status, compiles = kbuild._run_make([sys.executable, "-c", make], tmp_path / "log", "building vmlinux", 1170,
                                       env=None, strip="")
    err = capsys.readouterr().err
    assert (status, compiles) == (0, 3)
    assert "building vmlinux: 3 of ~1170 compiled" in err
    assert "building vmlinux: 1 of ~1170 compiled" in err
