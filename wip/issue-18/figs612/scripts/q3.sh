#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
T=$O/txb
$K bench virtio_test --variants reset --runs 3 --out $O/vtr > $O/vtr.log 2>&1; echo "vtr rc=$?" >> $O/q3.status
$K boot --load vdpa_sim_net --load virtio_vdpa --load pktgen --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 900 -- sh -c "printf '32000 32 0\n32000 32 0\n32000 32 0\n960 32 1\n960 32 0\n' | /ktest/bin/txblock.sh on" > $O/txb_on.out 2> $O/txb_on.err; echo "txb_on rc=$?" >> $O/q3.status
$K boot --load vdpa_sim_net --load virtio_vdpa --load pktgen --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 900 -- sh -c "printf '32000 32 0\n32000 32 0\n32000 32 0\n' | /ktest/bin/txblock.sh off" > $O/txb_off.out 2> $O/txb_off.err; echo "txb_off rc=$?" >> $O/q3.status
$K boot --load vdpa_sim_net --load virtio_vdpa --load pktgen --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 600 -- sh -c "printf '3200 32 0\n' | /ktest/bin/txblock.sh off-nomrg" > $O/txb_nomrg.out 2> $O/txb_nomrg.err; echo "txb_nomrg rc=$?" >> $O/q3.status
R=$O/rxs
$K boot --load vdpa_sim_net --load virtio_vdpa --load vhost_vdpa --load tun --load vhost_net --host-program vdpa --host-program ip --host-program ethtool --file $R/rx_skip.sh --file $R/xdp_pass.o --file $R/vhost_rx_skip_order --file $R/vdpa_config_rx_skip --timeout 600 -- sh /ktest/bin/rx_skip.sh > $O/rxs.out 2> $O/rxs.err; echo "rxs rc=$?" >> $O/q3.status
$K boot --load vdpa_sim_net --load virtio_vdpa --host-program vdpa --file tests/data/short_rx.sh -- short_rx.sh > $O/srx.out 2> $O/srx.err; echo "srx rc=$?" >> $O/q3.status
$K bench ringtest --variants virtio_ring_hdr_headroom virtio_ring_hdr_own_line virtio_ring_hdr_block --runs 5 --run-cycles 1000000 --batch 32 --out $O/rth > $O/rth.log 2>&1; echo "rth rc=$?" >> $O/q3.status
