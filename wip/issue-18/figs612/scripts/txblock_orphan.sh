#!/bin/sh
P=/sys/module/vdpa_sim_net/parameters
/ktest/bin/vdpa_add vdpasim_net vdpa0 02:00:00:00:00:01 || exit 1
sleep 1
if [ "$1" != on ]; then
	b=$(cat /sys/bus/vdpa/devices/vdpa0/virtio*/features)
	v=0; i=0
	while [ $i -lt ${#b} ]; do
		[ "${b:$i:1}" = 1 ] && [ $i -ne 58 ] && { [ "$1" = off ] || [ $i -ne 15 ]; } &&
			v=$((v | (1 << i)))
		i=$((i + 1))
	done
	vdpa dev del vdpa0 || exit 1
	/ktest/bin/vdpa_add vdpasim_net vdpa0 02:00:00:00:00:01 $(printf '0x%x' $v) || exit 1
	sleep 1
fi
for v in /sys/bus/vdpa/devices/vdpa0/virtio*; do echo "features=$(cat $v/features)"; done
echo 1 > /proc/sys/net/ipv6/conf/eth1/disable_ipv6
ip link set eth1 up && ip addr add 192.0.2.1/24 dev eth1 || exit 1
ip link set eth1 down; ethtool -C eth1 tx-frames 0; ip link set eth1 up; echo "coalesce $(ethtool -c eth1 | grep tx-frames:)"
echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
echo 0 > /proc/sys/net/ipv4/conf/eth1/rp_filter
sleep 1
stats() {
	s=/sys/class/net/eth1/statistics
	echo "tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) txdrop=$(cat $s/tx_dropped)" \
	     "$(awk '/^Udp: [0-9]/ {print "noports=" $3 " inerr=" $4 " csumerr=" $8}' /proc/net/snmp)" \
	     "$(tr ' ' '\n' < $P/tx_stats | sed 's/^/sim_/' | tr '\n' ' ')" \
	     "$(ethtool -S eth1 | grep -E 'tx_queue_0_(hdr_blocks|hdr_block_hdrs)' | tr -d ' ' | tr : = | tr '\n' ' ')"
}
PG=/proc/net/pktgen
echo rem_device_all > $PG/kpktgend_0
echo "add_device eth1" > $PG/kpktgend_0
while read COUNT BURST CORRUPT; do
	for c in "count $COUNT" "burst $BURST" "pkt_size 100" "delay 0" "dst 192.0.2.1" \
		 "src_min 192.0.2.3" "src_max 192.0.2.3" "dst_mac 02:00:00:00:00:01" \
		 "udp_dst_min 9" "udp_dst_max 9" "udp_src_min 9" "udp_src_max 9" "flag UDPCSUM"; do
		echo "$c" > $PG/eth1 || echo "pktgen refused: $c"
	done
	echo "before $(stats)"
	echo "$CORRUPT" > $P/corrupt_block
	echo start > $PG/pgctrl
	echo 0 > $P/corrupt_block
	echo "pktgen sent=$(sed -n 's/.*pkts-sofar: \([0-9]*\).*/\1/p' $PG/eth1)" \
	     "pps=$(sed -n 's/^ *\([0-9]*\)pps.*/\1/p' $PG/eth1)"
	sleep 2
	echo "after $(stats)"
done
