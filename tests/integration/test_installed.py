"""ktest installed as a user installs it (a wheel, not editable), run on a series elsewhere."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, git

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    build = tmp_path_factory.mktemp("src")
    # A copy, so the install cannot read the checkout and the checkout gets no build/ dir.
    shutil.copytree(REPO, build / "ktest", ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__"))
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--no-deps",
                    str(build / "ktest")], check=True, timeout=600, capture_output=True)
    shutil.rmtree(build)
    return venv / "bin" / "ktest"


def test_a_wheel_install_applies_the_series_the_user_stands_in(installed, prepared, base_tag, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("KTEST_PATCHES", "QUILT_PATCHES", "PYTHONPATH")}
    env["KTEST_HOME"] = str(tmp_path / "home")
    work = tmp_path / "work"
    shutil.copytree(REPO / "patches", work / "patches")
    lines = (work / "patches" / "series").read_text().splitlines()
    dropped = [ln for ln in lines if ln.strip() and not ln.startswith("#")][-1]
    (work / "patches" / "series").write_text("\n".join(ln for ln in lines if ln != dropped) + "\n")
    (work / "sub").mkdir()

    def k(*args, cwd=work / "sub"):
        r = subprocess.run([str(installed), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, f"ktest {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    where = subprocess.run([str(installed.parent / "python"), "-c", "import ktest; print(ktest.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env).stdout
    assert str(REPO) not in where and "site-packages" in where
    k("tree", "prepare", "--tree", str(prepared[0]), "--base", base_tag)
    r = k("series", "apply")
    assert f"series {work / 'patches'} (from cwd)" in r.stderr
    wt = Path(k("tree", "path").stdout.strip())
    n = len([ln for ln in lines if ln.strip() and not ln.startswith("#")])
    assert int(git(wt, "rev-list", "--count", f"{base_tag}..HEAD")) == n - 1
    r = k("doctor")
    assert "series project" in r.stdout and str(work / "patches" / "series") in r.stdout
