#!/bin/sh
P=/sys/module/vdpa_sim_net/parameters
sim() { tr ' ' '\n' < $P/tx_stats | sed -n 's/^\([a-z_]*\)=\([0-9]*\)$/sim_\1=\2/p' | tr '\n' ' '; }
truncated() {
	awk '/^IpExt:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "InTruncatedPkts") c = i } else print $c }' /proc/net/netstat
}
stats() {
	s=/sys/class/net/$dev/statistics
	echo "tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors) truncated=$(truncated) $(sim)"
}
for io in 1 0; do
	echo $io > $P/in_order
	vdpa dev add mgmtdev vdpasim_net name io$io mac 02:00:00:00:00:01 mtu 4000 || continue
	sleep 1
	v=$(ls -d /sys/bus/vdpa/devices/io$io/virtio*)
	dev=$(ls $v/net)
	echo 1 > /proc/sys/net/ipv6/conf/$dev/disable_ipv6
	ip link set $dev up && ip addr add 192.0.2.1/24 dev $dev
	arp -i $dev -s 192.0.2.2 02:00:00:00:00:01
	sleep 1
	echo "before case=$io $(stats)"
	ping -c 30 -s 3000 -i 0.01 -W 1 192.0.2.2 >/dev/null
	sleep 1
	echo "after case=$io features=$(cat $v/features) $(stats)"
	ip link set $dev down
	vdpa dev del io$io
	sleep 1
done
