#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
T=$O/txb
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module /work/figs612-out/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 900 -- sh -c "printf '32000 32 0\n32000 32 0\n32000 32 0\n960 32 1\n960 32 0\n' | /ktest/bin/txblock.sh on" > $O/txb_on.out 2> $O/txb_on.err; echo "txb_on rc=$?" >> $O/q4.status
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module /work/figs612-out/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 900 -- sh -c "printf '32000 32 0\n32000 32 0\n32000 32 0\n' | /ktest/bin/txblock.sh off" > $O/txb_off.out 2> $O/txb_off.err; echo "txb_off rc=$?" >> $O/q4.status
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module /work/figs612-out/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txblock.sh --file $T/vdpa_add --timeout 600 -- sh -c "printf '3200 32 0\n' | /ktest/bin/txblock.sh off-nomrg" > $O/txb_nomrg.out 2> $O/txb_nomrg.err; echo "txb_nomrg rc=$?" >> $O/q4.status
$K boot --load vhost_test --file /work/home/guest612/builds/tools-2618ab4da8065f7f-8e862b15-virtio/tools/virtio/virtio_test --file $O/mx/vtmatrix.sh --timeout 1100 -- /ktest/bin/vtmatrix.sh > $O/mx.out 2> $O/mx.err; echo "mx rc=$?" >> $O/q4.status
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module /work/figs612-out/pktgen/pktgen.ko --host-program vdpa --host-program ethtool --file ktest/data/tools_virtio/ktest-netbench --timeout 600 -- sh -c "for i in 1 2 3; do ktest-netbench napi vdpa 32000 58 pktgen 32; ktest-netbench napi-no-in-order vdpa 32000 58 pktgen 32; done" > $O/pkg.out 2> $O/pkg.err; echo "pkg rc=$?" >> $O/q4.status
