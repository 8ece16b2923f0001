#!/bin/sh
export PATH=/ktest/bin:$PATH
for i in 1 2; do ktest-netbench napi vdpa 20000 64 udp | grep -E "^sim_|netbench" | tr '\n' ' ' | sed 's/^/DEFAULT /'; echo; done
dev=$(ls /sys/bus/vdpa/devices/ktest-vdpa0/virtio*/net)
echo 1000000000 > /sys/class/net/$dev/queues/tx-0/byte_queue_limits/limit_min
echo "limit_min=$(cat /sys/class/net/$dev/queues/tx-0/byte_queue_limits/limit_min)"
for i in 1 2 3; do ktest-netbench napi vdpa 20000 64 udp | grep -E "^sim_|netbench" | tr '\n' ' ' | sed 's/^/BQLOFF /'; echo; echo "limit_min=$(cat /sys/class/net/$dev/queues/tx-0/byte_queue_limits/limit_min)"; done
