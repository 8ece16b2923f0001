"""VIRTIO_NET_F_RX_SKIP end to end: the patched virtio_net against the
patched vDPA net simulator (which loops every TX frame back to RX and, with
the bit negotiated, writes it rx_skip bytes into the receive buffer), the
simulator's config space through vhost-vdpa, and vhost_net's ioctl order.

One guest boot runs every case: the simulator's module parameters (rx_skip,
mrg_rxbuf) are read when a device is added, so each case sets them, adds a
device, sends a fixed ping run over it, reads the negotiated features, and
deletes the device again.

The guests are x86 (NET_IP_ALIGN 0), where the skip saves nothing: the
driver must not negotiate the bit there, and XDP must attach.
"""
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

RX_SKIP = 49         # VIRTIO_NET_F_RX_SKIP: outside the legacy 32 bits
MRG_RXBUF = 15       # VIRTIO_NET_F_MRG_RXBUF
VERSION_1 = 32
RX_SKIP_OFFSET = 28  # after supported_tunnel_types (virtio 1.3, offset 24)
PINGS = 200
BIG, BIG_PINGS = 3000, 50   # ICMP payload bytes (a 3042-byte frame), pings
DATA = Path(__file__).parent.parent / "data"

GUEST = r"""
P=/sys/module/vdpa_sim_net/parameters
B=/ktest/bin
echo "default rx_skip=$(cat $P/rx_skip) mrg_rxbuf=$(cat $P/mrg_rxbuf)"
xdp_packets() {
	command -v ethtool >/dev/null || return 0
	# rx_queue_0_NAME up to 6.8, rx0_NAME since.
	echo "xdp_packets=$(ethtool -S $1 | sed -n -E 's/^ *(rx_queue_0_|rx0_)xdp_packets: //p')"
}
add() {
	vdpa dev add mgmtdev vdpasim_net name $1 mac 02:00:00:00:00:01 $2 || { echo "case=$1 add-failed"; return 1; }
	sleep 1
	v=$(ls -d /sys/bus/vdpa/devices/$1/virtio*)
	dev=$(ls $v/net)
	ip link set $dev up && ip addr add 192.0.2.1/24 dev $dev
	# The simulator loops frames sent to its own MAC back: a static
	# neighbour makes the pings leave without waiting for ARP.
	arp -i $dev -s 192.0.2.2 02:00:00:00:00:01
}
pings() {
	ping -c %(pings)d -s 1000 -i 0.01 -W 1 192.0.2.2 >/dev/null
	s=/sys/class/net/$dev/statistics
	echo "case=$1 features=$(cat $v/features) tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors) $([ -z "$2" ] || $2)"
}
xdp_extra() {
	echo "xdp=$x $(xdp_packets $dev)"
}
run_case() {
	name=$1 mrg=$2 skip=$3
	echo $mrg > $P/mrg_rxbuf
	echo $skip > $P/rx_skip
	add $name || return
	pings $name
	vdpa dev del $name
	sleep 1
}
run_case mrg_skip2 1 2
run_case mrg_skip0 1 0
run_case small_skip2 0 2
run_case mrg_skip200 1 200
echo 1 > $P/mrg_rxbuf; echo 2 > $P/rx_skip
if add xdp; then
	# iproute2's ip (busybox's has no XDP)
	if /usr/sbin/ip link set dev $dev xdpdrv obj $B/xdp_pass.o sec xdp; then x=attached; else x=refused; fi
	pings xdp xdp_extra
	/usr/sbin/ip link set dev $dev xdpdrv off
	vdpa dev del xdp; sleep 1
fi
# Frames longer than one mergeable buffer (virtio_net's start at 1518
# bytes): %(big)d-byte pings on an MTU 4000 device. IP counts a frame cut
# short of its total length in InTruncatedPkts.
truncated() {
	awk '/^IpExt:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "InTruncatedPkts") c = i } else print $c }' /proc/net/netstat
}
if add big "mtu 4000"; then
	t0=$(truncated)
	ping -c %(bigpings)d -s %(big)d -i 0.01 -W 1 192.0.2.2 >/dev/null
	s=/sys/class/net/$dev/statistics
	echo "case=big features=$(cat $v/features) mtu=$(cat /sys/class/net/$dev/mtu) tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors) truncated=$(($(truncated) - t0))"
	vdpa dev del big; sleep 1
fi
# The config space as a VMM sees it: the field at %(offset)d, not writable.
vdpa dev add mgmtdev vdpasim_net name cfg mac 02:00:00:00:00:01 && sleep 1
echo cfg > /sys/bus/vdpa/drivers/virtio_vdpa/unbind
echo cfg > /sys/bus/vdpa/drivers/vhost_vdpa/bind
sleep 1
echo "config $($B/vdpa_config_rx_skip %(offset)d /dev/$(ls /sys/bus/vdpa/devices/cfg/ | grep vhost-vdpa))"
vdpa dev del cfg; sleep 1
echo "vhost_net $($B/vhost_rx_skip_order %(bit)d)"
""" % {"pings": PINGS, "offset": RX_SKIP_OFFSET, "bit": RX_SKIP, "big": BIG, "bigpings": BIG_PINGS}


def _words(line: str) -> dict:
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


