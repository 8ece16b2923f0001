"""ktest config: fragments, kconfiglib merging, and equality with merge_config.sh + make.

The merging tests load the real prepared tree's Kconfig (about 2-4 s, once
per module) and compare with the kernel's own scripts/kconfig run in a
temporary build directory; the tree itself is only read.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ktest import kbuild, kconfig, kprereq
from ktest import tree as ktree
from ktest.errors import BuildError

FRAGS = Path(__file__).resolve().parents[2] / "ktest" / "data" / "configs"


# --- fragments (no tree needed) ---------------------------------------------------

def test_parse_fragment_values_and_comments(tmp_path):
    f = tmp_path / "a.config"
    f.write_text('# a comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x \\"q\\""\n'
                 "CONFIG_D=0x10\nCONFIG_E=-1\n#CONFIG_F is not set (a comment too)\n")
    reqs = kconfig.parse_fragment(f).requests
    assert [(r.symbol, r.value, r.line) for r in reqs] == [
        ("A", "y", 3), ("B", "n", 4), ("C", 'x "q"', 5), ("D", "0x10", 6), ("E", "-1", 7)]


@pytest.mark.parametrize("line", ["CONFIG_A = y", "A=y", "CONFIG_A=yes", "CONFIG_A=\"open", "set CONFIG_A"])
def test_fragment_line_that_is_not_config_syntax_names_file_and_line(tmp_path, line):
    f = tmp_path / "bad.config"
    f.write_text(f"CONFIG_OK=y\n{line}\n")
    with pytest.raises(kconfig.ConfigError, match=r"bad.config:2: "):
        kconfig.parse_fragment(f)


def test_fragment_names_resolve_to_configs_dir():
    assert kconfig.fragment_path("guest") == FRAGS / "guest.config"
    with pytest.raises(kconfig.ConfigError, match="no fragment 'nosuch'.*known: .*guest"):
        kconfig.fragment_path("nosuch")


def test_repo_fragments_parse():
    for f in FRAGS.glob("*.config"):
        assert kconfig.parse_fragment(f).requests, f


def test_default_build_dir_names_base_and_fragments(ktest_home):
    d = kconfig.default_build_dir("tinyconfig", ["guest", "/x/y/debug.config"])
    assert d == ktest_home / "kernel" / "obj-tinyconfig-guest-debug"


# --- kbuild helpers (no tree needed) ---------------------------------------------

def test_missing_tools_name_debian_packages():
    cfg = {"CONFIG_OBJTOOL": "y", "CONFIG_MODULE_SIG_FORMAT": "y"}
    missing = kprereq.missing_tools(cfg, which=lambda t: None if t in ("flex", "bison", "gcc", "bc") else "/x",
                                   exists=lambda p: False)
    assert {m.package for m in missing} == {"gcc", "flex", "bison", "bc", "libelf-dev", "libssl-dev"}
    assert kprereq.missing_tools({}, which=lambda t: "/x", exists=lambda p: True) == []


def test_check_prerequisites_message(monkeypatch):
    monkeypatch.setattr(kprereq, "missing_tools", lambda cfg: [kprereq.Prerequisite("flex", "flex", "the lexer")])
    with pytest.raises(BuildError, match="Debian package flex") as e:
        kprereq.check_prerequisites({})
    assert e.value.hint == "Install them with: apt-get install flex"


def test_build_key_changes_with_each_input():
    tc = {"gcc": "gcc 12", "ld": "ld 2.40", "make": "make 4.3", "cc": "ccache gcc"}
    k = kbuild.build_key("c1", "", "s1", tc)
    assert k == kbuild.build_key("c1", "", "s1", dict(tc))
    assert len({k, kbuild.build_key("c2", "", "s1", tc), kbuild.build_key("c1", "d", "s1", tc),
                kbuild.build_key("c1", "", "s2", tc), kbuild.build_key("c1", "", "s1", {**tc, "gcc": "gcc 13"})}) == 5


def test_image_release_reads_the_boot_header(tmp_path):
    img = bytearray(0x2000)
    img[0x202:0x206] = b"HdrS"
    img[0x20e:0x210] = (0x1000).to_bytes(2, "little")
    text = b"6.1.192 (ktest@ktest) #1 SMP\0"
    img[0x1200:0x1200 + len(text)] = text
    p = tmp_path / "bzImage"
    p.write_bytes(bytes(img))
    assert kbuild.image_release(p) == "6.1.192"


def test_first_error_is_shown_with_file_and_line(tmp_path):
    tree = Path("/src/linux")
    log = tmp_path / "build.log"
    log.write_text("  CC      kernel/fork.o\n"
                   "/src/linux/drivers/virtio/virtio_ring.c:12:5: warning: unused variable 'x'\n"
                   "/src/linux/drivers/virtio/virtio_ring.c:40:1: error: expected ';' before '}' token\n"
                   "make[3]: *** [scripts/Makefile.build:250: drivers/virtio/virtio_ring.o] Error 1\n")
    err = kbuild._first_error(log, tree)
    assert "drivers/virtio/virtio_ring.c:40: error: expected ';'" in err.message
    assert kbuild.warning_lines(log.read_text(), tree) == [
        "drivers/virtio/virtio_ring.c:12:5: warning: unused variable 'x'"]


def test_make_argv_pins_localversion_and_ccache(tmp_path):
    t = ktree.Tree(path=Path("/src/linux"), base="b", base_ref="v", version="6.1.192", kind="debian")
    argv = kbuild.make_argv(t, tmp_path, "bzImage", jobs=2, cc="ccache gcc")
    assert argv == ["make", "-C", "/src/linux", f"O={tmp_path}", "-j2", "CC=ccache gcc", "LOCALVERSION=", "bzImage"]


# --- the real tree ----------------------------------------------------------------

def _find_tree() -> ktree.Tree | None:
    homes = [os.environ.get("KTEST_HOME"), str(Path.home() / ".cache" / "ktest")]
    for h in filter(None, homes):
        cfg = Path(h) / "config"
        if not cfg.exists():
            continue
        r = subprocess.run(["git", "config", "--file", str(cfg), "--get", "tree.path"], capture_output=True,
                           text=True, timeout=30)
        t = ktree._load(Path(r.stdout.strip())) if r.returncode == 0 and r.stdout.strip() else None
        if t is not None and (t.path / "scripts/kconfig/merge_config.sh").exists():
            return t
    return None


@pytest.fixture(scope="module")
def real_tree():
    t = _find_tree()
    if t is None:
        pytest.fail("these tests read the real Debian 6.1 tree's Kconfig and none is prepared: "
                    "run `ktest tree prepare` first (or the slow tier, which prepares one)")
    return t


def _make(t, out: Path, *targets: str) -> None:
    r = subprocess.run(["make", "-s", "-C", str(t.path), f"O={out}", *targets], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


@pytest.fixture(scope="module")
def reference(real_tree, tmp_path_factory):
    """One build dir for the kernel's own scripts/kconfig (conf is built once)."""
    ref = tmp_path_factory.mktemp("kconfig-ref")
    _make(real_tree, ref, "tinyconfig")
    tiny = ref.parent / "tinyconfig.config"
    shutil.copyfile(ref / ".config", tiny)
    return ref, tiny


