"""--kernel auto: the guest kernel follows the prepared tree, and a patched module
the kernel has built in (virtio_ring in Debian's 6.12) is never silently skipped.
Fake /usr/src, /boot, /lib/modules and kernel builds."""
from argparse import Namespace

import pytest

from ktest import build, kbuild, kernels, tree
from ktest.errors import BootError
from ktest.qemu import guest
from ktest.qemu import initramfs as irfs
from tests.unit.test_debian import fake_source, kernels_dir, usr_src  # noqa: F401 (fixtures)
from tests.unit.test_kbuild import fake_build

BUILTIN_612 = ("virtio", "virtio_ring", "virtio_pci")


@pytest.fixture
def two_releases(kernels_dir, usr_src, ktest_home):  # noqa: F811
    kernels_dir("6.1.0-57-amd64")
    kernels_dir("6.12.118+deb12-amd64", builtin=BUILTIN_612)
    fake_source(usr_src, "6.1", 192)
    fake_source(usr_src, "6.12", 118)


def test_auto_takes_debians_kernel_when_it_can_load_the_patched_modules(two_releases):
    tree.prepare_debian("6.1")
    patched = {"virtio_ring": "virtio_ring.ko", "virtio_net": "virtio_net.ko"}
    assert guest.resolve_kernel("auto", patched) == (kernels.BOOT / "vmlinuz-6.1.0-57-amd64", "6.1.0-57-amd64")


def test_auto_on_612_needs_the_kernel_ktest_built(two_releases, tmp_path):
    tree.prepare_debian("6.12")
    patched = {"virtio_ring": "virtio_ring.ko"}
    with pytest.raises(BootError) as e:
        guest.resolve_kernel("auto", patched)
    assert "Debian's kernel 6.12.118+deb12-amd64 has virtio_ring built in" in e.value.message
    assert "no Linux 6.12.118 kernel" in e.value.message and "\n" not in e.value.message
    assert "ktest build --kernel" in e.value.hint and "--modules none" in e.value.hint
    fake_build("old", "6.1.192", tmp_path / "obj1")          # another release's build: not this tree's
    with pytest.raises(BootError):
        guest.resolve_kernel("auto", patched)
    d = fake_build("k612", "6.12.118", tmp_path / "obj2")
    assert guest.resolve_kernel("auto", patched) == (d / "bzImage", "6.12.118")
    # Without patched modules (--modules stock/none) Debian's 6.12 is the guest.
    assert guest.resolve_kernel("auto", {}) == (kernels.BOOT / "vmlinuz-6.12.118+deb12-amd64",
                                                "6.12.118+deb12-amd64")


def test_auto_without_names_asks_what_the_series_builds(two_releases, monkeypatch):
    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_net"})
    assert guest.resolve_kernel("auto")[1] == "6.12.118+deb12-amd64"
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_net", "virtio_ring"})
    with pytest.raises(BootError, match="has virtio_ring built in"):
        guest.resolve_kernel("auto")


def test_debian_612_with_a_patched_builtin_is_refused(two_releases, tmp_path, monkeypatch):
    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest.qboot, "check_kernel", lambda p: None)
    monkeypatch.setattr(guest.tools, "require", lambda stage: None)
    spec = guest.GuestSpec(cmd=["true"], kernel="debian", patched={"virtio_ring": tmp_path / "virtio_ring.ko"})
    with pytest.raises(BootError, match="6.12.118[+]deb12-amd64 .* has virtio_ring built in: the patched build "
                                        "cannot be loaded in its place"):
        guest.prepare(spec)


def test_boot_refuses_before_building_the_modules(two_releases, monkeypatch):
    """ktest boot --kernel debian on 6.12: refused before modpost spends a minute on duplicates."""
    from ktest.cli import bootcmd

    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_ring", "virtio_net"})
    monkeypatch.setattr(build, "build_kmod", lambda *a, **k: pytest.fail("built the modules first"))
    args = Namespace(modules="kmod", kernel="debian", extra_module=[], load=[], file=[])
    with pytest.raises(BootError, match="has virtio_ring built in"):
        bootcmd._guest_spec(args, ["true"])