@pytest.fixture(scope="module")
def guest(applied, tmp_path_factory):
    d = tmp_path_factory.mktemp("rx_skip")
    script = d / "rx_skip.sh"
    script.write_text(GUEST)
    progs = []
    for name in ("vhost_rx_skip_order", "vdpa_config_rx_skip"):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", d / name, DATA / f"{name}.c"], check=True)
        progs += ["--file", d / name]
    subprocess.run(["clang", "-O2", "-target", "bpf", "-c", DATA / "xdp_pass.c", "-o", d / "xdp_pass.o"],
                   check=True)
    extra = ["--host-program", "ethtool"] if shutil.which("ethtool") else []
    r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--load", "vhost_vdpa",
              "--load", "tun", "--load", "vhost_net", "--host-program", "vdpa", "--host-program", "ip", *extra,
              "--file", script, "--file", d / "xdp_pass.o", *progs, "--timeout", 600,
              "--", "sh", "/ktest/bin/rx_skip.sh")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cases = {}
    for line in r.stdout.splitlines():
        if line.startswith("case="):
            c = _words(line)
            cases[c["case"]] = c
    log = Path(r.stderr.split("console log ")[1].split()[0]).read_text(errors="replace")
    return r, cases, log


def _line(r, prefix: str) -> dict:
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith(prefix + " ")]
    return _words(line)


def _bit(case: dict, bit: int) -> bool:
    return case["features"][bit] == "1"


def _flows(case: dict):
    assert "add-failed" not in case, case
    assert int(case["tx"]) >= PINGS and case["rx"] == case["tx"], case
    assert case["rx_length_errors"] == "0", case


def test_uapi_layout(applied):
    """rx_skip after every field virtio 1.3 assigns; the bit outside the legacy 32."""
    src = ("#include <stddef.h>\n#include <linux/virtio_net.h>\n"
           "_Static_assert(offsetof(struct virtio_net_config, supported_tunnel_types) == 24, \"\");\n"
           f"_Static_assert(offsetof(struct virtio_net_config, rx_skip) == {RX_SKIP_OFFSET}, \"\");\n"
           f"_Static_assert(VIRTIO_NET_F_RX_SKIP == {RX_SKIP}, \"\");\n"
           "_Static_assert(VIRTIO_NET_F_RX_SKIP >= 32, \"\");\n")
    with tempfile.TemporaryDirectory() as d:
        # The series' header in front of the system's (installed, sanitized) uapi headers.
        (Path(d) / "linux").mkdir()
        shutil.copy(applied / "include" / "uapi" / "linux" / "virtio_net.h", Path(d) / "linux")
        c = Path(d) / "layout.c"
        c.write_text(src)
        r = subprocess.run(["gcc", "-fsyntax-only", "-I", d, c], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_defaults_offer_rx_skip_2(guest):
    r, _, _ = guest
    assert "default rx_skip=2 mrg_rxbuf=Y" in r.stdout


@pytest.mark.parametrize("name,mrg", [("mrg_skip2", True), ("mrg_skip0", True), ("small_skip2", False),
                                      ("mrg_skip200", True)])
def test_x86_never_negotiates_rx_skip_and_traffic_flows(guest, name, mrg):
    _, cases, _ = guest
    c = cases[name]
    _flows(c)
    assert _bit(c, VERSION_1) and _bit(c, MRG_RXBUF) == mrg, c
    # NET_IP_ALIGN is 0 on x86: the skip would save no copy.
    assert not _bit(c, RX_SKIP), c


def test_xdp_attaches_to_a_device_offering_rx_skip(guest):
    _, cases, _ = guest
    c = cases["xdp"]
    assert c["xdp"] == "attached", c
    _flows(c)
    if "xdp_packets" in c:
        assert int(c["xdp_packets"]) >= PINGS, c


def test_frames_longer_than_one_mergeable_buffer_arrive_whole(guest):
    """A frame over the first mergeable buffer goes on in the next ones, with num_buffers
    saying how many (v2 cut every one of them at the first buffer: truncated == 50)."""
    _, cases, _ = guest
    c = cases["big"]
    assert "add-failed" not in c and c["mtu"] == "4000", c
    assert _bit(c, MRG_RXBUF), c
    assert int(c["tx"]) >= BIG_PINGS and c["rx"] == c["tx"], c
    assert c["rx_length_errors"] == "0" and c["truncated"] == "0", c


def test_guest_cannot_overwrite_rx_skip(guest):
    r, _, _ = guest
    c = _line(r, "config")
    assert c["get"] == "0" and c["before"] == "2", c
    assert c["get_again"] == "0" and c["after"] == "2", c


def test_vhost_net_refuses_rx_skip_until_the_skip_is_set(guest):
    r, _, _ = guest
    c = _line(r, "vhost_net")
    assert c["offered"] == "1", c
    assert c["before_set"] == "EINVAL" and c["set_skip"] == "ok", c
    assert c["without_version_1"] == "EINVAL" and c["after_set"] == "ok", c
    # RESET_OWNER forgets the skip: the bit is refused again.
    assert c["reset_owner"] == "ok" and c["set_owner"] == "ok", c
    assert c["after_reset"] == "EINVAL" and c["without_bit"] == "ok", c


def test_no_warning(guest):
    _, _, log = guest
    # ktest boot fails on a WARNING, Oops or BUG; say so here too.
    assert "WARNING:" not in log and "Oops" not in log and "BUG:" not in log


def test_short_used_length_is_dropped_and_counted(applied):
    """The simulator's short_rx knob reports every 10th frame with a used length that ends
    inside the header: the driver drops and counts it, in both buffer modes, and traffic goes on."""
    script = DATA / "short_rx.sh"
    r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--host-program", "vdpa",
              "--file", script, "--", "short_rx.sh")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [dict(w.split("=", 1) for w in line.split() if "=" in w)
            for line in r.stdout.splitlines() if line.startswith(("mrg=", "after:"))]
    assert len(rows) == 4, r.stdout
    for case, after in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert 10 <= int(case["rx_length_errors"]) <= 11
        assert after["rx_length_errors"] == case["rx_length_errors"]      # knob off: no more
        assert int(after["rx"]) - int(case["rx"]) >= 20         # the 20 pings (and any IPv6 chatter)
