"""ktest bench for real: ringtest, virtio_test and vringh_test in the guest
and on the host, records checked against the programs' own output."""
import csv
import json
import re
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow


def _doc(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_ringtest_vs_base_names_what_does_not_build(applied, base_tag, tmp_path):
    """Pristine 6.12.118's ringtest does not link (the series' 0001 fixes it): --vs the
    base tag stops on the first unresolved reference and says what to compare with."""
    r = ktest("bench", "ringtest", "--variants", "ring", "--runs", "1", "--vs", base_tag, "--out", tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"tools build at {base_tag} failed: {base_tag}:include/linux/ptr_ring.h:" in r.stderr, r.stderr
    assert "undefined reference to" in r.stderr and "rev-list --reverse" in r.stderr, r.stderr


def test_ringtest_head_vs_base_interleaved_in_one_guest(applied, tools_base, tmp_path):
    r = ktest("bench", "ringtest", "--variants", "ring", "--runs", "2", "--run-cycles", "20000",
              "--vs", tools_base, "--out", tmp_path, check=0)
    doc = _doc(tmp_path)
    assert [(x["variant"], x["side"], x["run"], x["status"]) for x in doc["records"]] == [
        ("ring", "HEAD", 1, 0), ("ring", tools_base, 1, 0), ("ring", "HEAD", 2, 0), ("ring", tools_base, 2, 0)]
    # The records are exactly the guest's own ktest-run lines.
    console = Path(doc["inputs"]["console_log"]).read_text()
    walls = [int(m) / 1e9 for m in re.findall(r"^prog\| KTEST-RUN .*? wall_ns=(\d+) ", console, re.M)]
    assert walls == [x["wall_s"] for x in doc["records"]]
    (c,) = doc["comparisons"]
    assert c["a"] == "HEAD" and c["b"] == tools_base and c["ci_low"] <= c["ratio"] <= c["ci_high"]
    assert "ratio of median wall times" in r.stdout
    rows = list(csv.reader(open(tmp_path / "records.csv")))
    assert len(rows) == 5 and rows[0][:4] == ["bench", "variant", "side", "run"]
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    cmp = ktest("bench", "compare", tmp_path / "results.json", tmp_path / "results.json", check=0)
    assert "1.000" in cmp.stdout


def test_virtio_test_against_patched_vhost_test(applied, tmp_path):
    ktest("bench", "virtio_test", "--variants", "batch-64", "--runs", "1", "--out", tmp_path, check=0)
    (rec,) = _doc(tmp_path)["records"]
    assert rec["status"] == 0
    # virtio_test's own closing line: "spurious wakeups: 0x.. started=0x100000 completed=0x100000"
    assert rec["counters"]["started"] == rec["counters"]["completed"] == 0x100000
    assert _doc(tmp_path)["inputs"]["program"] == "virtio_test"


def test_vringh_test_on_the_host(applied, tmp_path):
    ktest("bench", "vringh_test", "--where", "host", "--variants", "default", "--runs", "2",
          "--out", tmp_path, check=0)
    doc = _doc(tmp_path)
    assert [(x["variant"], x["status"]) for x in doc["records"]] == [("default", 0), ("default", 0)]
    assert doc["inputs"]["where"] == "host" and all(x["wall_s"] > 0 for x in doc["records"])


def test_crashing_run_is_recorded_and_the_others_kept(applied, tmp_path):
    """ptr_ring asserts in --sleep mode (enable_kick is not implemented)."""
    r = ktest("bench", "ringtest", "--variants", "ptr_ring", "ring", "--sleep", "--runs", "1",
              "--run-cycles", "20000", "--out", tmp_path)
    assert r.returncode == 1 and "1 run(s) failed" in r.stderr
    recs = {x["variant"]: x for x in _doc(tmp_path)["records"]}
    assert recs["ptr_ring"]["status"] == 134                          # SIGABRT
    assert any("Assertion" in line for line in recs["ptr_ring"]["output"])
    assert recs["ring"]["status"] == 0


def test_guest_timeout_keeps_the_finished_runs(applied, tmp_path):
    # 5000 runs of 1M buffers take minutes even on an idle host (a run is
    # >= 0.05 s under TCG); 100k-buffer runs once finished inside 40 s.
    r = ktest("bench", "ringtest", "--variants", "ring", "--runs", "5000", "--run-cycles", "1000000",
              "--timeout", "40", "--out", tmp_path)
    assert r.returncode != 0 and "timed out after 40 s" in r.stderr
    doc = _doc(tmp_path)
    assert "timed out" in doc["inputs"]["incomplete"]
    assert 0 < len(doc["records"]) < 5000 and all(x["status"] == 0 for x in doc["records"])


def test_old_results_format_is_refused(applied, tmp_path):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": 1, "records": []}))
    r = ktest("bench", "compare", old, old)
    assert r.returncode != 0 and "results format 1; this ktest reads format 2" in r.stderr


def test_net_bench_napi_vs_orphan_on_qemus_nic(applied, tmp_path):
    ktest("bench", "net", "--runs", "1", "--count", "3000", "--out", tmp_path, check=0)
    doc = _doc(tmp_path)
    by = {r["variant"]: r["counters"] for r in doc["records"]}
    assert set(by) == {"napi", "orphan"} and all(r["status"] == 0 for r in doc["records"])
    assert by["napi"]["sent"] == by["orphan"]["sent"] == 3000
    # TX NAPI frees completed skbs from the TX interrupt; orphan mode takes
    # (almost) none: the reason it exists.
    assert by["napi"]["tx_irqs"] > 10 * max(1, by["orphan"]["tx_irqs"])
    assert by["napi"]["lost"] == 0


def test_net_bench_vdpa_head_vs_base_swaps_virtio_net(applied, base_tag, tmp_path):
    ktest("bench", "net", "--device", "vdpa", "--variants", "napi", "--runs", "1", "--count", "2000",
          "--vs", base_tag, "--out", tmp_path, check=0)
    doc = _doc(tmp_path)
    assert [(r["side"], r["status"]) for r in doc["records"]] == [("HEAD", 0), (base_tag, 0)]
    for r in doc["records"]:
        # The simulator loops every frame back: all sent, none lost before
        # the driver, and each one returned or, when the RX ring was empty
        # at that moment, dropped by the device and counted (sim_rx_full; a
        # UDP flood has no flow control, and the device batches TX
        # completions with VIRTIO_F_IN_ORDER: one CI run returned 1982 and
        # counted the rest).
        c = r["counters"]
        assert c["sent"] == 2000 and c["lost"] == 0, r
        assert c["rx"] + c["sim_rx_full"] >= 2000 and c["sim_rx_full"] < 2000 // 10, r
    (c,) = doc["comparisons"]
    assert (c["variant"], c["a"], c["b"]) == ("napi", "HEAD", base_tag)
    # Both sides ran the patched virtio_ring; only virtio_net was swapped.
    assert "virtio_net" in doc["inputs"]["modules_out_of_tree"]


def test_net_bench_pktgen_header_blocks_series_vs_base(applied, base_tag, tmp_path):
    """Patch 18's effect as ktest bench measures it: the same pktgen bursts, the series' virtio_net
    sends header blocks and the (patched) simulator reads ~5x fewer lines holding headers (the base's
    are its frames' own lines, in the skb headroom: patch 12 counts what the device reads in all).
    BQL's limit_min is lifted: under TCG BQL otherwise stops the queue after a few packets and
    the batches end there (patch 18's message gives both)."""
    ktest("bench", "net", "--device", "vdpa", "--sender", "pktgen", "--variants", "napi", "--runs", "1",
          "--count", "3200", "--bql-limit-min", "1000000000", "--vs", base_tag, "--out", tmp_path, check=0)
    by = {r["side"]: r["counters"] for r in _doc(tmp_path)["records"]}
    head, base = by["HEAD"], by[base_tag]
    assert head["hdr_blocks"] > 0 and head["hdr_block_hdrs"] > 16 * head["hdr_blocks"] * 0.5
    assert base["hdr_blocks"] == 0 and base["sim_blocks"] == 0
    assert head["sim_hdr_lines"] * 4 < base["sim_hdr_lines"]
    assert head["lost"] == base["lost"] == 0


def test_vhost_net_test_bench_series_vhost_net_vs_base(applied, base_tag, tmp_path):
    """The series' vhost_net_test drives each side's vhost_net: the base one has no header blocks."""
    r = ktest("bench", "vhost_net_test", "--variants", "base", "block-32", "--runs", "1", "--count", "500",
              "--vs", base_tag, "--out", tmp_path)
    assert r.returncode == 1 and "2 run(s) failed" not in r.stderr and "1 run(s) failed" in r.stderr
    recs = {(x["variant"], x["side"]): x for x in _doc(tmp_path)["records"]}
    assert recs[("base", "HEAD")]["status"] == recs[("base", base_tag)]["status"] == 0
    assert recs[("block-32", "HEAD")]["counters"]["tx_hdr_block"] == 32
    assert recs[("block-32", base_tag)]["status"] != 0       # the base vhost_net does not offer bit 58
    for side in ("HEAD", base_tag):
        assert recs[("base", side)]["counters"]["bytes_checked"] > 0


def test_ringtest_net_header_layouts_count_the_device_s_lines(applied, tmp_path):
    """Patch 11's variants (issue 19, point 6): with VERSION_1/ANY_LAYOUT the header sits in the
    skb headroom, in the line of the frame's Ethernet header, so it costs the device no line; a
    block of headers costs 6 lines per 32 packets on top of the frames, a header alone in a line
    (no ANY_LAYOUT) one per packet."""
    n = 3200
    ktest("bench", "ringtest", "--variants", "virtio_ring_hdr_headroom", "virtio_ring_hdr_block",
          "virtio_ring_hdr_own_line", "--runs", "1", "--run-cycles", n, "--batch", "32",
          "--out", tmp_path, check=0)
    doc = _doc(tmp_path)
    c = {x["variant"]: x["counters"] for x in doc["records"] if x["status"] == 0}
    assert sorted(c) == ["virtio_ring_hdr_block", "virtio_ring_hdr_headroom", "virtio_ring_hdr_own_line"]
    for v in c.values():
        # a 100-byte frame 18 bytes into a line: 2 lines each
        assert v["device_lines.packets"] == v["net_headers.read"] == n
        assert v["device_lines.frame_lines"] == 2 * n
    head, block, own = (c[f"virtio_ring_hdr_{x}"] for x in ("headroom", "block", "own_line"))
    assert head["net_headers.lines_outside_their_frames"] == 0
    assert head["device_lines"] == head["device_lines.frame_lines"]
    assert block["net_headers.cache_lines_read"] == block["net_headers.lines_outside_their_frames"] == n * 6 // 32
    assert block["device_lines"] == 2 * n + n * 6 // 32
    assert own["device_lines"] == 3 * n
    console = Path(doc["inputs"]["console_log"]).read_text()
    for layout in ("headroom", "block", "own line"):
        assert f"net header layout: {layout}" in console
