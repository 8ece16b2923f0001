import json
import shutil
import subprocess

import pytest

from ktest import bench
from ktest.errors import BenchError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def ktest_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("tools")
    shutil.copy(REPO / "tools_virtio" / "ktest-run.c", d)
    shutil.copy(REPO / "tools_virtio" / "Makefile", d)
    subprocess.run(["make", "-C", str(d)], check=True, capture_output=True, timeout=120)
    return d / "ktest-run"


def _run(ktest_run, *args):
    return subprocess.run([str(ktest_run), *args], capture_output=True, text=True, timeout=60).stdout


def test_real_ktest_run_output_parses(ktest_run):
    out = _run(ktest_run, "-t", "bench=ringtest", "-t", "variant=ring", "-t", "run=1", "--",
               "sh", "-c", "echo avail_writes_skipped=42 cachelines=6; sleep 0.05")
    out += _run(ktest_run, "-t", "bench=ringtest", "-t", "variant=ring", "-t", "run=2", "--", "sh", "-c", "exit 3")
    recs = bench.parse_output(out.splitlines())
    assert [(r.variant, r.run, r.status) for r in recs] == [("ring", 1, 0), ("ring", 2, 3)]
    assert recs[0].wall_s >= 0.05 and recs[0].wall_s < 5
    assert recs[0].counters == {"avail_writes_skipped": 42.0, "cachelines": 6.0}
    assert recs[1].counters == {}
    s = bench.summarise(recs)
    assert (s[0].runs, s[0].failed, s[0].median) == (2, 1, recs[0].wall_s)


def test_kernel_messages_are_not_counters():
    lines = ["[    5.1] virtio_net virtio0 eth0: foo=1",
             "KTEST-RUN variant=x run=1 status=0 wall_ns=1 utime_us=0 stime_us=0 nvcsw=0 nivcsw=0 maxrss_kb=1"]
    assert bench.parse_output(lines)[0].counters == {}


def test_incomplete_line_is_an_error():
    with pytest.raises(BenchError, match="incomplete ktest-run line"):
        bench.parse_output(["KTEST-RUN variant=x status=0"])


def test_summary_median_min_max():
    recs = [bench.RunRecord("ringtest", "a", i, 0, w, 0, 0, 0, 0, 0) for i, w in enumerate([3.0, 1.0, 2.0])]
    (s,) = bench.summarise(recs)
    assert (s.median, s.min, s.max, s.failed) == (2.0, 1.0, 3.0, 0)


def test_guest_script_interleaves_and_pins():
    spec = bench.RingtestSpec(variants=["ring", "ptr_ring"], runs=2, run_cycles=1000, batch=8)
    lines = [ln for ln in bench.guest_script(spec).splitlines() if "ktest-run" in ln]
    assert [ln.split("variant=")[1].split()[0] for ln in lines] == ["ring", "ptr_ring", "ring", "ptr_ring"]
    assert "--host-affinity 0 --guest-affinity 1 --run-cycles 1000 --batch 8" in lines[0]


def test_results_round_trip_and_format_check(tmp_path):
    recs = [bench.RunRecord("ringtest", "a", 1, 0, 1.5, 0, 0, 0, 0, 0)]
    p = bench.write_results(tmp_path / "r.json", recs, bench.summarise(recs), {"accel": "tcg"})
    doc = bench.read_results(p)
    assert doc["records"][0]["wall_s"] == 1.5 and doc["inputs"]["accel"] == "tcg"
    doc["format"] = 0
    p.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="results format 0, this ktest reads 1"):
        bench.read_results(p)
