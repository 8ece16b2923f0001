#!/bin/bash
export KTEST_HOME=/work/home/guest612 PYTHONPATH=/work/wt/figs612
cd /work/wt/figs612
K="nice -n 19 timeout 1200 python3 -m ktest"
O=/work/figs612-out
$K bench vhost_net_test --variants base in-order sendmsg in-order-sendmsg --runs 5 --param=--raw-ring --out $O/vnt > $O/vnt.log 2>&1; echo "vnt rc=$?" >> $O/q2.status
