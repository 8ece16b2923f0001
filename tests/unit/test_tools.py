"""The tool registry, setup-host and ktest doctor agree."""
import os
import re
import subprocess
import sys
from pathlib import Path

from ktest import tools
from tests.conftest import REPO


def setup_host_packages() -> set[str]:
    text = (REPO / "scripts" / "setup-host").read_text()
    m = re.search(r"^PACKAGES=\((.*?)^\)", text, re.M | re.S)
    assert m, "scripts/setup-host has no PACKAGES=( ... ) list"
    words = {w for line in m.group(1).splitlines() for w in line.split("#", 1)[0].split()}
    opt = re.search(r"^OPTIONAL=\(([^)]*)\)", text, re.M)
    return words | (set(opt.group(1).split()) if opt else set())


def test_setup_host_installs_a_package_for_every_registry_entry():
    installed = setup_host_packages()
    missing = sorted({t.package for t in tools.REGISTRY} - installed)
    assert not missing, f"scripts/setup-host does not install {missing}"


def test_setup_host_parser_sees_the_list():
    # A parser that found nothing would make the test above pass vacuously.
    assert {"rsync", "qemu-system-x86", "git"} <= setup_host_packages()


def _path_without(tmp_path: Path, *gone: str) -> str:
    """A PATH with every registry program but ``gone`` (symlinks), and python."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for t in tools.REGISTRY:
        if t.name.startswith("/") or t.name in gone:
            continue
        where = t.found()
        if where:
            (bindir / t.name).symlink_to(where)
    (bindir / "python3").symlink_to(sys.executable)
    return str(bindir)


def test_doctor_names_the_package_of_a_missing_program(tmp_path):
    env = dict(os.environ, PATH=_path_without(tmp_path, "rsync"), KTEST_HOME=str(tmp_path / "home"))
    r = subprocess.run([sys.executable, "-m", "ktest", "doctor"], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    row = next(ln for ln in r.stdout.splitlines() if " rsync " in ln)
    assert "MISSING" in row and "rsync" in row
    assert "apt-get install rsync" in r.stderr


def test_require_names_program_package_and_setup_host(monkeypatch):
    monkeypatch.setattr(tools.Tool, "found", lambda self: None if self.name == "rsync" else "/x")
    try:
        tools.require(tools.TOOLS)
    except tools.ToolMissing as e:
        assert "rsync not found (Debian package rsync)" in e.message
        assert "scripts/setup-host" in e.hint
    else:
        raise AssertionError("require() passed without rsync")
    tools.require(tools.BOOT)      # rsync is not the guest's business