def test_builtin_modules_need_no_loading(tmp_path):
    """Debian's 6.12 builds virtio_pci in: asking for it loads nothing, and is no error."""
    root = tmp_path / "mods"
    (root / "kernel").mkdir(parents=True)
    (root / "modules.dep").write_text("")
    (root / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    assert irfs.resolve_modules(["virtio_pci"], {}, "x", root) == []
    with pytest.raises(BootError, match="module virtio_net not found"):
        irfs.resolve_modules(["virtio_net"], {}, "x", root)


def test_the_boot_command_defaults_to_auto():
    from ktest.cli import parser

    assert parser().parse_args(["boot", "--", "true"]).kernel == "auto"
    assert guest.GuestSpec(cmd=["true"]).kernel == "auto"


# --- ktest boot / run / bench build the 6.12 guest kernel themselves (issue 18) ---

@pytest.fixture
def fake_kernel_build(tmp_path, monkeypatch):
    """job.build_guest_kernel replaced by a fake_build of the tree's version; the calls."""
    from ktest import job

    calls = []

    def fake(t, **kw):
        calls.append(t.version)
        d = fake_build(f"k{len(calls)}", t.version, tmp_path / "obj")
        return None, kbuild.find_release(t.version) or pytest.fail(f"fake build {d} not found")

    monkeypatch.setattr(job, "build_guest_kernel", fake)
    return calls


def test_auto_on_612_builds_the_guest_kernel_once(two_releases, fake_kernel_build):
    from ktest import job

    t = tree.prepare_debian("6.12")
    patched = {"virtio_ring": "virtio_ring.ko"}
    assert guest.auto_kernel(patched).needs_build
    assert job.ensure_guest_kernel(t, "auto", patched) is True
    assert fake_kernel_build == ["6.12.118"]
    assert guest.resolve_kernel("auto", patched)[1] == "6.12.118"
    # The second run finds it: nothing is built again.
    assert not guest.auto_kernel(patched).needs_build
    assert job.ensure_guest_kernel(t, "auto", patched) is False
    assert fake_kernel_build == ["6.12.118"]


def test_no_guest_kernel_is_built_where_debians_can_load_the_series(two_releases, fake_kernel_build):
    from ktest import job

    t = tree.prepare_debian("6.1")
    assert job.ensure_guest_kernel(t, "auto", {"virtio_ring": "x.ko"}) is False
    t = tree.prepare_debian("6.12")
    assert job.ensure_guest_kernel(t, "auto", {"virtio_net": "x.ko"}) is False     # not built in
    assert job.ensure_guest_kernel(t, "auto", {}) is False                         # --modules none
    assert job.ensure_guest_kernel(t, "debian", {"virtio_ring": "x.ko"}) is False  # refused later, by name
    assert fake_kernel_build == []


def test_boot_dry_run_says_it_would_build_the_guest_kernel(two_releases, fake_kernel_build, monkeypatch, capsys):
    from ktest.cli import main

    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_ring", "virtio_net"})
    monkeypatch.setattr(build, "build_kmod", lambda *a, **k: pytest.fail("built the modules"))
    assert main(["boot", "--dry-run", "--", "true"]) == 0
    err = capsys.readouterr().err
    assert "has virtio_ring built in" in err and "would build it first" in err, err
    assert "bzImage modules" in err and "modules_install" in err, err
    assert fake_kernel_build == []


def test_boot_builds_the_guest_kernel_before_the_modules(two_releases, fake_kernel_build, monkeypatch):
    from ktest.cli import bootcmd

    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_ring", "virtio_net"})

    def kmod(t, release, **kw):
        assert fake_kernel_build == ["6.12.118"] and release == "6.12.118"
        raise KeyboardInterrupt   # far enough: the modules build against the new kernel

    monkeypatch.setattr(build, "build_kmod", kmod)
    args = Namespace(modules="kmod", kernel="auto", cmd=["--", "true"], shell=False, dry_run=False,
                     extra_module=[], load=[], file=[])
    with pytest.raises(KeyboardInterrupt):
        bootcmd.cmd_boot(args)
    assert fake_kernel_build == ["6.12.118"]


def test_bench_in_the_guest_builds_the_guest_kernel_first(two_releases, monkeypatch):
    from ktest import bench, job

    t = tree.prepare_debian("6.12")
    monkeypatch.setattr(build, "build_tools", lambda *a, **k: None)
    seen = []

    def ensure(tr, *a, **k):
        seen.append(tr.version)
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "ensure_guest_kernel", ensure)
    with pytest.raises(KeyboardInterrupt):
        job.run_bench(t, bench.BenchSpec(program="virtio_test", variants=[]))
    assert seen == ["6.12.118"]


