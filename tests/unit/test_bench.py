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
    shutil.copy(REPO / "ktest" / "data" / "tools_virtio" / "ktest-run.c", d)
    shutil.copy(REPO / "ktest" / "data" / "tools_virtio" / "Makefile", d)
    subprocess.run(["make", "-C", str(d), "ktest-run"], check=True, capture_output=True, timeout=120)
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


def test_summary_median_min_max_iqr():
    recs = [bench.RunRecord("ringtest", "a", i, 0, w, 0, 0, 0, 0, 0) for i, w in enumerate([3.0, 1.0, 2.0, 4.0])]
    (s,) = bench.summarise(recs)
    assert (s.median, s.min, s.max, s.failed, s.iqr) == (2.5, 1.0, 4.0, 0, 1.5)


def test_guest_script_interleaves_and_pins():
    spec = bench.BenchSpec("ringtest", variants=["ring", "ptr_ring"], runs=2, run_cycles=1000, batch=8)
    lines = [ln for ln in bench.guest_script(spec, {"HEAD": "head"}).splitlines() if "ktest-run" in ln]
    assert [ln.split("variant=")[1].split()[0] for ln in lines] == ["ring", "ptr_ring", "ring", "ptr_ring"]
    assert "-- /ktest/head/bin/ring --host-affinity 0 --guest-affinity 1 --run-cycles 1000 --batch 8" in lines[0]


def test_comparison_script_alternates_sides_and_swaps_modules():
    spec = bench.BenchSpec("virtio_test", variants=["batch-1"], runs=2)
    swap = {"HEAD": ["/ktest/head/modules/vhost.ko", "/ktest/head/modules/vhost_test.ko"],
            "v6.1": ["/ktest/b/modules/vhost.ko", "/ktest/b/modules/vhost_test.ko"]}
    lines = bench.guest_script(spec, {"HEAD": "head", "v6.1": "b"}, swap).splitlines()
    runs = [ln for ln in lines if "ktest-run" in ln]
    assert [ln.split("side=")[1].split()[0] for ln in runs] == ["HEAD", "v6.1", "HEAD", "v6.1"]
    assert "/ktest/b/bin/virtio_test --batch=1" in runs[1]
    i = lines.index(runs[1])
    assert lines[i - 1] == ("rmmod vhost_test vhost 2>/dev/null; { insmod /ktest/b/modules/vhost.ko && "
                            "insmod /ktest/b/modules/vhost_test.ko; } || rc=1")


def test_unknown_program_and_variant():
    with pytest.raises(BenchError, match="unknown virtio_test variant\\(s\\): bogus"):
        bench.BenchSpec("virtio_test", variants=["bogus"]).validate()
    with pytest.raises(BenchError, match="unknown benchmark 'nope'"):
        bench.BenchSpec("nope", variants=[]).validate()


@pytest.mark.parametrize("values, verdict", [
    ([1.0, 1.02, 0.99, 1.01], "ok"),
    ([0.5, 0.52, 2.6, 2.55, 0.51], "bimodal"),      # busy-poll ringtest under TCG, seen here
    ([1.0, 1.3, 1.1], "spread"),
    ([1.0], "ok"),
])
def test_trust(values, verdict):
    assert bench.trust(values) == verdict


def test_comparison_ratio_and_interval():
    a = [bench.RunRecord("ringtest", "ring", i, 0, w, 0, 0, 0, 0, 0, side="HEAD") for i, w in enumerate([1.0, 1.04, 0.97, 1.02, 0.98])]
    b = [bench.RunRecord("ringtest", "ring", i, 0, w, 0, 0, 0, 0, 0, side="base") for i, w in enumerate([2.0, 2.08, 1.94, 2.04, 1.96])]
    (c,) = bench.compare(a, b, "HEAD", "base")
    assert c.ratio == pytest.approx(0.5)
    assert c.ci_low <= 0.5 <= c.ci_high and c.ci_high < 0.7 and c.trust == "ok"
    assert bench.compare(a, b, "HEAD", "base") == [c]       # seeded: the same interval every time


def test_results_csv_plot_round_trip_and_format_check(tmp_path):
    recs = [bench.RunRecord("ringtest", "a", 1, 0, 1.5, 0, 0, 0, 0, 0, counters={"skipped": 3.0}),
            bench.RunRecord("ringtest", "a", 2, 0, 1.7, 0, 0, 0, 0, 0)]
    p = bench.write_results(tmp_path, recs, bench.summarise(recs), {"accel": "tcg", "title": "t"})
    doc = bench.read_results(p)
    assert doc["records"][0]["wall_s"] == 1.5 and doc["inputs"]["accel"] == "tcg"
    assert bench.records_of(doc) == recs
    rows = (tmp_path / "records.csv").read_text().splitlines()
    assert rows[0].endswith(",skipped") and rows[1].startswith("ringtest,a,HEAD,1,0,1.500000") and rows[1].endswith(",3.0")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc["format"] = 1
    p.write_text(json.dumps(doc))
    with pytest.raises(BenchError, match="results format 1; this ktest reads format 2"):
        bench.read_results(p)


