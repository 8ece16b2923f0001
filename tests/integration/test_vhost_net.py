"""vhost_net over a tap device, driven from userspace in the guest by the
raw-ring mode of tools/virtio/vhost_net_test (patch 21): base TX and RX, VIRTIO_NET_F_RX_SKIP,
VIRTIO_NET_F_TX_HDR_BLOCK and VIRTIO_F_IN_ORDER each on and off, malformed
header blocks, a hostile 3 GiB chain in a block, and the same again through
zerocopy TX (counting zerocopy completions with a kprobe).  Every frame byte and header
field is checked by the program itself; ktest fails the boot on any
WARNING, Oops or BUG in the guest console."""
import re
from pathlib import Path

import pytest

from tests.integration.conftest import ktest

pytestmark = pytest.mark.slow

RX_SKIP = 1 << 49     # VIRTIO_NET_F_RX_SKIP
TX_HDR_BLOCK = 1 << 58
IN_ORDER = 1 << 35    # VIRTIO_F_IN_ORDER
N = 300

VARIANTS = {
    "base": "--raw-ring",
    "rx-skip-2": "--rx-skip 2",
    "rx-skip-64-sg": "--rx-skip 64 --sg",
    "rx-skip-5-small-bufs": "--rx-skip 5 --rx-buf 256",
    "rx-skip-3-vhost-hdr": "--rx-skip 3 --vhost-hdr",
    "rx-skip-off": "--rx-skip 7 --no-rx-skip",
    "block-8": "--tx-hdr-block 8",
    "block-2-sg": "--tx-hdr-block 2 --sg",
    "block-64": "--tx-hdr-block 64",
    "block-7-sendmsg": "--tx-hdr-block 7 --sndbuf 1048576",
    "block-5-vhost-hdr": "--tx-hdr-block 5 --vhost-hdr",
    "block-off": "--tx-hdr-block 8 --no-tx-hdr-block",
    "corrupt": "--corrupt",
    "corrupt-sendmsg-sg": "--corrupt --sndbuf 1048576 --sg",
    "corrupt-vhost-hdr": "--corrupt --vhost-hdr",
    "corrupt-off": "--corrupt --no-tx-hdr-block",
    "oversize": "--oversize",
    "oversize-sendmsg-sg": "--oversize --sndbuf 1048576 --sg",
    "both": "--rx-skip 2 --tx-hdr-block 16",
    "migrate": "--migrate",
    "migrate-block-8": "--tx-hdr-block 8 --migrate",
    "migrate-block-3-sendmsg-sg": "--tx-hdr-block 3 --sndbuf 1048576 --sg --migrate",
    "in-order": "--in-order",
    "in-order-sendmsg-sg": "--in-order --sndbuf 1048576 --sg",
    "in-order-small-bufs": "--in-order --rx-skip 5 --rx-buf 256",
    "in-order-block-8": "--in-order --tx-hdr-block 8",
    "in-order-corrupt": "--in-order --corrupt",
    "in-order-oversize": "--in-order --oversize",
    "in-order-migrate": "--in-order --migrate",
    "in-order-vhost-hdr": "--in-order --vhost-hdr",
}
# After reloading vhost_net with experimental_zcopytx=1.
ZEROCOPY = {
    "zc-base": "--raw-ring",
    "zc-block-8": "--tx-hdr-block 8",
    "zc-block-3-sg": "--tx-hdr-block 3 --sg",
    "zc-corrupt": "--corrupt",
    "zc-oversize": "--oversize",
    "zc-migrate-block-8": "--tx-hdr-block 8 --migrate",
    "zc-in-order": "--in-order",
    "zc-in-order-corrupt": "--in-order --corrupt",
    "zc-in-order-migrate": "--in-order --migrate",
}
# Zerocopy with the DMAs held in flight: a tc rule sends what vhost writes
# into the tap on to a dummy device behind a 20 ms netem delay.  The
# program's capture socket would copy each zerocopy frame (completing its
# DMA at once), so these runs check the used ring and RX only.
HELD = {
    "zc-held": "--no-capture --tap vntd",
    "zc-held-in-order": "--in-order --no-capture --tap vntd",
    "zc-held-in-order-migrate": "--in-order --migrate --no-capture --tap vntd",
}
# iproute2's, by path: busybox's shell runs its own ip and tc applets first.
HOLD = ("IP=/usr/sbin/ip; TC=/usr/sbin/tc\n"
        "$IP tuntap add dev vntd mode tap vnet_hdr && $IP link add hold0 type dummy && $IP link set hold0 up && "
        "$TC qdisc add dev vntd clsact && "
        "$TC filter add dev vntd ingress matchall action mirred egress redirect dev hold0 && "
        "$TC qdisc add dev hold0 root netem delay 20ms limit 10000 || echo hold-failed\n")
