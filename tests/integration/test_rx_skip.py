"""VIRTIO_NET_F_RX_SKIP (bit 4) end to end: the patched virtio_net against the
patched vDPA net simulator, which loops every TX frame back to RX and, with
the bit negotiated, writes it rx_skip bytes into the receive buffer.

One guest boot runs every case: the simulator's module parameters (rx_skip,
mrg_rxbuf) are read when a device is added, so each case sets them, adds a
device, sends a fixed ping run over it, reads the negotiated features and
the driver's counters, and deletes the device again.
"""
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

RX_SKIP = 4          # VIRTIO_NET_F_RX_SKIP
MRG_RXBUF = 15       # VIRTIO_NET_F_MRG_RXBUF
PINGS = 200

GUEST = r"""
P=/sys/module/vdpa_sim_net/parameters
echo "default rx_skip=$(cat $P/rx_skip) mrg_rxbuf=$(cat $P/mrg_rxbuf)"
counters() {
	command -v ethtool >/dev/null || return 0
	ethtool -S $1 | sed -n 's/^ *rx_queue_0_\(head_copied\|head_in_place\|ip_aligned\): /\1=/p' | tr '\n' ' '
}
run_case() {
	name=$1 mrg=$2 skip=$3
	[ "$mrg" = - ] || echo $mrg > $P/mrg_rxbuf
	[ "$skip" = - ] || echo $skip > $P/rx_skip
	vdpa dev add mgmtdev vdpasim_net name $name mac 02:00:00:00:00:01 || { echo "case=$name add-failed"; return; }
	sleep 1
	v=$(ls -d /sys/bus/vdpa/devices/$name/virtio*)
	dev=$(ls $v/net)
	ip link set $dev up && ip addr add 192.0.2.1/24 dev $dev
	# The simulator loops frames sent to its own MAC back: a static
	# neighbour makes the pings leave without waiting for ARP.
	arp -i $dev -s 192.0.2.2 02:00:00:00:00:01
	ping -c %(pings)d -s 1000 -i 0.01 -W 1 192.0.2.2 >/dev/null
	s=/sys/class/net/$dev/statistics
	echo "case=$name features=$(cat $v/features) tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors) $(counters $dev)"
	vdpa dev del $name
	sleep 1
}
run_case mrg_default - -
run_case mrg_skip0 1 0
run_case small_skip2 0 2
run_case small_skip0 0 0
run_case small_skip3 0 3
run_case mrg_skip64 1 64
run_case mrg_skip200 1 200
if echo 300 > $P/rx_skip; then echo "sim_rx_skip_300=accepted"; else echo "sim_rx_skip_300=refused"; fi
ping -c 3 10.0.2.2 >/dev/null; echo "eth0_ping=$?"
echo "eth0 $(counters eth0)"
""" % {"pings": PINGS}


def _case(line: str) -> dict:
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


@pytest.fixture(scope="module")
def guest(applied):
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "rx_skip.sh"
        script.write_text(GUEST)
        extra = ["--host-program", "ethtool"] if shutil.which("ethtool") else []
        r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--host-program", "vdpa",
                  *extra, "--file", script, "--timeout", 600, "--", "sh", "/ktest/bin/rx_skip.sh")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cases = {}
    for line in r.stdout.splitlines():
        if line.startswith("case="):
            c = _case(line)
            cases[c["case"]] = c
    log = Path(r.stderr.split("console log ")[1].split()[0]).read_text(errors="replace")
    return r, cases, log


def _bit(case: dict, bit: int) -> bool:
    return case["features"][bit] == "1"


def _flows(case: dict):
    assert "add-failed" not in case, case
    assert int(case["tx"]) >= PINGS and case["rx"] == case["tx"], case
    assert case["rx_length_errors"] == "0", case


def test_defaults_offer_rx_skip_2(guest):
    r, cases, _ = guest
    assert "default rx_skip=2 mrg_rxbuf=Y" in r.stdout


@pytest.mark.parametrize("name,mrg,skip", [
    ("mrg_default", True, True), ("mrg_skip0", True, False),
    ("small_skip2", False, True), ("small_skip0", False, False),
    ("small_skip3", False, True), ("mrg_skip64", True, True),
])
def test_traffic_flows_with_the_bit_on_and_off(guest, name, mrg, skip):
    _, cases, _ = guest
    c = cases[name]
    _flows(c)
    assert _bit(c, MRG_RXBUF) == mrg, c
    assert _bit(c, RX_SKIP) == skip, c


def test_counters_show_where_the_ip_header_lands(guest):
    _, cases, _ = guest
    if "head_copied" not in cases["mrg_default"]:
        pytest.skip("no ethtool on this host to read the counters with")
    on, off = cases["mrg_default"], cases["mrg_skip0"]
    for c in (on, off):
        # Every frame is counted once, copied or built in place.
        assert int(c["head_copied"]) + int(c["head_in_place"]) == int(c["rx"]), c
        # x86 has NET_IP_ALIGN 0: the 1042-byte frames are built in place either way.
        assert int(c["head_in_place"]) >= PINGS, c
    # rx_skip = 2 puts the IP header of every mergeable frame 4-byte aligned
    # (2 + 12 + 14 = 28); without it none is.
    assert on["ip_aligned"] == on["rx"], on
    assert off["ip_aligned"] == "0", off


def test_driver_refuses_rx_skip_above_64(guest):
    _, cases, log = guest
    c = cases["mrg_skip200"]
    _flows(c)
    assert not _bit(c, RX_SKIP), c
    assert re.search(r"virtio_net virtio\d+: rx_skip 200 exceeds 64, not negotiating VIRTIO_NET_F_RX_SKIP", log)


def test_simulator_validates_its_parameter(guest):
    r, _, _ = guest
    assert "sim_rx_skip_300=refused" in r.stdout


def test_qemu_nic_still_works(guest):
    r, _, log = guest
    assert "eth0_ping=0" in r.stdout
    # ktest boot fails on a WARNING, Oops or BUG; say so here too.
    assert "WARNING:" not in log and "Oops" not in log and "BUG:" not in log


def test_short_used_length_is_dropped_and_counted(applied):
    """The simulator's short_rx knob reports every 10th frame shorter than rx_skip + header:
    the driver drops and counts it, in both buffer modes, and traffic goes on."""
    script = Path(__file__).parent.parent / "data" / "short_rx.sh"
    r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--host-program", "vdpa",
              "--file", script, "--", "short_rx.sh")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [dict(w.split("=", 1) for w in line.split() if "=" in w)
            for line in r.stdout.splitlines() if line.startswith(("mrg=", "after:"))]
    assert len(rows) == 4, r.stdout
    for case, after in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert case["features"][RX_SKIP] == "1"
        assert 10 <= int(case["rx_length_errors"]) <= 11
        assert after["rx_length_errors"] == case["rx_length_errors"]      # knob off: no more
        assert int(after["rx"]) - int(case["rx"]) >= 20         # the 20 pings (and any IPv6 chatter)