def test_tools_virtio_counter_lines():
    """Lines as the series' ringtest variants and virtio_test print them."""
    lines = ["avail ring: 256 entries stored, 99744 stores skipped, 9 cache lines written, 100000 buffers added",
             "avail ring entries: 256 stored, 1048320 stores skipped (99.98%)",
             "used ring entries read: 1200 for 1048576 buffers",
             "spurious wakeups: 0x0 started=0x100000 completed=0x100000"]
    assert bench._counters(lines) == {
        "avail_ring.entries_stored": 256.0, "avail_ring.stores_skipped": 99744.0,
        "avail_ring.cache_lines_written": 9.0, "avail_ring.buffers_added": 100000.0,
        "avail_ring_entries.stored": 256.0, "avail_ring_entries.stores_skipped": 1048320.0,
        "used_ring_entries_read": 1200.0, "used_ring_entries_read.buffers": 1048576.0,
        "started": 1048576.0, "completed": 1048576.0,
    }


def test_net_bench_argv_and_validation():
    spec = bench.BenchSpec("net", variants=["napi", "orphan"], runs=1, device="vdpa", count=500, size=100)
    spec.validate()
    assert spec.argv("orphan", "/ktest/head/bin") == ["/ktest/head/bin/ktest-netbench", "orphan", "vdpa", "500", "100",
                                                     "udp", "32", "-"]
    spec.bql_limit_min = 10**9
    assert spec.argv("napi", "/b")[-3:] == ["udp", "32", "1000000000"]
    with pytest.raises(BenchError, match="unknown device 'tap'"):
        bench.BenchSpec("net", variants=["napi"], device="tap").validate()
    with pytest.raises(BenchError, match="--count must be at least 1"):
        bench.BenchSpec("net", variants=["napi"], count=0).validate()


def test_net_bench_in_order_off_variant_is_vdpa_only():
    spec = bench.BenchSpec("net", variants=["napi", "napi-no-in-order"], runs=1, device="vdpa")
    spec.validate()
    assert spec.argv("napi-no-in-order", "/b")[1:3] == ["napi-no-in-order", "vdpa"]
    with pytest.raises(BenchError, match="need --device vdpa"):
        bench.BenchSpec("net", variants=["napi-no-in-order"], device="qemu").validate()


def test_net_bench_counters_parse():
    lines = ["KTEST-UDPFLOOD sent=500 errors=0 seconds=0.010000 pps=50000",
             "netbench mode=napi device=qemu tx_irqs=70 kicks=90 tx_packets=500 lost=0 rx=3",
             "KTEST-RUN bench=net variant=napi side=HEAD run=1 status=0 wall_ns=500000000 utime_us=0 stime_us=0 "
             "nvcsw=0 nivcsw=0 maxrss_kb=0"]
    (rec,) = bench.parse_output(lines)
    assert rec.counters["tx_irqs"] == 70 and rec.counters["pps"] == 50000 and rec.counters["lost"] == 0
    assert "mode" not in rec.counters


def test_vhost_net_test_bench_argv():
    spec = bench.BenchSpec("vhost_net_test", variants=["block-32"], runs=1, count=300)
    spec.validate()
    assert spec.argv("block-32", "/ktest/head/bin") == ["/ktest/head/bin/vhost_net_test", "-n", "300",
                                                        "--tx-hdr-block", "32"]


def test_compare_a_counter_of_two_variants():
    def rec(v, i, pps):
        return bench.RunRecord("net", v, i, 0, 1.0, 0, 0, 0, 0, 0, counters={"pps": pps})
    a = [rec("x", i, p) for i, p in enumerate([200.0, 210.0, 190.0])]
    b = [rec("x", i, p) for i, p in enumerate([100.0, 105.0, 95.0])] + [rec("x", 9, 1.0)]
    b[-1].counters.clear()   # a run that printed no pps is left out
    (c,) = bench.compare(a, b, "on", "off", counter="pps")
    assert c.ratio == pytest.approx(2.0) and c.ci_low <= 2.0 <= c.ci_high
    (w,) = bench.compare(a, b, "on", "off")
    assert w.ratio == pytest.approx(1.0)


def test_one_run_per_variant_writes_no_plot(tmp_path):
    """A single point per variant shows no spread: no plot.png, and no matplotlib time spent."""
    recs = [bench.RunRecord("ringtest", "a", 1, 0, 1.5, 0, 0, 0, 0, 0),
            bench.RunRecord("ringtest", "b", 1, 0, 1.7, 0, 0, 0, 0, 0)]
    bench.write_results(tmp_path, recs, bench.summarise(recs), {"accel": "tcg"})
    assert (tmp_path / "results.json").exists() and (tmp_path / "records.csv").exists()
    assert not (tmp_path / "plot.png").exists()
