import subprocess, sys
from pathlib import Path
sys.path.insert(0, "/work/wt/figs612")
from tests.integration import test_rx_skip as t
d = Path("/work/figs612-out/rxs")
(d / "rx_skip.sh").write_text(t.GUEST)
for name in ("vhost_rx_skip_order", "vdpa_config_rx_skip"):
    subprocess.run(["gcc", "-O2", "-Wall", "-o", d / name, t.DATA / f"{name}.c"], check=True, timeout=120)
subprocess.run(["clang", "-O2", "-target", "bpf", "-c", t.DATA / "xdp_pass.c", "-o", d / "xdp_pass.o"], check=True, timeout=120)
