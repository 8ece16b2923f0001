"""A failed module build names the tree's file:line and leaves no stale module behind."""
import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow


def test_failed_module_build_names_the_tree_and_lists_no_stale_ko(applied):
    ok = ktest("build", "--kmod", check=0)
    kos = [Path(p) for p in ok.stdout.split() if p.endswith(".ko")]
    assert kos and all(k.exists() for k in kos)
    directory = kos[0].parent
    src = applied / "drivers/virtio/virtio_ring.c"
    text = src.read_text()
    lines = text.splitlines(keepends=True)
    n = next(i for i, ln in enumerate(lines, 1) if ln.startswith("static bool vring_use_dma_api("))
    lines.insert(n - 1, "int ktest_broken = ;\n")
    try:
        src.write_text("".join(lines))
        r = ktest("build", "--kmod")
        assert r.returncode == 1
        assert f"module build failed: {applied}/drivers/virtio/virtio_ring.c:{n}: error:" in r.stderr
        assert str(directory) + "/drivers" not in r.stderr.split("log:")[0]
        meta = json.loads((directory / "metadata.json").read_text())
        assert meta["result"] == "fail" and meta["artifacts"] == []
        assert not list(directory.glob("*.ko"))
    finally:
        src.write_text(text)
        subprocess.run(["git", "-C", str(applied), "status", "--porcelain"], check=True, timeout=120)
    ktest("build", "--kmod", check=0)
