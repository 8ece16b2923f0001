import subprocess, sys
from pathlib import Path
sys.path.insert(0, "/work/wt/figs612")
from tests.integration import test_tx_hdr_block as t
d = Path("/work/figs612-out/txb")
(d / "vdpa_add.c").write_text(t.VDPA_ADD_C)
subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", d / "vdpa_add", d / "vdpa_add.c"], check=True, timeout=120)
sh = d / "txblock.sh"; sh.write_text(t.GUEST_SH); sh.chmod(0o755)
