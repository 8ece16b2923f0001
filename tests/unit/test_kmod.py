"""Which modules to build: the project's kmod/ list, or derived from what the series changes."""
import pytest

from ktest import kmod, project, tree
from ktest.errors import BuildError
from tests.conftest import git


@pytest.fixture
def kernel_with_makefiles(fake_kernel, ktest_home):
    (fake_kernel / "drivers/virtio/Makefile").write_text(
        "# SPDX\nobj-$(CONFIG_VIRTIO) += virtio.o virtio_ring.o\nobj-y += virtio_core.o\n")
    (fake_kernel / "drivers/virtio/virtio_core.c").write_text("int core;\n")
    (fake_kernel / "drivers/vhost").mkdir()
    (fake_kernel / "drivers/vhost/Makefile").write_text(
        "obj-$(CONFIG_VHOST_NET) += vhost_net.o\nvhost_net-y := net.o \\\n\tnet_extra.o\n"
        "vhost_net-$(CONFIG_X) += optional.o\n")
    for f in ("net.c", "net_extra.c", "vhost.h"):
        (fake_kernel / "drivers/vhost" / f).write_text("int x;\n")
    git(fake_kernel, "add", "-A")
    git(fake_kernel, "commit", "-q", "-m", "Makefiles")
    t = tree.prepare_user(fake_kernel)
    return t


def _change(t, *files):
    for f in files:
        p = t.path / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text((p.read_text() if p.exists() else "") + "int changed;\n")
    git(t.path, "add", "-A")
    git(t.path, "commit", "-q", "-m", "change")


def test_derive_single_file_and_composite_modules(kernel_with_makefiles, capsys):
    t = kernel_with_makefiles
    _change(t, "drivers/virtio/virtio_ring.c", "drivers/vhost/net_extra.c", "drivers/virtio/virtio_core.c",
            "tools/virtio/virtio_test.c")
    mods = kmod.derive(t)
    assert sorted(kmod.kbuild_modules(mods.kbuild)) == ["vhost_net", "virtio_ring"]
    assert "vhost_net-y := drivers/vhost/net.o drivers/vhost/net_extra.o" in mods.kbuild
    assert "optional.o" not in mods.kbuild                 # needs a config we do not know
    assert "virtio_ring-y := drivers/virtio/virtio_ring.o" in mods.kbuild
    assert {"drivers/vhost/net.c", "drivers/vhost/net_extra.c", "drivers/vhost/*.h"} <= set(mods.patterns)
    # Built in: named, not built.
    err = capsys.readouterr().err
    assert "drivers/virtio/virtio_core.c is not part of a module" in err
    assert "tools/" not in err                             # userspace, silently not a module
    assert "drivers/vhost/vhost.h" in kmod._source_list(t, mods)


def test_a_series_that_changes_no_module_builds_nothing(kernel_with_makefiles, tmp_path, monkeypatch):
    t = kernel_with_makefiles
    _change(t, "drivers/virtio/virtio_core.c", "tools/virtio/virtio_test.c")
    assert kmod.kbuild_modules(kmod.derive(t).kbuild) == []
    (tmp_path / "p" / "patches").mkdir(parents=True)
    (tmp_path / "p" / "patches" / "series").write_text("")
    monkeypatch.chdir(tmp_path / "p")                    # a project without kmod/
    res = kmod.build_kmod(t)
    assert res.artifacts == []


def test_derive_reads_config_dependent_parts_and_prefers_kbuild(kernel_with_makefiles):
    t = kernel_with_makefiles
    (t.path / "drivers/virtio/Kbuild").write_text(
        "obj-$(CONFIG_VIRTIO_PCI) += virtio_pci.o\nvirtio_pci-y := virtio_pci_modern.o virtio_pci_common.o\n"
        "virtio_pci-$(CONFIG_VIRTIO_PCI_LEGACY) += virtio_pci_legacy.o\n")
    for f in ("virtio_pci_modern.c", "virtio_pci_common.c", "virtio_pci_legacy.c"):
        (t.path / "drivers/virtio" / f).write_text("int x;\n")
    git(t.path, "add", "-A")
    git(t.path, "commit", "-q", "-m", "pci")
    _change(t, "drivers/virtio/virtio_pci_legacy.c")
    with_legacy = kmod.derive(t, config={"CONFIG_VIRTIO_PCI_LEGACY": "y"})
    assert ("virtio_pci-y := drivers/virtio/virtio_pci_modern.o drivers/virtio/virtio_pci_common.o "
            "drivers/virtio/virtio_pci_legacy.o") in with_legacy.kbuild
    # Without the option the legacy object is not part of the module.
    assert "virtio_pci_legacy.o" not in kmod.derive(t, config={}).kbuild


def test_project_kmod_list_wins(kernel_with_makefiles, tmp_path, monkeypatch):
    t = kernel_with_makefiles
    root = tmp_path / "proj"
    (root / "patches").mkdir(parents=True)
    (root / "patches" / "series").write_text("")
    (root / "kmod").mkdir()
    (root / "kmod" / "Kbuild").write_text("obj-m += virtio_ring.o\nvirtio_ring-y := drivers/virtio/virtio_ring.o\n")
    (root / "kmod" / "sources").write_text("# listed\ndrivers/virtio/virtio_ring.c\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("KTEST_PATCHES", raising=False)
    monkeypatch.delenv("QUILT_PATCHES", raising=False)
    project.select(None)
    try:
        mods = kmod.module_list(t)
    finally:
        project.select(None)
    assert mods.origin == f"{root / 'kmod'}/" and mods.patterns == ["drivers/virtio/virtio_ring.c"]
