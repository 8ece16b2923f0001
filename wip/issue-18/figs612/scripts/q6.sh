#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
T=$O/txb
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module $O/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txlink.sh --file $T/vdpa_add --timeout 300 -- /ktest/bin/txlink.sh > $O/txlink.out 2> $O/txlink.err; echo "txlink rc=$?" >> $O/q6.status
