#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
T=$O/txb
for v in orphan noio; do
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module $O/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txblock_$v.sh --file $T/vdpa_add --timeout 600 -- sh -c "printf '32000 32 0\n' | /ktest/bin/txblock_$v.sh on; ethtool -S eth1 | grep -E 'hdr_block|kicks'" > $O/txb_$v.out 2> $O/txb_$v.err; echo "txb_$v rc=$?" >> $O/q5.status
done
$K boot --load vdpa_sim_net --load virtio_vdpa --host-program vdpa --file $O/io/bigio.sh --timeout 600 -- /ktest/bin/bigio.sh > $O/bigio.out 2> $O/bigio.err; echo "bigio rc=$?" >> $O/q5.status
for v in bql; do
$K boot --load vdpa_sim_net --load virtio_vdpa --extra-module $O/pktgen/pktgen.ko --host-program ethtool --host-program vdpa --file $T/txblock_$v.sh --file $T/vdpa_add --timeout 600 -- sh -c "printf '32000 32 0\n' | /ktest/bin/txblock_$v.sh on; ethtool -S eth1 | grep -E 'hdr_block|kicks'" > $O/txb_$v.out 2> $O/txb_$v.err; echo "txb_$v rc=$?" >> $O/q5.status
done
