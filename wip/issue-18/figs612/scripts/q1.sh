#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
$K bench virtio_test --variants batch-1 in-order reset --runs 1 --out $O/vt1 > $O/vt1.log 2>&1; echo "vt1 rc=$?" >> $O/q1.status
$K bench vhost_net_test --variants base in-order sendmsg in-order-sendmsg --runs 5 --param=--raw-ring --out $O/vnt > $O/vnt.log 2>&1; echo "vnt rc=$?" >> $O/q1.status
$K bench vringh_test --variants in-order-misbehave --runs 1 --out $O/vr > $O/vr.log 2>&1; echo "vr rc=$?" >> $O/q1.status
$K bench net --device vdpa --sender udp --variants napi napi-no-in-order --runs 5 --count 20000 --out $O/net > $O/net.log 2>&1; echo "net rc=$?" >> $O/q1.status
