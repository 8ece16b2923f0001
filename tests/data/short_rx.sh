#!/bin/sh
P=/sys/module/vdpa_sim_net/parameters
# Used by tests/integration/test_rx_skip.py: every 10th frame short, then none.
for mrg in 1 0; do
echo $mrg > $P/mrg_rxbuf
echo 10 > $P/short_rx
vdpa dev add mgmtdev vdpasim_net name v$mrg mac 02:00:00:00:00:01 || exit 9
sleep 1
v=$(ls -d /sys/bus/vdpa/devices/v$mrg/virtio*); dev=$(ls $v/net)
ip link set $dev up && ip addr add 192.0.2.1/24 dev $dev
arp -i $dev -s 192.0.2.2 02:00:00:00:00:01
ping -c 100 -s 1000 -i 0.01 -W 1 192.0.2.2 >/dev/null
s=/sys/class/net/$dev/statistics
echo "mrg=$mrg features=$(cat $v/features | cut -c1-16) tx=$(cat $s/tx_packets) rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors)"
echo 0 > $P/short_rx
ping -c 20 -s 1000 -i 0.01 -W 1 192.0.2.2 >/dev/null
echo "after: rx=$(cat $s/rx_packets) rx_length_errors=$(cat $s/rx_length_errors)"
vdpa dev del v$mrg; sleep 1
done