def merge_config(t, ref: Path, base: Path, fragments: list[Path]) -> str:
    """scripts/kconfig/merge_config.sh -m BASE FRAGMENTS... then make olddefconfig."""
    shutil.copyfile(base, ref / "base.config")
    r = subprocess.run([str(t.path / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(ref),
                        str(ref / "base.config"), *map(str, fragments)],
                       cwd=ref, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    _make(t, ref, "olddefconfig")
    return (ref / ".config").read_text()


@pytest.fixture
def frag(tmp_path):
    def make(name: str, text: str) -> Path:
        p = tmp_path / f"{name}.config"
        p.write_text(text)
        return p
    return make


UNMET = "CONFIG_VIRTIO_NET=y\nCONFIG_VHOST_NET=m\nCONFIG_NR_CPUS=64\n"
CONTRA = "CONFIG_TUN=y\n# CONFIG_PRINTK_TIME is not set\nCONFIG_KERNEL_LZ4=y\n"


@pytest.mark.parametrize("sets", [
    ["guest"],
    ["guest", "debug", "ringtest"],
    ["guest", "CONTRA"],
    ["UNMET"],
], ids=["guest", "guest+debug+ringtest", "contradictory", "unmet-dependency"])
def test_merge_equals_merge_config_sh_and_olddefconfig(real_tree, reference, frag, tmp_path, sets):
    ref, tiny = reference
    named = {"UNMET": frag("unmet", UNMET), "CONTRA": frag("contra", CONTRA)}
    frags = [named.get(s, s) for s in sets]
    res = kconfig.configure(real_tree, str(tiny), frags, out=tmp_path / "obj")
    assert res.fragments[-1] == FRAGS / "ktest.config"
    expected = merge_config(real_tree, ref, tiny, res.fragments)
    assert res.config.read_text() == expected
    if "UNMET" in sets:
        assert {m.symbol for m in res.mismatches} == {"VIRTIO_NET", "VHOST_NET", "NR_CPUS"}
        by = {m.symbol: m for m in res.mismatches}
        assert by["VIRTIO_NET"].where.endswith("unmet.config:1")
        assert "depends on VIRTIO && NET_CORE && NETDEVICES" in by["VIRTIO_NET"].reason
        assert "CONFIG_NET=y" in by["VIRTIO_NET"].hint and "CONFIG_NETDEVICES=y" in by["VIRTIO_NET"].hint
        assert "EVENTFD [=n]" in by["VHOST_NET"].reason and "CONFIG_EVENTFD=y" in by["VHOST_NET"].hint
        assert "SMP" in by["NR_CPUS"].reason and by["NR_CPUS"].hint == "CONFIG_SMP=y"
    elif "CONTRA" in sets:
        assert [(o.symbol, o.old, o.new) for o in res.overrides] == [("TUN", "m", "y"), ("PRINTK_TIME", "y", "n")]
        # Two members of one choice: the later wins, the earlier is reported.
        assert [(m.symbol, m.requested, m.actual) for m in res.mismatches] == [("KERNEL_GZIP", "y", "n")]
        assert "choice picked CONFIG_KERNEL_LZ4" in res.mismatches[0].reason
    else:
        assert res.mismatches == [] and res.overrides == []


def test_tinyconfig_base_equals_make_tinyconfig(real_tree, reference, tmp_path):
    ref, tiny = reference
    res = kconfig.configure(real_tree, "tinyconfig", [], out=tmp_path / "obj", pin=False)
    assert res.config.read_text() == tiny.read_text()


def test_defconfig_base_plus_guest_equals_make(real_tree, reference, tmp_path):
    ref, _ = reference
    _make(real_tree, ref, "defconfig")
    made = tmp_path / "defconfig.config"
    shutil.copyfile(ref / ".config", made)
    res = kconfig.configure(real_tree, "defconfig", ["guest"], out=tmp_path / "obj")
    assert res.config.read_text() == merge_config(real_tree, ref, made, res.fragments)


def test_the_guest_fragments_are_met_on_tinyconfig(real_tree, tmp_path):
    res = kconfig.configure(real_tree, "tinyconfig", ["guest", "debug", "ringtest"], out=tmp_path / "obj")
    assert res.mismatches == []
    values = kconfig.read_config(res.config)
    for sym, want in [("CONFIG_64BIT", "y"), ("CONFIG_VIRTIO_PCI", "m"), ("CONFIG_VHOST_NET", "m"),
                      ("CONFIG_VHOST", "m"), ("CONFIG_ACPI", "y"), ("CONFIG_PROVE_LOCKING", "y"),
                      ("CONFIG_SMP", "y"), ("CONFIG_LOCALVERSION", "")]:
        assert values.get(sym) == want, sym
    assert "CONFIG_LOCALVERSION_AUTO" not in values


def test_unknown_symbol_is_an_error_with_file_and_line(real_tree, frag, tmp_path):
    f = frag("typo", "CONFIG_VIRTIO_NET=m\n\nCONFIG_VIRTIO_NETT=m\n")
    with pytest.raises(kconfig.ConfigError, match=r"typo.config:3: unknown symbol CONFIG_VIRTIO_NETT.*"
                                                  r"did you mean CONFIG_VIRTIO_NET\?"):
        kconfig.configure(real_tree, "tinyconfig", [f], out=tmp_path / "obj")


def test_unsetting_a_symbol_the_tree_lacks_is_met(real_tree, frag, tmp_path):
    f = frag("gone", "# CONFIG_KTEST_NO_SUCH_SYMBOL is not set\nCONFIG_VIRTIO_NET=m\n")
    res = kconfig.configure(real_tree, "tinyconfig", ["guest", f], out=tmp_path / "obj")
    assert res.mismatches == [] and "KTEST_NO_SUCH_SYMBOL" not in res.config.read_text()


def test_value_of_the_wrong_type_is_an_error(real_tree, frag, tmp_path):
    f = frag("types", "CONFIG_NET=m\n")
    with pytest.raises(kconfig.ConfigError, match=r"types.config:1: CONFIG_NET is a bool: 'm' is not a value"):
        kconfig.configure(real_tree, "tinyconfig", [f], out=tmp_path / "obj")


def test_same_inputs_are_not_loaded_again(real_tree, frag, tmp_path, monkeypatch):
    first = kconfig.configure(real_tree, "tinyconfig", ["guest"], out=tmp_path / "obj")
    monkeypatch.setattr(kconfig, "load", lambda *a, **k: pytest.fail("loaded Kconfig for unchanged inputs"))
    again = kconfig.configure(real_tree, "tinyconfig", ["guest"], out=tmp_path / "obj")
    assert again.cached and again.sha256 == first.sha256 and again.seconds < 2
    # A changed fragment is new input.
    f = frag("more", "CONFIG_TUN=y\n")
    monkeypatch.undo()
    third = kconfig.configure(real_tree, "tinyconfig", ["guest", f], out=tmp_path / "obj")
    assert not third.cached and kconfig.read_config(third.config)["CONFIG_TUN"] == "y"


def test_relative_fragment_and_out_are_resolved_before_kconfiglib_changes_directory(
        real_tree, tmp_path, monkeypatch):
    """`ktest config -f unmet.config --out obj` in the directory holding the fragment."""
    (tmp_path / "unmet.config").write_text("CONFIG_VIRTIO_CONSOLE=m\n")
    monkeypatch.chdir(tmp_path)
    res = kconfig.configure(real_tree, "tinyconfig", ["guest", "unmet.config"], out=Path("obj"))
    assert res.config == tmp_path / "obj" / ".config"
    assert kconfig.read_config(res.config)["CONFIG_VIRTIO_CONSOLE"] == "m"
    assert tmp_path / "unmet.config" in res.fragments