HOLD_MODULES = ["dummy", "sch_netem", "act_mirred", "cls_matchall", "sch_ingress"]
# Zerocopy completions, counted per run by a kprobe on vhost_net's callback
# (vhost_zerocopy_callback in 6.1, vhost_zerocopy_complete in 6.12).
KPROBE = ("mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; T=/sys/kernel/tracing; "
          "f=$(awk '$3 == \"vhost_zerocopy_complete\" || $3 == \"vhost_zerocopy_callback\" {print $3; exit}' "
          "/proc/kallsyms); "
          "echo \"p:vnt_zc $f\" >> $T/kprobe_events && "
          "echo 1 > $T/events/kprobes/vnt_zc/enable || echo kprobe-failed\n"
          "zc() { awk '$1 == \"vnt_zc\" {print $2}' $T/kprobe_profile; }\n")


@pytest.fixture(scope="module")
def program(applied):
    # ktest builds what tools/virtio/Makefile's test: target lists; the series adds vhost_net_test there.
    r = ktest("build", "--tools", check=0)
    (prog,) = [Path(w) for w in r.stdout.split() if w.endswith("/tools/virtio/vhost_net_test")]
    assert prog.exists()
    return prog


def _script(variants: dict[str, str], zc=False) -> str:
    count = "echo zc_callbacks=$(($(zc) - z)); " if zc else ""
    return "".join(f"echo VNT-BEGIN {name}; {'z=$(zc); ' if zc else ''}vhost_net_test -n {N} {args}; "
                   f"r=$?; {count}echo VNT-END {name} $r\n"
                   for name, args in variants.items())


