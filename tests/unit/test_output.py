"""Output read in a log file (stdout not a terminal) keeps every name whole."""
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = r'''
from ktest import bench, job, ui
variants = [f"virtio_ring_variant_number_{i}" for i in range(8)]
summary = [bench.Summary(v, "HEAD", 3, 1 if i == 2 else 0, 1.0, 0.9, 1.1, 0.1, "ok",
                         {"avail_ring.buf_stores_skipped_total": 1048576.0 + i},
                         [134] if i == 2 else [])
           for i, v in enumerate(variants)]
ui.out.print(job.counters_table(summary))
ui.out.print(job.summary_table(summary, "title"))
'''


def test_tables_in_a_log_are_not_cut():
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    row = next(ln for ln in r.stdout.splitlines() if "avail_ring" in ln)
    assert "avail_ring.buf_stores_skipped_total" in row and row.count("1,048,5") == 8
    header = "".join(ln for ln in r.stdout.splitlines()[:6])
    for i in range(8):
        assert f"virtio_ring_variant_number_{i}" in header
    failed = next(ln for ln in r.stdout.splitlines() if "virtio_ring_variant_number_2" in ln and "(exit" in ln)
    assert "1 (exit 134)" in failed
