"""The vDPA net simulator, built out of tree by kmod/, as a second virtio-net
device in the guest: the device the part-2 series will make offer its new
feature bits to the patched virtio_net (QEMU's device never will)."""
import re

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow


def test_patched_virtio_net_drives_the_vdpa_simulator(applied):
    script = (
        "vdpa dev add mgmtdev vdpasim_net name vdpa0 mac 02:00:00:00:00:01 && sleep 1 && "
        "for d in /sys/bus/vdpa/devices/vdpa0/virtio*; do echo driver=$(basename $(readlink $d/driver)); done && "
        "ip link set eth1 up && ip addr add 192.0.2.1/24 dev eth1 && "
        "{ ping -c 3 -W 1 192.0.2.2 >/dev/null; true; } && "
        "echo tx=$(cat /sys/class/net/eth1/statistics/tx_packets) rx=$(cat /sys/class/net/eth1/statistics/rx_packets)")
    r = ktest("boot", "--load", "vdpa_sim_net", "--load", "virtio_vdpa", "--host-program", "vdpa",
              "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "driver=virtio_net" in r.stdout
    words = dict(w.split("=") for w in r.stdout.split() if w.startswith(("tx=", "rx=")))
    # The simulator loops every frame the driver sends back to it.
    assert int(words["tx"]) > 0 and words["rx"] == words["tx"], r.stdout
    log = r.stderr.split("console log ")[1].split()[0]
    text = open(log).read()
    for m in ("vdpa_sim_net", "virtio_vdpa", "virtio_net", "virtio_ring"):
        # Out of tree (O; E too where the kernel signs its own: Debian's).
        assert re.search(rf" {m} taint=OE?$", text, re.M), m
