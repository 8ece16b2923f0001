"""VIRTIO_F_IN_ORDER (bit 35) between the patched virtio_net/virtio_ring and
the patched vDPA net simulator, which loops every TX frame back to RX.

With the bit, the simulator completes the TX chains of one run of its work
function with one used entry, and a received frame spread over several
mergeable buffers with one entry for its last buffer; the driver takes the
buffers before it as used whole.  One guest boot adds the device with the
bit offered (in_order=1) and without it (in_order=0), each time on an MTU
4000 device (so 3000-byte pings take two mergeable buffers), and sends the
same traffic: pings of 1000 and 3000 bytes, then pktgen bursts.  Every
frame has to come back whole, and the simulator's own counters (tx_stats:
used entries written against buffers used) have to show the batching with
the bit and none without it.
"""
import re

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

IN_ORDER = 35
MRG_RXBUF = 15
PINGS, BIG_PINGS, PKTGEN = 100, 30, 3000

GUEST_SH = r"""#!/bin/sh
P=/sys/module/vdpa_sim_net/parameters
sim() { tr ' ' '\n' < $P/tx_stats | sed -n 's/^\([a-z_]*\)=\([0-9]*\)$/sim_\1=\2/p' | tr '\n' ' '; }
truncated() {
	awk '/^IpExt:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "InTruncatedPkts") c = i } else print $c }' /proc/net/netstat
}
stats() {
	s=/sys/class/net/$dev/statistics
	echo "tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors)" \
	     "rx_errors=$(cat $s/rx_errors) truncated=$(truncated) $(sim)"
}
PG=/proc/net/pktgen
for io in 1 0; do
	echo $io > $P/in_order || echo "no in_order parameter"
	vdpa dev add mgmtdev vdpasim_net name io$io mac 02:00:00:00:00:01 mtu 4000 || { echo "case=$io add-failed"; continue; }
	sleep 1
	v=$(ls -d /sys/bus/vdpa/devices/io$io/virtio*)
	dev=$(ls $v/net)
	echo 1 > /proc/sys/net/ipv6/conf/$dev/disable_ipv6
	ip link set $dev up && ip addr add 192.0.2.1/24 dev $dev
	# Frames to the simulator's own MAC come back: no ARP wait.
	arp -i $dev -s 192.0.2.2 02:00:00:00:00:01
	sleep 1
	echo "before case=$io $(stats)"
	ping -c %(pings)d -s 1000 -i 0.01 -W 1 192.0.2.2 >/dev/null
	ping -c %(big)d -s 3000 -i 0.01 -W 1 192.0.2.2 >/dev/null
	echo rem_device_all > $PG/kpktgend_0
	echo "add_device $dev" > $PG/kpktgend_0
	for c in "count %(pktgen)d" "burst 1" "pkt_size 100" "delay 0" "dst 192.0.2.1" \
		 "src_min 192.0.2.3" "src_max 192.0.2.3" "dst_mac 02:00:00:00:00:01" \
		 "udp_dst_min 9" "udp_dst_max 9"; do
		echo "$c" > $PG/$dev || echo "pktgen refused: $c"
	done
	echo start > $PG/pgctrl
	echo rem_device_all > $PG/kpktgend_0
	sleep 1
	echo "after case=$io features=$(cat $v/features) $(stats)"
	ip link set $dev down
	vdpa dev del io$io
	sleep 1
done
""" % {"pings": PINGS, "big": BIG_PINGS, "pktgen": PKTGEN}


def _kv(line):
    return {k: v for k, v in (w.split("=", 1) for w in line.split() if "=" in w)}


@pytest.fixture(scope="module")
def cases(applied, tmp_path_factory):
    d = tmp_path_factory.mktemp("in_order")
    sh = d / "in_order.sh"
    sh.write_text(GUEST_SH)
    sh.chmod(0o755)
    r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--load", "pktgen",
              "--host-program", "vdpa", "--file", sh, "--timeout", 600, "--", "/ktest/bin/in_order.sh")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "pktgen refused" not in r.stdout and "add-failed" not in r.stdout, r.stdout
    out, before = {}, {}
    for line in r.stdout.splitlines():
        if line.startswith("before "):
            before = _kv(line)
        elif line.startswith("after "):
            after = _kv(line)
            c = {k: int(v) - int(before.get(k, 0)) for k, v in after.items() if k not in ("case", "features")}
            c["features"] = after["features"]
            out[after["case"]] = c
    assert set(out) == {"0", "1"}, r.stdout
    log = open(r.stderr.split("console log ")[1].split()[0], errors="replace").read()
    return out, log


def _traffic_whole(c):
    # Every frame sent came back (or was dropped by the device for want of
    # an RX buffer, counted), none cut short or refused by the driver.
    assert c["tx"] >= PINGS + BIG_PINGS + PKTGEN, c
    assert c["tx"] == c["sim_packets"] and c["sim_chains"] == c["sim_tx_used_bufs"], c
    assert c["rx"] + c["sim_rx_full"] == c["tx"], c
    assert c["rx_length_errors"] == c["rx_errors"] == c["truncated"] == 0, c


def test_in_order_negotiated_and_batched(cases):
    out, _ = cases
    c = out["1"]
    assert c["features"][IN_ORDER] == "1" and c["features"][MRG_RXBUF] == "1", c
    _traffic_whole(c)
    # TX: a run's chains share one used entry; RX: a 3000-byte frame's two
    # buffers share one.
    assert c["sim_tx_used"] < c["sim_tx_used_bufs"], c
    assert c["sim_tx_notifies"] <= c["sim_tx_used"], c
    assert c["sim_rx_used"] <= c["sim_rx_used_bufs"] - BIG_PINGS, c


def test_without_the_bit_one_entry_per_buffer(cases):
    out, _ = cases
    c = out["0"]
    assert c["features"][IN_ORDER] == "0" and c["features"][MRG_RXBUF] == "1", c
    _traffic_whole(c)
    assert c["sim_tx_used"] == c["sim_tx_used_bufs"], c
    assert c["sim_rx_used"] == c["sim_rx_used_bufs"] >= c["rx"] + BIG_PINGS, c


def test_no_warning(cases):
    _, log = cases
    assert "WARNING:" not in log and "Oops" not in log and "BUG:" not in log
    assert re.search(r"vringh:|BAD_RING|is not a head|stops short", log) is None, log[-3000:]
