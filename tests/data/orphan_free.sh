#!/bin/sh
# orphan_free.sh COUNT: COUNT ICMP echo requests (one ping, 10 ms apart) sent with TX NAPI off, so
# every skb is orphaned and its token in the TX ring carries
# VIRTIO_ORPHAN_FLAG (bit 1).  QEMU runs the NIC with tx=timer and
# x-txtimer=1 s: after the first kick it leaves the TX ring alone for 1 s,
# and in orphan mode only a later start_xmit would reap what it used, so
# the requests are all still in the ring when virtio_net is removed:
# free_unused_bufs() frees them through virtnet_sq_free_unused_buf().
# A kprobe on consume_skb() (which dev_kfree_skb() is) counts every call
# during the removal, and those given a pointer with bit 0 or 1 set: a token,
# not an skb.
set -u
# ICMP echo requests sent so far (/proc/net/snmp's Icmp OutEchos).
echos() { awk '$1 == "Icmp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["OutEchos"] }' /proc/net/snmp; }
n=$1 dev=eth0 T=/sys/kernel/tracing
mount -t tracefs nodev $T 2>/dev/null
echo 'p:ktest/cskb consume_skb skb=%di:u64' >> $T/kprobe_events || exit 9
echo 'skb & 3' > $T/events/ktest/cskb/filter || exit 9
ip link set $dev down
ethtool -C $dev tx-frames 0 || exit 9
ip link set $dev up
ip addr replace 10.0.2.15/24 dev $dev
# slirp's gateway MAC: no ARP request to wait behind the held ring.
arp -i $dev -s 10.0.2.2 52:55:0a:00:02:02 || exit 9
t0=$(cat /sys/class/net/$dev/statistics/tx_packets)
# One echo request every 10 ms: all of them inside QEMU's 1 s hold.
ping -c "$n" -i 0.01 -W 1 -q 10.0.2.2 >/dev/null 2>&1 &
i=0
while [ "$(echos)" -lt "$n" ] && [ $i -lt 300 ]; do
	sleep 0.01
	i=$((i + 1))
done
t1=$(cat /sys/class/net/$dev/statistics/tx_packets)
echo 1 > $T/events/ktest/cskb/enable
rmmod virtio_net || exit 9
echo 0 > $T/events/ktest/cskb/enable
calls=$(awk '$1 == "cskb" { print $2 }' $T/kprobe_profile)
tokens=$(grep -c 'cskb:' $T/trace)
echo "requests=$(echos) completed_before_remove=$((t1 - t0)) consume_skb_calls=$calls token_frees=$tokens"
wait
