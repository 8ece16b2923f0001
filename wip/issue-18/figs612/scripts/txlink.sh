#!/bin/sh
P=/sys/module/vdpa_sim_net/parameters
/ktest/bin/vdpa_add vdpasim_net vdpa0 02:00:00:00:00:01 || exit 1
sleep 1
for v in /sys/bus/vdpa/devices/vdpa0/virtio*; do echo "features=$(cat $v/features)"; done
echo 1 > /proc/sys/net/ipv6/conf/eth1/disable_ipv6
ip link set eth1 up && ip addr add 192.0.2.1/24 dev eth1 || exit 1
echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
echo 0 > /proc/sys/net/ipv4/conf/eth1/rp_filter
sleep 1
chains() { tr ' ' '\n' < $P/tx_stats | sed -n 's/^packets=//p'; }
PG=/proc/net/pktgen
echo rem_device_all > $PG/kpktgend_0
echo "add_device eth1" > $PG/kpktgend_0
for c in "count 0" "burst 32" "pkt_size 100" "delay 0" "dst 192.0.2.1" \
	 "src_min 192.0.2.3" "src_max 192.0.2.3" "dst_mac 02:00:00:00:00:01" \
	 "udp_dst_min 9" "udp_dst_max 9" "udp_src_min 9" "udp_src_max 9" "flag UDPCSUM"; do
	echo "$c" > $PG/eth1 || echo "pktgen refused: $c"
done
for round in 1 2 3; do
	c0=$(chains)
	echo start > $PG/pgctrl &
	sleep 1
	echo 1 > $P/link_down
	wait
	sleep 1
	echo "round=$round sent=$(sed -n 's/.*pkts-sofar: \([0-9]*\).*/\1/p' $PG/eth1)" \
	     "chains=$(($(chains) - c0)) carrier=$(cat /sys/class/net/eth1/carrier)" \
	     "$(ethtool -S eth1 | grep -E 'tx0_hdr_blocks' | tr -d ' ' | tr : =)"
	echo 0 > $P/link_down
	sleep 1
done