def test_build_each_builds_the_guest_kernel_first(two_releases, fake_kernel_build, monkeypatch):
    """series build-each builds the modules for the kernel that boots them: on 6.12 it
    stopped with "ktest has built no Linux 6.12.118 kernel" (and a hint build-each has
    no option for); it now builds that kernel first, as boot, run and bench do."""
    from ktest import buildeach
    from ktest.cli import seriescmd

    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest, "series_modules", lambda: {"virtio_ring", "virtio_net"})

    def each(t, **kw):
        assert fake_kernel_build == ["6.12.118"]
        assert guest.resolve_kernel("auto")[1] == "6.12.118"
        return []

    monkeypatch.setattr(buildeach, "build_each", each)
    assert seriescmd.cmd_series_build_each(Namespace(stop=False, full=False)) == 0
    assert fake_kernel_build == ["6.12.118"]


def test_ringtest_refuses_a_uniprocessor_guest_kernel(ktest_home, tmp_path):
    """ktest run on 6.12 with a guest built before the default fragments had ringtest:
    every variant failed on set_affinity; now one error names the kernel and the fix."""
    from ktest import job
    from ktest.errors import BenchError

    d = fake_build("up", "6.12.118", tmp_path / "obj")      # config: CONFIG_X=y, no SMP
    with pytest.raises(BenchError, match="uniprocessor") as e:
        job.refuse_uniprocessor(d / "bzImage")
    assert "ktest build --kernel" in e.value.hint
    (d / "config").write_text("CONFIG_SMP=y\n")
    job.refuse_uniprocessor(d / "bzImage")
    job.refuse_uniprocessor(tmp_path / "vmlinuz-debian")    # not a ktest build: Debian's are SMP


def test_stock_modules_skip_the_defaults_the_kernel_does_not_ship(two_releases, tmp_path, monkeypatch, capsys):
    """--modules stock: vhost_test only ever builds out of tree, so Debian's kernel has none; it is
    skipped (named), while a module asked for by name (--load) stays required."""
    root = tmp_path / "mods"
    (root / "kernel" / "drivers" / "net").mkdir(parents=True)
    (root / "modules.dep").write_text("kernel/drivers/net/virtio_net.ko:\nkernel/drivers/vhost/vhost_net.ko:\n")
    (root / "modules.builtin").write_text("kernel/drivers/virtio/virtio_pci.ko\n")
    monkeypatch.setattr(irfs, "modinfo", lambda path, field: "")
    skipped = []
    mods = irfs.resolve_modules(["virtio_pci", "virtio_net", "vhost_test"], {}, "x", root,
                                optional=list(guest.DEFAULT_MODULES), skipped=skipped)
    assert [m.name for m in mods] == ["virtio_net"] and skipped == ["vhost_test"]
    with pytest.raises(BootError, match="module vhost_test not found"):
        irfs.resolve_modules(["virtio_net", "vhost_test"], {}, "x", root)
    # prepare() hands the spec's optional list down and names what was left out.
    tree.prepare_debian("6.12")
    monkeypatch.setattr(guest.qboot, "check_kernel", lambda p: None)
    monkeypatch.setattr(guest.tools, "require", lambda stage: None)
    monkeypatch.setattr(guest, "module_dir", lambda k: root)

    def stop(mods, release):        # the step after resolving the modules
        raise BootError("stop here")

    monkeypatch.setattr(guest.irfs, "check_vermagic", stop)
    spec = guest.GuestSpec(cmd=["true"], kernel="debian", optional=list(guest.DEFAULT_MODULES))
    with pytest.raises(BootError, match="stop here"):
        guest.prepare(spec)
    assert "vhost_test: not a module of" in capsys.readouterr().err
    spec = guest.GuestSpec(cmd=["true"], kernel="debian", optional=[])
    with pytest.raises(BootError, match="module vhost_test not found"):
        guest.prepare(spec)


def test_stock_keeps_a_module_named_with_load_required():
    from ktest.cli import bootcmd, parser

    spec = bootcmd._guest_spec(parser().parse_args(["boot", "--modules", "stock", "--", "true"]), ["true"])
    assert spec.optional == guest.DEFAULT_MODULES
    args = parser().parse_args(["boot", "--modules", "stock", "--load", "vhost_test", "--", "true"])
    spec = bootcmd._guest_spec(args, ["true"])
    assert "vhost_test" in spec.modules and "vhost_test" not in spec.optional
