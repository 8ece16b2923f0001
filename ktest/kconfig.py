"""Kernel ``.config`` from a base and fragments, with kconfiglib instead of make.

The result is what ``scripts/kconfig/merge_config.sh -m`` followed by
``make olddefconfig`` gives for the same base and fragments (the unit tests
compare the two), but ktest also knows, for every symbol a fragment asked
for, whether it got it, and if not, which dependency stood in the way.

Fragments are kernel ``.config`` syntax: ``CONFIG_X=y``, ``CONFIG_X="s"``,
``# CONFIG_X is not set``, comments and blank lines.  ktest's own are in
``configs/``; ``configs/ktest.config`` is always applied last.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import paths, ui
from .kernels import debian_release
from .kexplain import Mismatch, Override, _check_requests, verify
from .kfragment import ConfigError, Fragment, Request, fragment_path, parse_fragment, read_config
from .run import run
from .tree import Tree, is_clean, makefile_version

__all__ = ["BASES", "ConfigError", "ConfigResult", "Fragment", "Mismatch", "Override", "Request", "configure",
           "default_build_dir", "file_sha256", "fragment_path", "kbuild_env", "load", "parse_fragment",
           "read_config", "verify"]

BASES = ("tinyconfig", "defconfig", "distro")
PINNED = "ktest"                    # configs/ktest.config, applied after every other fragment
STAMP = "ktest-config.json"
# Bump when the way a .config is made changes, so stamps from before are not trusted.
_SCHEMA = 1


# --- loading the tree's Kconfig -----------------------------------------------

# kconfiglib 14.1 knows only 'option modules'; since 5.x the kernel marks
# MODULES with a bare 'modules' line (kernel/module/Kconfig:4).
_MODULES_RE = re.compile(r"^([ \t]+)modules[ \t]*$", re.M)


def _kconfig_class():
    try:
        import kconfiglib
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ConfigError("the Python package kconfiglib is missing",
                          hint="Install it with: pip install 'kconfiglib>=14.1'") from e

    class Kconfig(kconfiglib.Kconfig):
        def _open(self, filename, mode):
            f = super()._open(filename, mode)
            if mode != "r" or not os.path.basename(filename).startswith("Kconfig"):
                return f
            with f:
                text = f.read()
            return io.StringIO(_MODULES_RE.sub(r"\1option modules", text))

    return Kconfig


def _first_line(argv: list[str]) -> str:
    r = run(argv, env={"LC_ALL": "C"}, timeout=30, check=False)
    lines = r.stdout.splitlines()
    return lines[0] if r.returncode == 0 and lines else ""


def kbuild_env(tree: Path, cc: str = "gcc") -> dict[str, str]:
    """The variables the top-level Makefile exports to Kconfig (x86, GNU toolchain).

    Measured by dropping each one and diffing against ``make defconfig`` /
    ``make tinyconfig``: without srctree, SRCARCH, CC or LD the tree does not
    load at all (scripts/Kconfig.include stops: "this C compiler is not
    supported"); CC_VERSION_TEXT is written into the .config; ARCH decides
    whether 64BIT has a prompt (so tinyconfig is i386 with ARCH=x86, as in
    make) and, with KERNELVERSION, makes the header line.  SUBARCH, AR, NM,
    OBJCOPY, PAHOLE, RUSTC, BINDGEN and the empty flags changed nothing with
    gcc/binutils here; they are set as Kbuild sets them so that nothing
    leaks in from the caller's environment.
    """
    # Kbuild strips '#' from the version text: it would start a comment in auto.conf.cmd.
    cc_text = _first_line([*cc.split(), "--version"]).replace("#", "")
    return {
        "srctree": str(tree), "ARCH": "x86", "SRCARCH": "x86", "SUBARCH": "x86",
        "CC": cc, "LD": "ld", "AR": "ar", "NM": "nm", "OBJCOPY": "objcopy", "HOSTCC": "gcc",
        "PAHOLE": "pahole", "RUSTC": "rustc", "BINDGEN": "bindgen",
        "CC_VERSION_TEXT": cc_text, "KERNELVERSION": makefile_version(tree),
        "CLANG_FLAGS": "", "USERCFLAGS": "", "USERLDFLAGS": "", "CROSS_COMPILE": "",
    }


@contextlib.contextmanager
def _as_kbuild(env: dict[str, str], cwd: Path):
    """kconfiglib reads $(VAR) from os.environ and runs $(shell,...) in the
    current directory ($(cc-option) makes a .tmp_$$ directory there), so load
    as conf would: Kbuild's variables set, in the build directory."""
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    for k in [k for k in os.environ if k.startswith("KCONFIG_")]:
        del os.environ[k]
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


_LOADED: dict[tuple, object] = {}


def load(tree: Path, env: dict[str, str], workdir: Path):
    """The tree's Kconfig, parsed once per process (about 2 s for 6.1 x86)."""
    key = (str(tree), tuple(sorted(env.items())))
    if key in _LOADED:
        return _LOADED[key]
    if not (tree / "Kconfig").exists():
        raise ConfigError(f"{tree}: no top-level Kconfig; is this a kernel tree?")
    Kconfig = _kconfig_class()
    import kconfiglib

    workdir.mkdir(parents=True, exist_ok=True)
    with ui.step(f"loading {tree.name}'s Kconfig (x86)"), _as_kbuild(env, workdir):
        try:
            kconf = Kconfig("Kconfig", warn_to_stderr=False, suppress_traceback=False)
        except kconfiglib.KconfigError as e:
            raise ConfigError(f"kconfiglib could not load {tree}/Kconfig: {e}") from e
    _LOADED[key] = kconf
    return kconf


# --- making the .config -------------------------------------------------------

@dataclass
class ConfigResult:
    build_dir: Path
    config: Path
    base: str
    fragments: list[Path]          # in the order applied, configs/ktest.config last
    base_file: Path | None         # the .config the fragments were merged onto (FILE/distro)
    requests: list[Request]        # the winning request per symbol
    overrides: list[Override]
    mismatches: list[Mismatch]
    symbols: int = 0
    seconds: float = 0.0
    cached: bool = False
    sha256: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["build_dir"] = str(self.build_dir)
        d["config"] = str(self.config)
        d["fragments"] = [str(f) for f in self.fragments]
        d["base_file"] = str(self.base_file) if self.base_file else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ConfigResult":
        return cls(Path(d["build_dir"]), Path(d["config"]), d["base"], [Path(f) for f in d["fragments"]],
                   Path(d["base_file"]) if d["base_file"] else None,
                   [Request(**r) for r in d["requests"]], [Override(**o) for o in d["overrides"]],
                   [Mismatch(**m) for m in d["mismatches"]], d["symbols"], d["seconds"], True,
                   d["sha256"])


def distro_config() -> Path:
    p = Path(f"/boot/config-{debian_release()}")
    if not p.exists():
        raise ConfigError(f"{p} does not exist", hint="Install it with: apt-get install linux-image-amd64")
    return p


def default_build_dir(base: str, fragments: list[str | Path]) -> Path:
    """One build directory per base and fragment list, so switching is cheap."""
    names = [Path(str(base)).stem if base not in BASES else base]
    names += [Path(str(f)).stem for f in fragments]
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", n) for n in names)
    if len(slug) > 60:
        slug = slug[:40] + "-" + hashlib.sha1(slug.encode()).hexdigest()[:8]
    return paths.home() / "kernel" / f"obj-{slug}"


def header(kconf) -> str:
    """The header conf writes, so the files are equal byte for byte."""
    return f"#\n# Automatically generated file; DO NOT EDIT.\n# {kconf.mainmenu_text}\n#\n"


def _c_compat_implies(kconf) -> None:
    """conf writes a symbol that something implies even when the symbol's own
    dependencies are off ('# CONFIG_X is not set'); kconfiglib leaves it out.
    Mark those for writing, so the files are equal (e.g. x86's
    IMA_SECURE_AND_OR_TRUSTED_BOOT in defconfig).  The flag is kept because
    the value is cached until a value changes again."""
    import kconfiglib

    for sym in kconf.unique_defined_syms:
        if sym.weak_rev_dep is kconf.n or sym.choice is not None:
            continue
        sym.tri_value  # computes the value and the flag this corrects
        if kconfiglib.expr_value(sym.weak_rev_dep):
            sym._write_to_conf = True


def _c_compat_choices(kconf) -> None:
    """From 6.11 (scripts/kconfig/symbol.c, sym_calc_choice()), conf does not
    take a choice's default when the user set that member to n: it takes the
    first visible member the user left unset.  kconfiglib still takes the
    default (6.12's x86_64_defconfig unsets INTEL_IOMMU_DEFAULT_ON; conf
    picks INTEL_IOMMU_DEFAULT_ON_INTGPU_OFF).  Select that member, as conf
    would; older trees keep the old rule."""
    m = re.search(r"\b(\d+)\.(\d+)", kconf.mainmenu_text)
    if not m or (int(m.group(1)), int(m.group(2))) < (6, 11):
        return
    for choice in kconf.unique_choices:
        if choice.user_selection is not None:
            continue
        default = choice._selection_from_defaults()
        if default is None or default.user_value != 0:
            continue
        pick = next((s for s in choice.syms if s.visibility and s.user_value is None), None)
        if pick is not None:
            pick.set_value(2)


def _write(kconf, dest: Path) -> None:
    _c_compat_choices(kconf)
    _c_compat_implies(kconf)
    tmp = dest.with_name(dest.name + ".tmp")
    kconf.write_config(str(tmp), header=header(kconf), save_old=False)
    os.replace(tmp, dest)


def _tinyconfig(kconf, tree: Path, dest: Path) -> None:
    """``make tinyconfig``: allnoconfig with kernel/configs/tiny-base.config as
    KCONFIG_ALLCONFIG, written out, then ``make tiny.config`` (merge_config.sh
    -m of kernel/configs/tiny.config and arch/x86/configs/tiny.config, then
    olddefconfig)."""
    kconf.warn = False      # assigning to prompt-less symbols, as allnoconfig.py does
    try:
        for sym in kconf.unique_defined_syms:
            sym.set_value(2 if sym.is_allnoconfig_y else 0)
    finally:
        kconf.warn = True
    kconf.load_config(str(tree / "kernel/configs/tiny-base.config"), replace=False)
    _write(kconf, dest)
    kconf.load_config(str(dest), replace=True)
    for f in ("kernel/configs/tiny.config", "arch/x86/configs/tiny.config"):
        kconf.load_config(str(tree / f), replace=False)


def _apply_base(kconf, base: str, tree: Path, dest: Path) -> Path | None:
    """Leave the base configuration in ``dest`` and loaded, as make leaves .config."""
    if base == "tinyconfig":
        _tinyconfig(kconf, tree, dest)
        _write(kconf, dest)
        kconf.load_config(str(dest), replace=True)
        return None
    if base == "defconfig":
        kconf.load_config(str(tree / "arch/x86/configs/x86_64_defconfig"), replace=True)
        _write(kconf, dest)
        kconf.load_config(str(dest), replace=True)
        return None
    src = distro_config() if base == "distro" else Path(base)
    if not src.is_file():
        raise ConfigError(f"base {base!r}: not one of {', '.join(BASES)} and not a file")
    kconf.load_config(str(src), replace=True)
    return src


def _inputs_key(tree: Tree, base: str, base_file: Path | None, frag_paths: list[Path],
                env: dict[str, str]) -> str:
    h = hashlib.sha256()
    commit = tree.git("rev-parse", "HEAD").stdout.strip()
    dirty = "" if is_clean(tree) else tree.git("diff", "HEAD", "--", "*Kconfig*", "arch/x86/configs",
                                                "kernel/configs").stdout
    h.update(f"{_SCHEMA}\0{commit}\0{hashlib.sha256(dirty.encode()).hexdigest()}\0{base}\0".encode())
    # This file's own code decides the result and its explanations.
    h.update(Path(__file__).read_bytes())
    for f in ([base_file] if base_file else []) + frag_paths:
        h.update(str(f.resolve()).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(json.dumps(sorted(env.items())).encode())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def configure(tree: Tree, base: str = "tinyconfig", fragments: list[str | Path] | None = None, *,
              out: Path | None = None, cc: str = "gcc", pin: bool = True) -> ConfigResult:
    """Write ``out/.config`` from ``base`` and ``fragments`` and check the result.

    Without changes to the inputs (tree commit, base, fragment contents,
    toolchain) since the last run into the same directory, nothing is
    loaded: the stamp next to the .config says what it was made from.
    """
    start = time.monotonic()
    names = list(fragments or [])
    frag_paths = [fragment_path(f) for f in names]
    if pin:
        frag_paths.append(paths.configs_dir() / f"{PINNED}.config")
    out = Path(out).resolve() if out else default_build_dir(base, names)
    out.mkdir(parents=True, exist_ok=True)
    config = out / ".config"
    base_file = None
    if base not in ("tinyconfig", "defconfig"):
        base_file = (distro_config() if base == "distro" else Path(base)).resolve()
        if not base_file.is_file():
            raise ConfigError(f"base {base!r}: not one of {', '.join(BASES)} and not a file")
    parsed = [parse_fragment(p) for p in frag_paths]
    env = kbuild_env(tree.path, cc)
    key = _inputs_key(tree, base, base_file, frag_paths, env)
    stamp = out / STAMP
    if stamp.exists() and config.exists():
        try:
            saved = json.loads(stamp.read_text())
            if saved.get("inputs") == key and saved["result"]["sha256"] == file_sha256(config):
                res = ConfigResult.from_json(saved["result"])
                res.seconds = time.monotonic() - start
                return res
        except (ValueError, KeyError, TypeError):
            pass
    kconf = load(tree.path, env, out)
    with ui.step(f"writing {config}"), _as_kbuild(env, out):
        requests, overrides = _check_requests(kconf, parsed)
        if base_file is not None and base_file.resolve() == config.resolve():
            # merge_config.sh -m .config ...: the base is the file being replaced.
            snapshot = out / ".config.base"
            snapshot.write_bytes(config.read_bytes())
            base_file = snapshot
        _apply_base(kconf, base if base_file is None else str(base_file), tree.path, config)
        for frag in frag_paths:
            kconf.load_config(str(frag), replace=False)
        _write(kconf, config)
        mismatches = verify(kconf, requests)
    res = ConfigResult(out, config, base, frag_paths, base_file, requests, overrides, mismatches,
                       symbols=len(kconf.unique_defined_syms), seconds=time.monotonic() - start,
                       sha256=file_sha256(config))
    stamp.write_text(json.dumps({"inputs": key, "result": res.to_json()}, indent=2) + "\n")
    return res