@pytest.fixture(scope="module")
def runs(program):
    script = ("ls -l /dev/net/tun /dev/vhost-net\n" + _script(VARIANTS)
              + "rmmod vhost_net && insmod /ktest/modules/vhost_net.ko experimental_zcopytx=1 && "
              + "echo zcopytx=$(cat /sys/module/vhost_net/parameters/experimental_zcopytx)\n"
              + KPROBE + _script(ZEROCOPY, zc=True) + HOLD + _script(HELD, zc=True))
    loads = [a for m in ["tun", *HOLD_MODULES] for a in ("--load", m)]
    r = ktest("boot", *loads, "--host-program", "ip", "--host-program", "tc", "--timeout", "900",
              "--file", program, "--", "sh", "-c", script, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "zcopytx=1" in r.stdout and "kprobe-failed" not in r.stdout, r.stdout[-3000:]
    assert "hold-failed" not in r.stdout, r.stdout[-3000:]
    out = {}
    for m in re.finditer(r"^VNT-BEGIN (\S+)\n(.*?)^VNT-END \1 (\d+)$", r.stdout, re.M | re.S):
        text = m.group(2)
        summary = re.search(r"^vhost_net_test: tx=(\d+) rx=(\d+) ok (.*)$", text, re.M)
        fields = dict(w.split("=", 1) for w in summary.group(3).split()) if summary else {}
        if summary:
            fields.update(tx=summary.group(1), rx=summary.group(2))
        offered = re.search(r"offered=(0x[0-9a-f]+)", text)
        zc = re.search(r"^zc_callbacks=(\d+)$", text, re.M)
        out[m.group(1)] = {"status": int(m.group(3)), "text": text, "fields": fields,
                           "offered": int(offered.group(1), 16) if offered else 0,
                           "zc": int(zc.group(1)) if zc else None}
    assert set(out) == set(VARIANTS) | set(ZEROCOPY) | set(HELD), r.stdout[-3000:]
    return out


def _ok(run, tx=N, rx=N):
    assert run["status"] == 0, run["text"]
    f = run["fields"]
    assert (int(f["tx"]), int(f["rx"])) == (tx, rx), run["text"]
    assert int(f["bytes_checked"]) > 0 and f["foreign"] == "0", run["text"]
    return f


def _features(run):
    return int(run["fields"]["features"], 16)


def test_vhost_net_offers_both_bits(runs):
    assert runs["base"]["offered"] & RX_SKIP and runs["base"]["offered"] & TX_HDR_BLOCK


def test_base_tx_rx_without_the_bits(runs):
    for name in ("base", "zc-base"):
        f = _ok(runs[name])
        assert not _features(runs[name]) & (RX_SKIP | TX_HDR_BLOCK)
        # 300 frames each way of 60..8499 bytes, every byte compared.
        assert int(f["bytes_checked"]) > 2 * 300 * 60


@pytest.mark.parametrize("name,skip", [("rx-skip-2", 2), ("rx-skip-64-sg", 64), ("rx-skip-5-small-bufs", 5),
                                       ("rx-skip-3-vhost-hdr", 3), ("both", 2)])
def test_rx_skip_leaves_the_canary_and_moves_the_header(runs, name, skip):
    f = _ok(runs[name])
    assert _features(runs[name]) & RX_SKIP
    assert int(f["rx_skip"]) == skip


def test_rx_skip_set_but_not_negotiated_skips_nothing(runs):
    f = _ok(runs["rx-skip-off"])
    assert not _features(runs["rx-skip-off"]) & RX_SKIP and f["rx_skip"] == "0"


@pytest.mark.parametrize("name,k", [("block-8", 8), ("block-2-sg", 2), ("block-64", 64), ("block-7-sendmsg", 7),
                                    ("block-5-vhost-hdr", 5), ("both", 16), ("zc-block-8", 8),
                                    ("zc-block-3-sg", 3)])
def test_tx_header_blocks_reach_tap_as_ordinary_packets(runs, name, k):
    f = _ok(runs[name])
    assert _features(runs[name]) & TX_HDR_BLOCK
    assert int(f["tx_hdr_block"]) == k


def test_tx_header_block_count_is_ignored_without_the_bit(runs):
    f = _ok(runs["block-off"])
    assert not _features(runs["block-off"]) & TX_HDR_BLOCK and f["tx_hdr_block"] == "0"


@pytest.mark.parametrize("name", ["corrupt", "corrupt-sendmsg-sg", "corrupt-vhost-hdr", "zc-corrupt"])
def test_malformed_blocks_are_dropped_and_vhost_goes_on(runs, name):
    # k = 65, k = 4 in a 30-byte chain, a 5-byte chain, a block of 3 with
    # a packet of length 0, a block of 2 whose lengths run past the chain:
    # each used with len 0 and none of its packets sent, no error eventfd,
    # the good packet after each sent, then a good block of 3 parsed on its
    # own (no device state to resynchronise).  Then the whole RX run passes.
    f = _ok(runs[name], tx=N + 7)
    assert f["corrupt_dropped"] == "5"


def test_block_count_in_an_ordinary_header_without_the_bit(runs):
    # Without the bit, k = 65 in num_buffers is no reason to drop.
    f = _ok(runs["corrupt-off"], tx=N + 2)
    assert f["corrupt_dropped"] == "0"


@pytest.mark.parametrize("name", ["oversize", "oversize-sendmsg-sg", "zc-oversize"])
def test_chain_longer_than_a_frame_in_a_block_is_dropped_on_the_error_eventfd(runs, name):
    # Three 1 GiB descriptors of one buffer as packet 0 of a block: used
    # with len 0, the error eventfd fires, the good block before and the
    # ordinary packet after pass.  Before v2, vhost sized a kvmalloc() by
    # the chain: WARNING in kvmalloc_node (3 GiB > INT_MAX), a stuck queue.
    f = _ok(runs[name], tx=N + 3)
    assert f["oversize_dropped"] == "1"


@pytest.mark.parametrize("name", ["migrate", "migrate-block-8", "migrate-block-3-sendmsg-sg",
                                  "zc-migrate-block-8"])
def test_tx_backend_stopped_mid_stream_loses_nothing(runs, name):
    # Every other burst stops halfway: SET_BACKEND -1, GET/SET_VRING_BASE,
    # the tap again, as a migration does.  A block and its packets are one
    # chain, so no header is owed across the stop; with v2's format (the
    # block's headers owed to the next k - 1 chains, kept only in vhost)
    # the chains after the stop went out with the wrong headers.
    f = _ok(runs[name])
    assert int(f["migrations"]) > 0


@pytest.mark.parametrize("name", ["zc-block-8", "zc-block-3-sg"])
def test_header_blocks_take_the_copy_path_under_zerocopy(runs, name):
    # A block's packets are copied (one ubuf per chain would have to outlive
    # all k skbs); zerocopy still works for ordinary chains (zc-base), and
    # every packet of the blocks arrives intact (_ok).
    _ok(runs[name])
    assert runs["zc-base"]["zc"] > 0, runs["zc-base"]["text"]


IN_ORDER_RUNS = [n for n in [*VARIANTS, *ZEROCOPY, *HELD] if "in-order" in n]


def test_vhost_net_offers_in_order(runs):
    assert runs["base"]["offered"] & IN_ORDER, runs["base"]["text"]


@pytest.mark.parametrize("name", IN_ORDER_RUNS)
def test_in_order_runs_pass_with_the_bit_negotiated(runs, name):
    # The program reads the used ring the in-order way: an entry completes
    # every buffer up to its own, the others with their whole writable
    # length.  A skipped entry vhost should have written (an RX buffer it
    # filled in part), or one at the wrong place, fails the frame checks.
    tx = N + {"corrupt": 7, "oversize": 3}.get(name.rsplit("-", 1)[-1], 0)
    f = _ok(runs[name], tx=tx)
    assert _features(runs[name]) & IN_ORDER
    assert int(f["rx_used_entries"]) == N, runs[name]["text"]


@pytest.mark.parametrize("name", ["in-order", "in-order-sendmsg-sg"])
def test_in_order_tx_batches_take_one_used_entry(runs, name):
    f, base = runs[name]["fields"], runs["base"]["fields"]
    assert int(base["tx_used_entries"]) == int(base["tx_buffers"]) == N
    # The program posts bursts of 32: at most one entry per burst and a few
    # more where vhost's XDP batch ends early (frames over a page).
    assert int(f["tx_used_entries"]) < N // 2, runs[name]["text"]


def test_in_order_rx_takes_one_used_entry_per_packet(runs):
    # 256-byte buffers: every frame spans several, only its last one (written
    # in part) has an entry.
    f, base = runs["in-order-small-bufs"]["fields"], runs["base"]["fields"]
    assert int(f["rx_buffers"]) > 3 * N and int(f["rx_used_entries"]) == N
    assert int(base["rx_used_entries"]) == int(base["rx_buffers"]) > N


@pytest.mark.parametrize("name", ["zc-in-order", "zc-in-order-corrupt", "zc-in-order-migrate"])
def test_in_order_with_zerocopy_keeps_the_order(runs, name):
    # Copied packets (short ones, header blocks, dropped chains) wait in the
    # zerocopy ring behind DMAs in flight instead of being used at once.
    assert runs[name]["zc"] > 0, runs[name]["text"]


@pytest.mark.parametrize("name", ["zc-held-in-order", "zc-held-in-order-migrate"])
def test_in_order_copies_wait_behind_held_zerocopy_dmas(runs, name):
    # Frames under 256 bytes are copied, the others sent zerocopy and held
    # 20 ms.  A copied frame used at once, ahead of a DMA in flight, would
    # put a later buffer's id where the program expects the oldest one's
    # batch to end: it fails ("taken before vhost used it").  Queued behind
    # the DMAs, the copies complete with them, so entries < buffers.
    f, held = _ok(runs[name]), _ok(runs["zc-held"])
    assert runs[name]["zc"] > N // 2 and runs["zc-held"]["zc"] > N // 2, runs[name]["text"]
    assert int(held["tx_used_entries"]) == N
    assert int(f["tx_used_entries"]) < N // 2, runs[name]["text"]
